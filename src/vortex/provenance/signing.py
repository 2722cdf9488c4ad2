"""Which identity a node signs with, from its config and flags, and the engine's signer.

    signing: off (or --no-sign)            nothing is signed; the sidecar says "signing off"
    signing: {cert_chain, key, tsa_url}    an operator's chain and key (production)
    --sign DIR                             DIR/node.pem and DIR/node.key (`vortex keys init DIR`)
    neither                                the node's own development key, made on first use in
                                           <cache>/signing (so every output is marked)

`check_signing(cfg)` loads and checks the identity at start (exit 2 naming the flag or file,
before any model loads); the engine's `SlotSigner` signs each slot's staging MP4 into a second
temporary that `SlotOutput.publish` renames into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ..config import SigningConfig, VortexConfig
from ..engine.outputs import OutputError
from .keys import CHAIN_FILE, KEY_FILE, Identity, development_identity, load_identity

SIGNING_OFF = {"signed": False, "why": "signing off (config `signing: off` or --no-sign)"}


def with_signing_flags(cfg: VortexConfig, sign: Optional[Path] = None, no_sign: bool = False) -> VortexConfig:
    """The config with `--sign DIR` / `--no-sign` applied (they override the config's `signing`)."""
    if no_sign:
        return cfg.model_copy(update={"signing": SigningConfig(enabled=False)})
    if sign is not None:
        folder = Path(sign).expanduser().resolve()
        return cfg.model_copy(update={"signing": SigningConfig(
            cert_chain=str(folder / CHAIN_FILE), key=str(folder / KEY_FILE), tsa_url=cfg.signing.tsa_url)})
    return cfg


def identity_for(cfg: VortexConfig, *, where: Optional[str] = None) -> Optional[Identity]:
    """The identity `cfg` signs with (None when signing is off); a SigningKeyError names what is wrong."""
    s = cfg.signing
    if not s.enabled:
        return None
    if s.cert_chain is not None:
        return load_identity(Path(s.cert_chain).expanduser(), Path(s.key).expanduser(),
                             where=where or "config signing.cert_chain/signing.key", tsa_url=s.tsa_url)
    return development_identity(cfg.cache_path / "signing")


def check_signing(cfg: VortexConfig, sign: Optional[Path] = None) -> Optional[Identity]:
    """At start: the identity or a SigningKeyError naming `--sign DIR` when that was given."""
    return identity_for(cfg, where=None if sign is None else f"--sign {sign}")


class SlotSigner:
    """Signs a slot's MP4 for the engine: one per pipeline, built from its config."""

    def __init__(self, identity: Identity, models: Optional[dict[str, Any]] = None):
        self.identity = identity
        self.models = models or {}
        self.node = os.environ.get("VORTEX_NODE_ID") or os.uname().nodename

    def record_weights(self, cfg: VortexConfig, loaded: list[str]) -> None:
        """Once the engine has loaded `loaded` (the registry's names): the models the assertion lists
        become those, each with its weight files' SHA-256 (vortex.provenance.digests, cached by file)."""
        import time

        from .digests import model_digests

        cpu0 = time.process_time()
        self.models = model_digests(cfg, loaded)
        self.digest_cpu_s = round(time.process_time() - cpu0, 4)

    @classmethod
    def from_config(cls, cfg: VortexConfig) -> Optional["SlotSigner"]:
        identity = identity_for(cfg)
        return None if identity is None else cls(identity, models=models_of(cfg))

    def __call__(self, meta: dict[str, Any], portrait: Optional[str]):
        """A `sign(src, dst)` for SlotOutput.publish, for one slot's metadata."""
        from .credentials import sign_mp4

        def sign(src: Path, dst: Path) -> dict[str, Any]:
            try:
                return sign_mp4(self.identity, src, dst, meta, models=self.models,
                                portrait=None if portrait is None else Path(portrait), node=self.node)
            except OSError as exc:
                raise OutputError(f"cannot sign '{src}': {exc.strerror or exc}") from None
            except Exception as exc:  # c2pa.C2paError and the like: the slot fails, the file stays unpublished
                raise OutputError(f"cannot sign the slot's MP4 with {self.identity.subject}: "
                                  f"{type(exc).__name__}: {str(exc)[:200]}") from None
        return sign


def models_of(cfg: VortexConfig) -> dict[str, Any]:
    """Each component's weights as the config names them (source, repo, revision, precision)."""
    out = {}
    for name, section in cfg.models:
        d = section.model_dump() if hasattr(section, "model_dump") else {}
        out[name] = {k: d[k] for k in ("source", "repo", "revision", "precision", "model") if k in d}
    return out


def own_trust_anchor(cfg: VortexConfig) -> Optional[str]:
    """The last certificate of this node's chain (its CA), PEM: what a node trusts by default."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    identity = identity_for(cfg)
    if identity is None:
        return None
    return x509.load_pem_x509_certificates(identity.chain_pem)[-1].public_bytes(Encoding.PEM).decode()
