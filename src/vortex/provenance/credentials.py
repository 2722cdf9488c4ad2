"""Content Credentials on a slot's MP4: build the manifest, sign it (c2pa-python), read it back.

The manifest holds `c2pa.actions` (`c2pa.created`, digitalSourceType trainedAlgorithmicMedia, the
softwareAgent vortex + version), c2pa-rs's own `c2pa.hash.bmff.v3` over the file's boxes, our
`org.vortex.slot` assertion (what the slot is and how it was checked: `slot_assertion`), and the
actor portrait as an ingredient when the recipe gave one.

The determinism proof (vortex.result) is over the RGB frames and 16-bit PCM *before* the lossy
encode, so no one can recompute it from the file. What a verifier can recompute is the encoded
samples: the assertion also signs one SHA-256 (truncated to 64 bits) per video frame and per AAC
packet, in presentation order, so a changed frame or audio packet is named by its index.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Optional

import av
import c2pa
import numpy as np

from .keys import Identity

SLOT_ASSERTION = "org.vortex.slot"
AI_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
HASH_HEX = 16  # 64 bits per frame: a list of 120 frames is 2 KB in the manifest
MIME = "video/mp4"
_IMAGE_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def vortex_version() -> str:
    try:
        return importlib_metadata.version("vortex")
    except importlib_metadata.PackageNotFoundError:
        return "0.1.0"


def sample_hashes(path: Path | str) -> dict[str, list[str]]:
    """One truncated SHA-256 per encoded video frame and audio packet, in presentation order
    (demuxed, not decoded: ~1 ms a second of slot)."""
    out: dict[str, list[tuple[int, str]]] = {"video": [], "audio": []}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size == 0 or packet.stream.type not in out:
                continue
            pts = packet.pts if packet.pts is not None else packet.dts
            out[packet.stream.type].append((pts, hashlib.sha256(bytes(packet)).hexdigest()[:HASH_HEX]))
    return {kind: [h for _, h in sorted(items, key=lambda x: x[0])] for kind, items in out.items()}


def list_digest(hashes: list[str]) -> str:
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def slot_assertion(meta: dict[str, Any], hashes: dict[str, list[str]], *, models: Optional[dict[str, Any]] = None,
                   portrait_sha256: Optional[str] = None, node: Optional[str] = None) -> dict[str, Any]:
    """`org.vortex.slot`: the recipe digest, seed, profile and stand-ins, the models, the proof, the
    CLIP embedding's digest, every check's verdict, and the encoded samples' hashes."""
    embedding = meta.get("clip_embedding")
    v = meta.get("verification") or {}
    checks: dict[str, Any] = {}
    if v:
        checks["clip"] = {"passed": v.get("passed"), "enforced": v.get("enforced"), "ensemble": v.get("ensemble"),
                          "threshold": v.get("threshold")}
        for name in ("identity", "lip_sync", "speech"):
            r = v.get(name)
            if r is not None:
                checks[name] = {"passed": r.get("passed"), "enforced": r.get("enforced"),
                                **{k: r[k] for k in ("worst", "r", "wer", "max_distance", "floor", "max_wer") if k in r}}
    return {
        "node": node,
        "slot_id": meta.get("slot_id"),
        "seed": meta.get("seed"),
        "recipe_sha256": meta.get("recipe_sha256"),
        "profile": meta.get("profile"),
        "stand_ins": meta.get("stand_ins") or [],
        "animation": meta.get("animation"),
        "models": models or {},
        "proof": meta.get("proof"),
        "clip_embedding_sha256": None if embedding is None else
        hashlib.sha256(json.dumps([round(float(x), 7) for x in embedding]).encode()).hexdigest(),
        # the vector itself, what `vortex verify --deep` compares its own with (cosine): float32 little-endian
        # in base64 (2.7 KB), since c2pa-python 0.38.1 hands a JSON list of 512 floats back as ''
        "clip_embedding_f32": None if embedding is None else
        base64.b64encode(np.asarray(embedding, "<f4").tobytes()).decode(),
        "checks": checks,
        "portrait_sha256": portrait_sha256,
        "media": {"fps": meta.get("fps"), "sample_rate": meta.get("sample_rate"), "n_frames": meta.get("n_frames"),
                  "n_samples": meta.get("n_samples"),
                  "video_sample_sha256": hashes["video"], "audio_sample_sha256": hashes["audio"],
                  "video_list_sha256": list_digest(hashes["video"]),
                  "audio_list_sha256": list_digest(hashes["audio"])},
    }


