"""Provenance for the live stream: one signed manifest per published segment, beside it.

c2pa-python 0.38.1 exposes no fragmented-BMFF signing (c2pa-rs's `sign_fragmented_files` is not
bound: the Builder has sign/sign_file only, and `Reader.with_fragment` only reads), and the channel's
parts are written while the slot is still being made, so neither the init segment's manifest nor a
per-slot one could cover a part before it airs. So each closed segment gets `SEG.m4s.prov.json`
(the name derived from the segment's), written right after the segment, holding:

    payload    {type, channel, segment, sha256 of the segment, of each of its parts, of its init
                segment (EXT-X-MAP), program_date_time, duration, digitalSourceType
                trainedAlgorithmicMedia, software agent, signed_at}
    chain      the node's certificate chain (PEM, leaf first), the same identity as its MP4s' C2PA
    signature  ES256 (ECDSA P-256, SHA-256, DER) over the payload's canonical JSON

`verify_playlist` reads index.m3u8, and for every segment it lists checks the manifest's signature,
its chain up to a --trust anchor, and the hashes of the segment, its parts still on disk and its
init segment: a segment changed after publication is named. One ES256 signature per 2 s segment.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Callable, Optional

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..media import SWS_THREADS
from .credentials import AI_SOURCE_TYPE, vortex_version
from .keys import Identity

log = logging.getLogger(__name__)
SUFFIX = ".prov.json"
TYPE = "org.vortex.segment.v1"


def manifest_name(segment_uri: str) -> str:
    return segment_uri + SUFFIX


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class SegmentSigner:
    """`on_segment` for the channel's writer: signs each closed segment's manifest into the folder."""

    def __init__(self, identity: Identity, folder: Path):
        self.identity, self.folder = identity, Path(folder)
        self._key = serialization.load_pem_private_key(identity.key_pem, password=None)
        self.signed = self.failed = 0

    def __call__(self, segment: Any) -> None:
        """`segment`: a PlaylistSegment (uri, duration_sec, program_date_time, map_uri, parts). A failure is
        logged, never raised: the stream airs on, and `vortex verify` names the unsigned segment."""
        try:
            self._sign(segment)
        except Exception as exc:  # noqa: BLE001 - the disk or the key failed: the stream must not stop
            self.failed += 1
            log.error("segment not signed", extra={"event": "segment_unsigned", "segment": segment.uri,
                                                   "error": f"{type(exc).__name__}: {str(exc)[:200]}"})

    def _sign(self, segment: Any) -> None:
        f = self.folder
        payload = {
            "type": TYPE, "channel": f.name, "segment": segment.uri, "sha256": _sha(f / segment.uri),
            "parts": {p.uri: _sha(f / p.uri) for p in segment.parts},
            "init": None if segment.map_uri is None else {segment.map_uri: _sha(f / segment.map_uri)},
            "duration": segment.duration_sec,
            "program_date_time": None if segment.program_date_time is None else segment.program_date_time.isoformat(),
            "digitalSourceType": AI_SOURCE_TYPE, "softwareAgent": {"name": "vortex", "version": vortex_version()},
            "signed_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        }
        signature = self._key.sign(_canonical(payload), ec.ECDSA(hashes.SHA256()))
        doc = {"payload": payload, "alg": "ES256", "chain": self.identity.chain_pem.decode(),
               "signature": base64.b64encode(signature).decode()}
        from ..engine.outputs import write_text_atomic

        write_text_atomic(f / manifest_name(segment.uri), json.dumps(doc, indent=1) + "\n")
        self.signed += 1


def stream_signer(engine: Any, folder: Path) -> Optional[SegmentSigner]:
    """The channel's segment signer, from its engine's signing identity (None: signing off)."""
    signer = getattr(engine, "signer", None)
    return None if signer is None else SegmentSigner(signer.identity, folder)


# ---- verifying --------------------------------------------------------------------------------------
_ATTR = re.compile(r'URI="([^"]+)"')


def playlist_entries(text: str) -> list[dict[str, Any]]:
    """The segments of a media playlist: [{uri, parts, map}] (the open segment's parts are not listed)."""
    out, parts, current_map = [], [], None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MAP:"):
            m = _ATTR.search(line)
            current_map = m.group(1) if m else None
        elif line.startswith("#EXT-X-PART:"):
            m = _ATTR.search(line)
            if m:
                parts.append(m.group(1))
        elif line and not line.startswith("#"):
            out.append({"uri": line, "parts": parts, "map": current_map})
            parts = []
    return out


def _check_chain(chain_pem: str, trust_pem: Optional[str]) -> tuple[Optional[x509.Certificate], list[str]]:
    try:
        certs = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError:
        return None, ["the manifest's chain is not PEM"]
    leaf, problems = certs[0], []
    now = dt.datetime.now(dt.timezone.utc)
    for c in certs:
        if not c.not_valid_before_utc <= now <= c.not_valid_after_utc:
            problems.append(f"certificate {c.subject.rfc4514_string()} is outside its validity")
    if trust_pem is None:
        return leaf, problems + [f"untrusted: signer {leaf.subject.rfc4514_string()}; give --trust CA.pem to check it"]
    anchors = x509.load_pem_x509_certificates(trust_pem.encode())
    cert = leaf
    for _ in range(len(certs)):
        if any(_issued_by(cert, a) for a in anchors):
            return leaf, problems
        cert = next((c for c in certs[1:] if c != cert and _issued_by(cert, c)), None)
        if cert is None:
            break
    return leaf, problems + [f"untrusted: signer {leaf.subject.rfc4514_string()} is not under --trust"]


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if issuer.subject != cert.issuer:
        return False
    try:
        issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except (InvalidSignature, TypeError, AttributeError):
        return False
    return True


def verify_segment(read: Callable[[str], Optional[bytes]], entry: dict[str, Any], trust_pem: Optional[str]) -> list[str]:
    """The reasons segment `entry` fails (empty: it verifies). `read(name)` gives a file's bytes or None."""
    uri = entry["uri"]
    raw = read(manifest_name(uri))
    if raw is None:
        return [f"segment {uri}: no signed manifest ({manifest_name(uri)})"]
    try:
        doc = json.loads(raw)
        payload, signature = doc["payload"], base64.b64decode(doc["signature"])
    except (ValueError, KeyError, TypeError):
        return [f"segment {uri}: its manifest is not readable"]
    leaf, reasons = _check_chain(doc.get("chain", ""), trust_pem)
    reasons = [f"segment {uri}: {r}" for r in reasons]
    if leaf is None:
        return reasons
    try:
        leaf.public_key().verify(signature, _canonical(payload), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, TypeError, AttributeError):
        return reasons + [f"segment {uri}: the manifest's signature is invalid (the manifest was changed)"]
    if payload.get("segment") != uri or payload.get("type") != TYPE:
        reasons.append(f"segment {uri}: the manifest is for {payload.get('segment')!r}")
    data = read(uri)
    if data is None:
        reasons.append(f"segment {uri}: listed but missing")
    elif hashlib.sha256(data).hexdigest() != payload.get("sha256"):
        reasons.append(f"segment {uri}: changed after publication (its SHA-256 is not the signed one)")
    for part in entry["parts"]:
        signed = (payload.get("parts") or {}).get(part)
        got = read(part)
        if signed is None:
            reasons.append(f"segment {uri}: part {part} is not in its manifest")
        elif got is not None and hashlib.sha256(got).hexdigest() != signed:
            reasons.append(f"segment {uri}: part {part} changed after publication")
    init = payload.get("init") or {}
    for name, signed in init.items():
        got = read(name)
        if got is not None and hashlib.sha256(got).hexdigest() != signed:
            reasons.append(f"segment {uri}: its init segment {name} changed after publication")
    if entry.get("map") is not None and entry["map"] not in init:
        reasons.append(f"segment {uri}: the playlist maps {entry['map']}, the manifest signed {sorted(init)}")
    if payload.get("digitalSourceType") != AI_SOURCE_TYPE:
        reasons.append(f"segment {uri}: the manifest does not declare trainedAlgorithmicMedia")
    return reasons


def _report(target: str, text: str, read: Callable[[str], Optional[bytes]], trust_pem: Optional[str]) -> dict[str, Any]:
    entries = playlist_entries(text)
    reasons, segments = [], []
    for entry in entries:
        found = verify_segment(read, entry, trust_pem)
        segments.append({"uri": entry["uri"], "verified": not found, "parts": len(entry["parts"])})
        reasons.extend(found)
    if not entries:
        reasons.append("the playlist lists no segment yet")
    verified = sum(s["verified"] for s in segments)
    return {"target": target, "kind": "playlist", "verdict": "not verified" if reasons else "verified",
            "credentials": {"segments": len(segments), "verified": verified, "trusted": trust_pem is not None},
            "integrity": {"segments": segments}, "watermark": segment_watermarks(entries, read),
            "checks": {}, "reasons": reasons}


WATERMARK_SEGMENTS = 6  # the last 12 s of a 2 s-segment stream: each read alone (~0.1 s a 720p segment)


def segment_watermarks(entries: list[dict[str, Any]], read: Callable[[str], Optional[bytes]]) -> dict[str, Any]:
    """The pixel watermark (vortex.provenance.watermark) of each of the last WATERMARK_SEGMENTS
    segments, decoded with its init segment: {found, read, segments: [{uri, found, node_tag, slot_id}]}.
    Each segment is read alone (48 frames at 24 fps): one that holds the end of one slot and the start
    of the next carries two payloads and may read as not found."""
    import io

    import av

    from .watermark import read_frames

    out, inits = [], {}  # an init segment is fetched once (over HTTP for a URL), not once per segment
    for entry in entries[-WATERMARK_SEGMENTS:]:
        if entry.get("map") and entry["map"] not in inits:
            inits[entry["map"]] = read(entry["map"])
        init, data = inits[entry["map"]] if entry.get("map") else b"", read(entry["uri"])
        row: dict[str, Any] = {"uri": entry["uri"], "found": False}
        if data is not None and init is not None:
            try:
                with av.open(io.BytesIO(init + data)) as c:
                    mark = read_frames(f.to_ndarray(format="rgb24", threads=SWS_THREADS) for f in c.decode(c.streams.video[0]))
            except Exception as exc:  # noqa: BLE001 - an undecodable segment: no mark read, with why
                mark = {"found": False, "why": f"cannot decode: {type(exc).__name__}"}
            row.update(found=bool(mark.get("found")), node_tag=mark.get("node_tag"), slot_id=mark.get("slot_id_low16"))
        out.append(row)
    return {"found": any(r["found"] for r in out), "read": bool(out), "segments": out}


def verify_playlist(path: Path, trust_pem: Optional[str]) -> dict[str, Any]:
    folder = Path(path).parent

    def read(name: str) -> Optional[bytes]:
        if "/" in name or name.startswith("."):
            return None  # only files beside the playlist, as the writer names them
        try:
            return (folder / name).read_bytes()
        except OSError:
            return None

    return _report(str(path), Path(path).read_text(errors="replace"), read, trust_pem)


def verify_playlist_url(url: str, trust_pem: Optional[str]) -> dict[str, Any]:
    import urllib.error
    import urllib.request
    from urllib.parse import urljoin

    from .errors import VerifyInputError

    def get(u: str) -> Optional[bytes]:
        try:
            with urllib.request.urlopen(u, timeout=30) as r:  # noqa: S310 - http(s) only, checked by the caller
                return r.read()
        except (urllib.error.URLError, OSError, ValueError):
            return None

    text = get(url)
    if text is None or not text.startswith(b"#EXTM3U"):
        raise VerifyInputError(f"'{url}' did not answer with an HLS playlist")
    return _report(url, text.decode(errors="replace"), lambda name: get(urljoin(url, name)), trust_pem)
