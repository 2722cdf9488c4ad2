"""The one verifier: `vortex verify FILE|PLAYLIST` and `POST /v1/verify` both call `verify_target`.

For a slot MP4 it reports
    credentials  present, signature valid, signer trusted under --trust, the AI-generated action there
    integrity    the encoded frames and AAC packets hash to the lists signed in `org.vortex.slot`
                 (a changed one is named by its index), the counts equal the signed ones and, with
                 --recipe, the recipe's; the recipe's digest is the signed one; the proof is whole
    watermark    the payload read from the pixels (what is left when a re-encode drops the manifest)
    checks       the signed verdicts, and with --deep the checks re-run on the pixels and audio
and a verdict: "verified" when nothing is wrong, else "not verified" with one reason a line.
A channel playlist verifies every segment it lists against its slot's segment manifest (vortex.provenance.stream).
Bad input (not an MP4 or playlist, an unreadable trust file or recipe) raises VerifyInputError (exit 2).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .credentials import AI_SOURCE_TYPE, SLOT_ASSERTION, assertion, list_digest, read_manifest, sample_hashes
from .errors import VerifyInputError

VERIFIED, NOT_VERIFIED = "verified", "not verified"


@dataclass(frozen=True)
class VerifyOptions:
    trust: Optional[Path] = None
    recipe: Optional[Path] = None
    deep: bool = False
    profile: Optional[str] = None


def read_trust(path: Optional[Path]) -> Optional[str]:
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a PEM text file"
        raise VerifyInputError(f"--trust '{path}': cannot read it: {why}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise VerifyInputError(f"--trust '{path}': holds no PEM certificate (give a CA's ca.pem)")
    return text


def kind_of(path: Path) -> str:
    """"mp4" or "playlist" by content, else VerifyInputError."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except IsADirectoryError:
        raise VerifyInputError(f"'{path}' is a directory; give an MP4 or a playlist (index.m3u8)") from None
    except OSError as exc:
        raise VerifyInputError(f"cannot read '{path}': {exc.strerror or exc}") from None
    if head.startswith(b"#EXTM3U"):
        return "playlist"
    if head[4:8] == b"ftyp":
        return "mp4"
    raise VerifyInputError(f"'{path}' is neither an MP4 (no ftyp box) nor an HLS playlist (no #EXTM3U)")


def verify_target(target: str | Path, options: VerifyOptions = VerifyOptions()) -> dict[str, Any]:
    trust = read_trust(options.trust)
    recipe = _read_recipe(options.recipe)
    if options.deep and recipe is None:
        raise VerifyInputError("--deep needs --recipe: the checks are re-run against the recipe's script and portrait")
    text = str(target)
    if text.startswith(("http://", "https://")):
        from .stream import verify_playlist_url

        return verify_playlist_url(text, trust)
    path = Path(text)
    if kind_of(path) == "playlist":
        from .stream import verify_playlist

        return verify_playlist(path, trust)
    return verify_mp4(path, trust, recipe=recipe, deep=options.deep, profile=options.profile)


def _read_recipe(path: Optional[Path]):
    if path is None:
        return None
    from ..recipe import Recipe

    return Recipe.from_file(path)  # a RecipeError names the field: exit 2