def manifest(assertion: dict[str, Any], title: str) -> dict[str, Any]:
    agent = {"name": "vortex", "version": vortex_version()}
    return {
        "claim_generator_info": [agent],
        "title": title,
        "format": MIME,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": AI_SOURCE_TYPE, "softwareAgent": agent,
                 "description": "synthetic talking-head video and speech made by a generative model"}]}},
            {"label": SLOT_ASSERTION, "data": assertion},
        ],
    }


def signer_for(identity: Identity) -> c2pa.Signer:
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg=b"es256", sign_cert=identity.chain_pem,
                                                     private_key=identity.key_pem,
                                                     ta_url=identity.tsa_url.encode() if identity.tsa_url else None))


def sign_mp4(identity: Identity, src: Path, dst: Path, meta: dict[str, Any], *, models: Optional[dict] = None,
             portrait: Optional[Path] = None, node: Optional[str] = None) -> dict[str, Any]:
    """Sign `src` into `dst` (a new file); returns what the sidecar records about it."""
    started, cpu0 = time.perf_counter(), time.process_time()
    hashes = sample_hashes(src)
    portrait_sha = None
    if portrait is not None:
        portrait_bytes = Path(portrait).read_bytes()
        portrait_sha = hashlib.sha256(portrait_bytes).hexdigest()
    data = slot_assertion(meta, hashes, models=models, portrait_sha256=portrait_sha, node=node)
    builder = c2pa.Builder(manifest(data, title=f"vortex slot {meta.get('slot_id')}"))
    try:
        if portrait is not None:
            mime = _IMAGE_MIME.get(Path(portrait).suffix.lower())
            if mime is not None:  # an image c2pa can read: hashed as the parent of the slot
                builder.add_ingredient({"title": Path(portrait).name, "relationship": "inputTo"},
                                       mime, io.BytesIO(portrait_bytes))
        signer = signer_for(identity)
        try:
            with open(src, "rb") as s, open(dst, "w+b") as d:
                builder.sign(signer, MIME, s, d)
        finally:
            signer.close()
    finally:
        builder.close()
    return {"signed": True, "signer": identity.subject, "development_key": identity.development,
            "key_source": identity.where, "assertion": SLOT_ASSERTION,
            "sign_ms": round((time.perf_counter() - started) * 1000.0, 2),
            "sign_cpu_s": round(time.process_time() - cpu0, 4)}


def read_manifest(path: Path | str, trust_pem: Optional[str]) -> dict[str, Any]:
    """The active manifest and the reader's verdict: {present, state, failures, manifest, signer}.
    `state` is c2pa's: Trusted (signature valid, signer under a trust anchor), Valid, Invalid."""
    settings: dict[str, Any] = {"verify": {"verify_trust": trust_pem is not None}}
    if trust_pem is not None:
        settings["trust"] = {"trust_anchors": trust_pem}
    try:
        reader = c2pa.Reader(str(path), context=c2pa.Context.from_dict(settings))
    except c2pa.C2paError as exc:
        text = str(exc)
        if "ManifestNotFound" in text or "JumbfNotFound" in text or "not found" in text.lower():
            return {"present": False, "state": None, "failures": [], "manifest": None, "signer": None}
        return {"present": True, "state": "Invalid", "failures": [f"unreadable manifest: {text[:200]}"],
                "manifest": None, "signer": None}
    try:
        state = reader.get_validation_state()
        results = reader.get_validation_results() or {}
        data = json.loads(reader.json())
    finally:
        reader.close()
    active = (data.get("manifests") or {}).get(data.get("active_manifest") or "", {})
    failures = [f"{f.get('code')}: {f.get('explanation', '')}".strip()
                for f in (results.get("activeManifest") or {}).get("failure", [])]
    return {"present": True, "state": state, "failures": failures, "manifest": active,
            "signer": active.get("signature_info")}


def assertion(manifest_json: Optional[dict[str, Any]], label: str) -> Optional[Any]:
    for a in (manifest_json or {}).get("assertions", []):
        if a.get("label") == label or a.get("label", "").startswith(label + ".v"):
            return a.get("data")
    return None
