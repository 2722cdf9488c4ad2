"""`vortex keys init DIR`, `vortex verify FILE|PLAYLIST`, and the --sign/--no-sign flags of
generate, serve and channel run. Registering the parsers imports neither c2pa nor torch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_signing_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--sign", type=Path, metavar="DIR",
                       help="sign every MP4 with DIR/node.pem and DIR/node.key (`vortex keys init DIR`); default: "
                            "the config's `signing`, else this node's development key in the cache")
    group.add_argument("--no-sign", action="store_true", help="write no Content Credentials (the sidecar says so)")


def apply_signing(cfg, args: argparse.Namespace, err=sys.stderr):
    """The config with the flags applied, its identity checked now (exit 2 naming the flag or file)."""
    from .signing import check_signing, with_signing_flags

    sign = getattr(args, "sign", None)
    cfg = with_signing_flags(cfg, sign, getattr(args, "no_sign", False))
    identity = check_signing(cfg, sign)
    if identity is None:
        print("  ! signing off: outputs carry no Content Credentials", file=err)
    else:
        dev = " (DEVELOPMENT key: verifiers must trust its ca.pem)" if identity.development else ""
        print(f"  signing as {identity.subject}{dev}", file=err)
    return cfg


def add_provenance_parsers(sub) -> None:
    k = sub.add_parser("keys", help="make a signing identity for Content Credentials")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    ki = ksub.add_parser("init", help="write a DEVELOPMENT CA (ca.pem), node chain (node.pem) and key (node.key)")
    ki.add_argument("dir", type=Path)
    ki.add_argument("--name", default="vortex-node", help="the node's certificate common name")
    ki.add_argument("--force", action="store_true", help="replace an identity already in DIR")
    ki.set_defaults(func=_keys_init)

    v = sub.add_parser("verify", help="check a slot MP4 or a channel playlist: credentials, integrity, watermark")
    v.add_argument("target", help="an MP4, a channel's index.m3u8, or its http(s) URL")
    v.add_argument("--trust", type=Path, help="a PEM of trusted CAs (e.g. a node's ca.pem)")
    v.add_argument("--recipe", type=Path, help="the recipe the slot claims: its digest and counts are checked")
    v.add_argument("--deep", action="store_true", help="re-run the face, lip-sync, speech and CLIP checks (needs --recipe)")
    v.add_argument("--profile", help="the profile for --deep's models (default: the one the slot names)")
    v.add_argument("--json", action="store_true", help="print the verdict as JSON")
    v.set_defaults(func=_verify)


def _keys_init(args: argparse.Namespace) -> int:
    from .keys import DEV_NOTICE, init_keys

    paths = init_keys(args.dir, node_name=args.name, force=args.force)
    print(f"{DEV_NOTICE}.")
    print(f"  trust anchor (give to verifiers): {paths['ca']}")
    print(f"  node chain (leaf first):          {paths['chain']}")
    print(f"  node key (mode 600):              {paths['key']}")
    print(f"  sign with: vortex generate R --sign {args.dir}   verify with: vortex verify OUT.mp4 --trust {paths['ca']}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .verify import VerifyOptions, verify_target

    report = verify_target(args.target, VerifyOptions(trust=args.trust, recipe=args.recipe, deep=args.deep,
                                                      profile=args.profile))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.target}: {report['verdict']}")
        for reason in report["reasons"]:
            print(f"  {reason}")
    return 0 if report["verdict"] == "verified" else 1