def verify_mp4(path: Path, trust: Optional[str], *, recipe=None, deep: bool = False,
               profile: Optional[str] = None) -> dict[str, Any]:
    reasons: list[str] = []
    read = read_manifest(path, trust)
    slot = assertion(read["manifest"], SLOT_ASSERTION) if read["present"] else None
    credentials = _credentials(read, trust, reasons)
    credentials["slot"] = None if slot is None else {k: slot.get(k) for k in ("node", "slot_id", "seed", "profile",
                                                                              "stand_ins", "recipe_sha256", "models")}
    integrity = _integrity(path, slot, recipe, reasons)
    from .watermark import node_tag

    watermark = read_marks(path)
    pix, aud = watermark, watermark["audio"]
    if len(watermark["carried_by"]) == 2 and (pix["node_tag"], pix["slot_id_low16"]) != (aud["node_tag"], aud["slot_id_low16"]):
        reasons.append(f"watermark: the pixels say node tag {pix['node_tag']} / slot {pix['slot_id_low16']}, the audio "
                       f"{aud['node_tag']} / {aud['slot_id_low16']} (sound and picture from two slots)")
    if watermark.get("found"):
        watermark["slot_id"] = watermark.get("slot_id_low16")
        if slot is not None:  # the credentials name the node: the mark's 16-bit tag must be its
            watermark["node"] = slot.get("node")
            watermark["matches_credentials"] = (watermark["node_tag"] == f"{node_tag(str(slot.get('node'))):04x}"
                                                and watermark["slot_id_low16"] == (int(slot.get("slot_id") or 0) & 0xFFFF))
            if not watermark["matches_credentials"]:
                reasons.append(f"watermark: node tag {watermark['node_tag']} / slot {watermark['slot_id_low16']} is not "
                               f"the signed node {slot.get('node')} / slot {slot.get('slot_id')}")
        else:
            watermark["node"] = watermark["node_tag"]
    if not read["present"]:
        if watermark.get("found"):
            reasons.append(f"only the watermark is left: node tag {watermark['node_tag']}, slot {watermark['slot_id']} "
                           "(a re-encoded or stripped copy: the AI-generated mark survives, the credentials do not)")
        else:
            reasons.append("no watermark found either")
    checks: dict[str, Any] = {"signed": None if slot is None else slot.get("checks")}
    if deep:
        from .deep import deep_checks

        checks["deep"] = deep_checks(path, recipe, slot, profile=profile)
        reasons.extend(checks["deep"]["reasons"])
    return {"target": str(path), "kind": "mp4", "verdict": NOT_VERIFIED if reasons else VERIFIED,
            "credentials": credentials, "integrity": integrity, "watermark": watermark, "checks": checks,
            "reasons": reasons}


def _credentials(read: dict[str, Any], trust: Optional[str], reasons: list[str]) -> dict[str, Any]:
    signer = read.get("signer") or {}
    failures = read["failures"]
    untrusted = any(f.startswith("signingCredential.untrusted") for f in failures)
    other = [f for f in failures if not f.startswith("signingCredential.untrusted")]
    actions = assertion(read["manifest"], "c2pa.actions") or {}
    ai = any(a.get("action") == "c2pa.created" and a.get("digitalSourceType") == AI_SOURCE_TYPE
             for a in actions.get("actions", []))
    out = {"present": read["present"], "state": read["state"], "signature_valid": read["present"] and not other,
           "trusted": read["state"] == "Trusted", "signer": signer.get("common_name"),
           "issuer": signer.get("issuer"), "ai_generated": ai, "failures": failures}
    if not read["present"]:
        reasons.append("no Content Credentials in the file")
        return out
    for f in other:
        reasons.append(f"credentials invalid: {f}")
    if untrusted or read["state"] != "Trusted" and not other:
        who = f"{signer.get('common_name')} (issued by {signer.get('issuer')})"
        reasons.append(f"untrusted: signer {who} is not under --trust" if trust is not None
                       else f"untrusted: signer {who}; give --trust CA.pem to check it")
    if not ai:
        reasons.append("the manifest has no c2pa.created action with digitalSourceType trainedAlgorithmicMedia")
    return out


def read_marks(path: Path) -> dict[str, Any]:
    """The pixel watermark, and the same payload in the speech (`audio`): a copy with only one of
    them left (the sound cut out of the video, or a silent re-cut) is still recognised."""
    from .audio_mark import read_audio_mark_file
    from .watermark import read_watermark_mp4

    pixels, audio = read_watermark_mp4(path), read_audio_mark_file(path)
    out = dict(pixels, audio=audio, carried_by=[k for k, r in (("pixels", pixels), ("audio", audio)) if r.get("found")])
    if not pixels.get("found") and audio.get("found"):
        out.update(found=True, node_tag=audio["node_tag"], slot_id_low16=audio["slot_id_low16"])
    return out


