"""`vortex serve`'s flags: parsed and checked here, then handed to service/app.py (`serve`), which
loads the engine once and serves the HTTP API until SIGTERM.

Registering the parser imports neither torch nor FastAPI (`vortex profiles` builds the same
parser); both are imported when the command runs.

Exit status: 0 after SIGTERM/Ctrl-C (the running slot finished or went back to the queue);
1 the engine failed to load or died (a CUDA fault: the supervisor should start a new process);
2 refused settings (a non-loopback address without a token, a bad profile or token file, a
--media folder that is not writable or belongs to another job store).

Several nodes: the same `--db postgresql://…` and the same `--media` (a shared file system), each
its own `--data`. Channels then belong to one node at a time through a lease in the store
(`--channel-lease-sec`, renewed every `--channel-renew-sec`); another node takes a channel over
when its node dies (service/channels/host.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..config import DEFAULT_PROFILE
from .store.channels import DEFAULT_CHANNEL_LEASE_S, DEFAULT_CHANNEL_RENEW_S

DEFAULT_PORT = 8321
DEFAULT_GRACE_S = 30.0


def add_serve_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    s = subparsers.add_parser(
        "serve", help="serve the HTTP API: a durable job queue over one resident engine",
        description="Loads the engine once and serves POST/GET /v1/slots, SSE events, the MP4s, /metrics.")
    group = s.add_mutually_exclusive_group()
    group.add_argument("--profile", help=f"a shipped profile (default: {DEFAULT_PROFILE}); see `vortex profiles`")
    group.add_argument("--config", type=Path, help="a config.yaml (may start with `extends: <profile>`)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; any other needs --token-file)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    s.add_argument("--data", type=Path, default=Path("vortex-data"),
                   help="this node's folder: the SQLite job store (without --db), and the media without --media "
                        "(default ./vortex-data)")
    s.add_argument("--media", type=Path,
                   help="folder of the jobs' MP4s and results, the portraits and the channels' streams, shared by "
                        "every node of one --db (NFS, EFS, CephFS, a ReadWriteMany volume; default: --data)")
    s.add_argument("--advertise-url",
                   help="this node's base URL as other nodes reach it (live inserts for a channel it runs are "
                        "forwarded there; default http://HOST:PORT)")
    s.add_argument("--channel-lease-sec", type=float, default=DEFAULT_CHANNEL_LEASE_S,
                   help=f"how long a channel stays with a node that stopped renewing (died) before another node "
                        f"takes it over (default {DEFAULT_CHANNEL_LEASE_S:g})")
    s.add_argument("--channel-renew-sec", type=float, default=DEFAULT_CHANNEL_RENEW_S,
                   help=f"how often a node renews its channel leases and looks for channels to take over; at most "
                        f"half the lease (default {DEFAULT_CHANNEL_RENEW_S:g})")
    s.add_argument("--token-file", type=Path,
                   help="file holding a bearer token (mode 600); POST and DELETE then need it")
    s.add_argument("--grace-sec", type=float, default=DEFAULT_GRACE_S,
                   help=f"on SIGTERM, how long the running slot may finish before it is re-queued (default {DEFAULT_GRACE_S:g})")
    s.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): one engine in this process; ray: a Ray Serve deployment of --replicas "
                        "engines, one per GPU on GPU profiles (needs the serve-ray extra)")
    s.add_argument("--replicas", type=int, help="--engine ray: how many engine replicas (default 2)")
    s.add_argument("--ray-address", help="--engine ray: join this Ray cluster (default: start a local Ray)")
    s.add_argument("--db", help="the job store: a postgresql://… URL that several nodes share "
                                "(default: SQLite in --data, one node)")
    s.add_argument("-v", "--verbose", action="store_true", help="JSON log events on stderr")
    s.add_argument("--log-file", type=Path, help="append JSON log events to this file")
    from ..provenance.cli import add_signing_args

    add_signing_args(s)
    s.set_defaults(func=serve_command)
    return s


def serve_command(args: argparse.Namespace) -> int:
    from .. import logs
    from ..config import VortexConfig
    from ..errors import VortexError
    from .security import check_bind, load_token

    err = sys.stderr
    try:
        token = load_token(args.token_file)
        check_bind(args.host, token)
        if not 0 < args.port < 65536:
            raise _usage(f"--port {args.port}: must be from 1 to 65535")
        if not args.grace_sec >= 0:
            raise _usage(f"--grace-sec {args.grace_sec}: must be a number of seconds >= 0")
        if args.engine != "ray" and (args.replicas is not None or args.ray_address):
            raise _usage("--replicas and --ray-address need --engine ray")
        _check_channel_settings(args)
        args.advertise_url = advertise_url(args.advertise_url, args.host, args.port)
        if args.replicas is None:
            args.replicas = 2 if args.engine == "ray" else 1
        if not 1 <= args.replicas <= 256:
            raise _usage(f"--replicas {args.replicas}: must be an integer from 1 to 256")
        if args.engine == "ray":
            import importlib.util

            if importlib.util.find_spec("ray") is None:
                raise _usage("--engine ray needs Ray Serve: pip install -e '.[serve-ray]'")
        cfg = VortexConfig.load(profile=args.profile, path=args.config)
        from ..provenance.cli import apply_signing

        cfg = apply_signing(cfg, args, err)  # a bad key or chain: exit 2 before the server starts
    except VortexError as exc:
        print(f"vortex: error: {exc}", file=err)
        return 2
    if not args.verbose:
        logs.quiet_libraries(load=True)
    from .app import ServeSettings, serve  # FastAPI, uvicorn and the store: only once the command runs

    return serve(cfg, ServeSettings(
        host=args.host, port=args.port, data=args.data.resolve(), media=args.media, db=args.db, engine=args.engine,
        replicas=args.replicas, ray_address=args.ray_address, advertise_url=args.advertise_url,
        channel_lease_s=args.channel_lease_sec, channel_renew_s=args.channel_renew_sec, grace_s=args.grace_sec), token)


def _check_channel_settings(args: argparse.Namespace) -> None:
    import math

    lease, renew = args.channel_lease_sec, args.channel_renew_sec
    if not (math.isfinite(lease) and 1.0 <= lease <= 3600):
        raise _usage(f"--channel-lease-sec {lease:g}: must be from 1 to 3600 seconds")
    if not (math.isfinite(renew) and 0.1 <= renew <= lease / 2):
        raise _usage(f"--channel-renew-sec {renew:g}: must be from 0.1 s to half of --channel-lease-sec "
                     f"({lease / 2:g} s), so that a renewal can fail once without losing the channel")


def advertise_url(url: Optional[str], host: str, port: int) -> str:
    """This node's base URL for other nodes: --advertise-url, else http://HOST:PORT (a wildcard
    bind address is replaced by this machine's name)."""
    from urllib.parse import urlsplit

    if url is None:
        import socket

        name = socket.getfqdn() if host in ("0.0.0.0", "::", "") else host
        return f"http://[{name}]:{port}" if ":" in name else f"http://{name}:{port}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise _usage(f"--advertise-url {url!r}: give a base URL such as http://node-a.internal:8321 "
                     "(http or https, a host, an optional port and path; no query)")
    return url.rstrip("/")


def _usage(message: str) -> Exception:
    from .security import ServeSetupError

    return ServeSetupError(message)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m vortex.service [serve options]`, the same command before `vortex` registers it."""
    p = argparse.ArgumentParser(prog="vortex")
    sub = p.add_subparsers(dest="command", required=True)
    add_serve_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "serve":
        argv.insert(0, "serve")
    args = p.parse_args(argv)
    from .. import logs

    logs.configure(verbose=args.verbose, log_file=args.log_file)
    return args.func(args)