def _integrity(path: Path, slot: Optional[dict[str, Any]], recipe, reasons: list[str]) -> dict[str, Any]:
    from ..media import probe_mp4

    out: dict[str, Any] = {"checked": slot is not None}
    media = (slot or {}).get("media") or {}
    if slot is not None:
        try:
            got = sample_hashes(path)  # demuxed only: a packet too damaged to decode is still named
        except Exception as exc:  # noqa: BLE001 - a file too damaged to demux is a finding, not a crash
            reasons.append(f"integrity: the file cannot be demuxed: {type(exc).__name__}: {str(exc)[:120]}")
            return {"checked": False, "readable": False}
        for kind, label in (("video", "frame"), ("audio", "audio packet")):
            signed = media.get(f"{kind}_sample_sha256") or []
            if list_digest(signed) != media.get(f"{kind}_list_sha256"):
                reasons.append(f"integrity: the signed {kind} hash list is not whole")
            first = next((i for i, (a, b) in enumerate(zip(got[kind], signed)) if a != b), None)
            if first is None and len(got[kind]) != len(signed):
                first = min(len(got[kind]), len(signed))
            out[f"{kind}_match"] = first is None
            out[f"first_{kind}_differing"] = first
            if first is not None:
                where = f"{label} {first}" + (f" (about sample {max(0, first - 1) * 1024}; packet 0 is the AAC priming)" if kind == "audio" else "")
                reasons.append(f"integrity: {where} differs from the signed one")
    try:
        info = probe_mp4(path)
    except Exception as exc:  # noqa: BLE001 - a file too damaged to decode is a finding, not a crash
        reasons.append(f"integrity: the file does not decode: {type(exc).__name__}: {str(exc)[:120]}")
        out["readable"] = False
        return out
    out.update(readable=True, n_frames=info.n_frames, n_samples=info.n_audio_samples)
    if slot is not None:
        for key, value in (("n_frames", info.n_frames), ("n_samples", info.n_audio_samples)):
            if media.get(key) is not None and media[key] != value:
                reasons.append(f"integrity: the file has {value} {key[2:]}, the credentials say {media[key]}")
        proof = slot.get("proof") or {}
        if proof:
            parts = {k: proof.get(k) for k in ("recipe_sha256", "seed", "frames_sha256", "audio_sha256")}
            digest = hashlib.sha256("\n".join(f"{k}={v}" for k, v in parts.items()).encode()).hexdigest()
            out["proof_consistent"] = digest == proof.get("proof_sha256") and parts["recipe_sha256"] == slot.get("recipe_sha256")
            if not out["proof_consistent"]:
                reasons.append("integrity: the signed determinism proof does not hash to its parts")
        out["proof_over"] = "the RGB frames and 16-bit PCM before encoding (recomputable by re-running the recipe)"
    if recipe is not None:
        _against_recipe(recipe, slot, info, out, reasons)
    return out


def _against_recipe(recipe, slot: Optional[dict[str, Any]], info, out: dict[str, Any], reasons: list[str]) -> None:
    p = recipe.slot_params
    sample_rate = (slot or {}).get("media", {}).get("sample_rate") or info.sample_rate
    want = {"n_frames": p.n_frames, "n_samples": p.n_samples(sample_rate)}
    out["recipe_counts"] = want
    if info.n_frames != want["n_frames"] or info.n_audio_samples != want["n_samples"]:
        reasons.append(f"integrity: the file has {info.n_frames} frames and {info.n_audio_samples} samples, "
                       f"the recipe makes {want['n_frames']} and {want['n_samples']}")
    if slot is not None:
        digest = recipe.with_overrides(slot_id=slot.get("slot_id"), seed=slot.get("seed")).sha256()
        out["recipe_match"] = digest == slot.get("recipe_sha256")
        if not out["recipe_match"]:
            reasons.append(f"integrity: the recipe's digest {digest[:16]}… is not the signed {str(slot.get('recipe_sha256'))[:16]}…")
