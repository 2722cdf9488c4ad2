"""Accountable media (issue 22): keys, Content Credentials on every MP4, `vortex verify`.

One engine (cpu-preview) and two short signed slots for the module; every file is read back with
c2pa-python's Reader trusting the CA that `vortex keys init` wrote."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import time

import av
import c2pa
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.engines import engine_of
from support.recipes import short_recipe
from vortex.cli import main
from vortex.config import VortexConfig
from vortex.contracts.requests import SlotRequest
from vortex.media import probe_mp4
from vortex.provenance.credentials import AI_SOURCE_TYPE, SLOT_ASSERTION, assertion
from vortex.provenance.keys import SigningKeyError, init_keys, load_identity
from vortex.provenance.signing import with_signing_flags
from vortex.provenance.verify import VerifyOptions, verify_target
from vortex.recipe import Recipe


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    init_keys(folder)
    return folder


@pytest.fixture(scope="module")
def engine(keys):
    with engine_of(with_signing_flags(VortexConfig.load(), sign=keys)) as pipe:
        yield pipe


@pytest.fixture(scope="module")
def slot(tmp_path_factory, engine):
    """A signed 1.5 s slot, its recipe file and its sidecar."""
    out = tmp_path_factory.mktemp("slot")
    data = short_recipe(slot_id=4, seed=11)
    (out / "r.json").write_text(json.dumps(data))
    result = engine.run(SlotRequest(recipe=Recipe.from_dict(data), output=out / "s.mp4"))
    assert result.success, result.error_msg
    return {"mp4": out / "s.mp4", "recipe": out / "r.json", "meta": json.loads((out / "s.json").read_text()),
            "dir": out}


def _reader(path, ca):
    ctx = c2pa.Context.from_dict({"verify": {"verify_trust": True}, "trust": {"trust_anchors": ca.read_text()}})
    return c2pa.Reader(str(path), context=ctx)


# ---- step 1: keys ----------------------------------------------------------------------------------
def test_keys_init_writes_a_development_ca_a_leaf_first_chain_and_a_private_key(tmp_path, capsys):
    assert main(["keys", "init", str(tmp_path / "k")]) == 0
    out = capsys.readouterr().out
    assert "DEVELOPMENT" in out and "BEGIN" not in out  # says what it is; no key material printed
    k = tmp_path / "k"
    assert stat.S_IMODE(os.stat(k / "node.key").st_mode) == 0o600
    leaf, ca = x509.load_pem_x509_certificates((k / "node.pem").read_bytes())
    assert leaf.issuer == ca.subject and leaf.subject != leaf.issuer
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert x509.oid.ExtendedKeyUsageOID.EMAIL_PROTECTION in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey) and leaf.public_key().curve.name == "secp256r1"
    assert x509.load_pem_x509_certificate((k / "ca.pem").read_bytes()) == ca
    assert main(["keys", "init", str(k)]) == 2  # never overwrites an identity


def _expired_pair(folder):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    past = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(past).not_valid_after(past + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    folder.mkdir()
    (folder / "node.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "node.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))


def test_bad_keys_exit_2_naming_the_flag_before_any_model_loads(tmp_path, capsys, keys):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(short_recipe()))
    out = tmp_path / "x.mp4"
    assert main(["generate", str(recipe), "-o", str(out), "--sign", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert f"--sign {tmp_path / 'absent'}" in err and "does not exist" in err and "loading models" not in err
    _expired_pair(tmp_path / "old")
    assert main(["generate", str(recipe), "-o", str(out), "--sign", str(tmp_path / "old")]) == 2
    assert "expired" in capsys.readouterr().err
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "node.pem").write_bytes((keys / "node.pem").read_bytes())
    (wrong / "node.key").write_text("not a key")
    assert main(["generate", str(recipe), "-o", str(out), "--sign", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert "not an unencrypted PEM private key" in err and "not a key" not in err
    assert not out.exists()
    with pytest.raises(SigningKeyError, match="does not belong"):
        other = tmp_path / "other"
        init_keys(other)
        load_identity(keys / "node.pem", other / "node.key", where="t")


def test_signing_off_is_a_config_setting():
    assert not VortexConfig.load().with_changes({"signing": False}).signing.enabled
    assert VortexConfig.load().signing.enabled
    with pytest.raises(Exception, match="both cert_chain and key"):
        VortexConfig.load().with_changes({"signing": {"cert_chain": "a.pem"}})


# ---- step 2: credentials on the MP4 ----------------------------------------------------------------
def test_the_slot_mp4_carries_trusted_credentials_with_the_ai_assertion(slot, keys):
    mp4 = slot["mp4"]
    reader = _reader(mp4, keys / "ca.pem")
    assert reader.get_validation_state() == "Trusted"
    manifest = json.loads(reader.json())
    active = manifest["manifests"][manifest["active_manifest"]]
    actions = assertion(active, "c2pa.actions")["actions"]
    assert any(a["action"] == "c2pa.created" and a["digitalSourceType"] == AI_SOURCE_TYPE
               and a["softwareAgent"]["name"] == "vortex" for a in actions)
    ours = assertion(active, SLOT_ASSERTION)
    meta = slot["meta"]
    assert ours["proof"] == meta["proof"] and ours["seed"] == 11 and ours["recipe_sha256"] == meta["recipe_sha256"]
    assert ours["stand_ins"] == meta["stand_ins"] and ours["checks"]["speech"]["passed"] is True
    assert len(ours["media"]["video_sample_sha256"]) == 36 and ours["clip_embedding_sha256"]
    assert meta["provenance"]["signed"] and not meta["provenance"]["development_key"]
    info = probe_mp4(mp4)  # still playable, exact counts
    assert (info.n_frames, info.n_audio_samples, info.faststart) == (36, 36000, True)
    assert not [p for p in slot["dir"].iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_the_assertion_lists_the_loaded_models_and_their_weight_digests(slot, keys, engine, capsys):
    import hashlib

    from vortex.provenance.digests import model_digests

    assert main(["verify", str(slot["mp4"]), "--trust", str(keys / "ca.pem"), "--json"]) == 0
    models = json.loads(capsys.readouterr().out)["credentials"]["slot"]["models"]
    # cpu-preview loads these (the astronaut actor and the preview animator: no flux, no liveportrait)
    assert set(models) == {"kokoro", "clip_b", "clip_l", "preview", "faces", "whisper"}, sorted(models)
    assert models["preview"]["sha256"] is None  # procedural: no weights to digest
    for name in ("kokoro", "clip_b", "clip_l", "faces", "whisper"):
        entry = models[name]
        assert len(entry["sha256"]) == 64 and entry["files"], (name, entry)
        listed = "".join(f"{k}\t{v}\n" for k, v in sorted(entry["files"].items()))
        assert hashlib.sha256(listed.encode()).hexdigest() == entry["sha256"]
    cfg = engine.config
    onnx = next(k for k in models["kokoro"]["files"] if k.endswith(".durations.onnx"))
    assert models["kokoro"]["files"][onnx] == hashlib.sha256((cfg.cache_path / "kokoro-onnx" / onnx).read_bytes()).hexdigest()
    # computed once at load: the digests the engine holds are the signed ones, and a later call only stats
    assert engine.signer.models == models and model_digests(cfg, engine.registry.names) == models


def test_a_given_portrait_is_the_manifests_ingredient(engine, keys, tmp_path):
    import hashlib

    from PIL import Image
    from skimage import data as skdata

    portrait = tmp_path / "anchor.png"
    Image.fromarray(skdata.astronaut()).save(portrait)
    recipe = Recipe.from_dict(short_recipe(slot_id=5, seed=2, duration=1.0, script="Hello.", actor_image=str(portrait)))
    result = engine.run(SlotRequest(recipe=recipe, output=tmp_path / "p.mp4"))
    assert result.success, result.error_msg
    manifest = json.loads(_reader(tmp_path / "p.mp4", keys / "ca.pem").json())
    active = manifest["manifests"][manifest["active_manifest"]]
    assert [i["title"] for i in active["ingredients"]] == ["anchor.png"]
    assert active["ingredients"][0]["relationship"] == "inputTo"
    assert assertion(active, SLOT_ASSERTION)["portrait_sha256"] == hashlib.sha256(portrait.read_bytes()).hexdigest()


def test_without_sign_a_node_signs_with_its_own_development_key(tmp_path, monkeypatch):
    monkeypatch.setenv("VORTEX_CACHE", str(tmp_path / "cache"))
    from vortex.provenance.signing import identity_for

    identity = identity_for(VortexConfig.load())
    assert identity.development and (tmp_path / "cache" / "signing" / "ca.pem").exists()
    assert "BEGIN" not in repr(identity)
    assert identity_for(VortexConfig.load().with_changes({"signing": "off"})) is None


# ---- step 3: vortex verify -------------------------------------------------------------------------
def test_verify_passes_a_signed_slot_and_calls_another_signer_untrusted(slot, keys, tmp_path, capsys):
    assert main(["verify", str(slot["mp4"]), "--trust", str(keys / "ca.pem"), "--recipe", str(slot["recipe"])]) == 0
    assert "verified" in capsys.readouterr().out
    init_keys(tmp_path / "other")
    assert main(["verify", str(slot["mp4"]), "--trust", str(tmp_path / "other" / "ca.pem"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "not verified" and report["reasons"][0].startswith("untrusted")
    assert set(report) >= {"verdict", "credentials", "integrity", "watermark", "checks", "reasons"}


def test_verify_bad_input_exits_2(slot, tmp_path, capsys):
    assert main(["verify", str(slot["recipe"])]) == 2
    assert main(["verify", str(slot["mp4"]), "--trust", str(slot["recipe"])]) == 2
    assert main(["verify", str(tmp_path / "absent.mp4")]) == 2
    err = capsys.readouterr().err
    assert "neither an MP4" in err and "--trust" in err and "Traceback" not in err


def _packet(path, kind, index):
    with av.open(str(path)) as c:
        stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        packets = sorted((p for p in c.demux(stream) if p.size), key=lambda p: p.pts)
        return packets[index].pos, packets[index].size


@pytest.mark.parametrize("kind,index,name", [("video", 10, "frame 10"), ("audio", 5, "audio packet 5")])
def test_a_tampered_frame_or_audio_packet_is_caught_and_named(slot, keys, tmp_path, kind, index, name):
    data = bytearray(slot["mp4"].read_bytes())
    pos, size = _packet(slot["mp4"], kind, index)
    data[pos + size // 2] ^= 0xFF
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    report = verify_target(bad, VerifyOptions(trust=keys / "ca.pem"))
    assert report["verdict"] == "not verified"
    assert any("bmffHash.mismatch" in r for r in report["reasons"])
    assert any(r.startswith(f"integrity: {name} ") and "differs" in r for r in report["reasons"]), report["reasons"]


def test_verify_against_another_recipe_fails_on_its_digest_and_counts(slot, keys, tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps(short_recipe(slot_id=4, seed=11, duration=2.0, script="A different script entirely.")))
    report = verify_target(slot["mp4"], VerifyOptions(trust=keys / "ca.pem", recipe=other))
    assert report["integrity"]["recipe_match"] is False
    assert any("the recipe makes 48" in r for r in report["reasons"])


# ---- step 3: POST /v1/verify -----------------------------------------------------------------------
def test_the_service_signs_its_jobs_and_verifies_a_job_an_upload_and_garbage(tmp_path, keys, slot):
    import httpx

    from support.harness import Server, free_port

    s = Server(data=tmp_path / "data", port=free_port(), args=["--sign", str(keys)])
    s.data.mkdir()
    s.start()
    try:
        job = s.submit(short_recipe(slot_id=2, seed=3, duration=1.0, script="Hello.")).json()
        s.wait_state(job["id"], {"succeeded"}, timeout=300)
        r = httpx.post(s.url + "/v1/verify", files={"job": (None, job["id"])}, timeout=120)
        assert r.status_code == 200, r.text
        assert r.json()["verdict"] == "verified" and r.json()["credentials"]["trusted"]
        # an upload, trusted under another CA: untrusted, still a 200 with the reason
        init_keys(tmp_path / "other")
        r = httpx.post(s.url + "/v1/verify", timeout=120,
                       files={"file": ("s.mp4", slot["mp4"].read_bytes()),
                              "trust": ("ca.pem", (tmp_path / "other" / "ca.pem").read_bytes())})
        assert r.status_code == 200 and r.json()["reasons"][0].startswith("untrusted"), r.text
        r = httpx.post(s.url + "/v1/verify", files={"file": ("s.mp4", slot["mp4"].read_bytes()),
                                                    "trust": ("ca.pem", (keys / "ca.pem").read_bytes())}, timeout=120)
        assert r.json()["verdict"] == "verified", r.text
        for files in ({"file": ("x.mp4", b"not a video")}, {"job": (None, "nosuch")}, {"other": (None, "x")}):
            r = httpx.post(s.url + "/v1/verify", files=files, timeout=60)
            assert r.status_code in (404, 422) and "error" in r.json(), r.text
        assert httpx.post(s.url + "/v1/verify", content=b"{}", timeout=60).status_code == 422
        # a channel of this node, verified over HTTP segment by segment
        body = {"name": "prov", "loop": True, "lookahead": 1, "margin_sec": 0.5,
                "slots": [{"recipe": short_recipe(slot_id=1, seed=3, duration=2.0, script="Good evening.")}]}
        assert httpx.post(s.url + "/v1/channels", json=body, timeout=60).status_code == 201
        url = s.url + "/v1/channels/prov/index.m3u8"
        deadline = time.monotonic() + 240
        while "seg-" not in (r := httpx.get(url, timeout=30)).text or r.status_code != 200:
            assert time.monotonic() < deadline, "the channel listed no segment in 240 s"
            time.sleep(0.5)
        report = verify_target(url, VerifyOptions(trust=keys / "ca.pem"))
        assert report["verdict"] == "verified" and report["credentials"]["segments"] >= 1, report["reasons"]
        assert httpx.get(s.url + "/v1/channels/prov/seg-00001.m4s.prov.json", timeout=30).headers["content-type"] \
            == "application/json"
        assert "BEGIN PRIVATE KEY" not in s.log()
    finally:
        s.stop()


# ---- step 4: the live stream -----------------------------------------------------------------------
def test_every_aired_segment_is_signed_and_a_changed_one_is_named(tmp_path, keys, capsys):
    from vortex.channel.cli import main as channel_main

    (tmp_path / "a.json").write_text(json.dumps(short_recipe(slot_id=1, seed=5, duration=2.0, script="Good evening.")))
    channel = tmp_path / "channel.yaml"
    channel.write_text("name: prov\nloop: true\nslots:\n  - recipe: a.json\n")
    out = tmp_path / "out"
    assert channel_main(["run", str(channel), "--out", str(out), "--pace", "asap", "--max-slots", "2",
                         "--sign", str(keys)]) == 0
    playlist = out / "index.m3u8"
    segments = sorted(p.name for p in out.glob("seg-*.m4s"))
    assert len(segments) >= 2 and all((out / (s + ".prov.json")).is_file() for s in segments)
    capsys.readouterr()
    assert main(["verify", str(playlist), "--trust", str(keys / "ca.pem")]) == 0, capsys.readouterr().out
    _the_stream_carries_the_watermark(out, playlist, keys, tmp_path)
    init_keys(tmp_path / "other")
    report = verify_target(playlist, VerifyOptions(trust=tmp_path / "other" / "ca.pem"))
    assert report["verdict"] == "not verified" and all("untrusted" in r for r in report["reasons"])
    victim = out / segments[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    report = verify_target(playlist, VerifyOptions(trust=keys / "ca.pem"))
    assert report["reasons"] == [f"segment {segments[1]}: changed after publication (its SHA-256 is not the signed one)"]
    doc = json.loads((out / (segments[0] + ".prov.json")).read_text())
    doc["payload"]["sha256"] = "0" * 64  # re-pointing the manifest breaks its signature
    (out / (segments[0] + ".prov.json")).write_text(json.dumps(doc))
    report = verify_target(playlist, VerifyOptions(trust=keys / "ca.pem"))
    assert any(r.startswith(f"segment {segments[0]}: the manifest's signature is invalid") for r in report["reasons"])


def _the_stream_carries_the_watermark(out, playlist, keys, tmp_path):
    """Each 2 s segment reads the node and the slot on air (slots 0 and 1 of 2 s: one segment each), and
    a recording of the stream re-encoded at CRF 30, credentials gone, still names them."""
    from vortex.channel.hls.playlist import read_playlist
    from vortex.provenance.watermark import node_tag

    tag = f"{node_tag(os.environ.get('VORTEX_NODE_ID') or os.uname().nodename):04x}"
    mark = verify_target(playlist, VerifyOptions(trust=keys / "ca.pem"))["watermark"]
    assert mark["found"] and mark["read"], mark
    assert [(r["found"], r["node_tag"], r["slot_id"]) for r in mark["segments"]] == [(True, tag, k)
                                                                                     for k in range(len(mark["segments"]))]
    listed = read_playlist(out)
    recording = tmp_path / "recording.mp4"
    recording.write_bytes((out / listed.segments[0].map_uri).read_bytes() + (out / listed.segments[1].uri).read_bytes())
    copy = tmp_path / "recording-crf30.mp4"
    _reencode(recording, copy, 30, (640, 360))
    report = verify_target(copy, VerifyOptions(trust=keys / "ca.pem"))
    assert not report["credentials"]["present"] and report["watermark"]["found"], report["watermark"]
    assert (report["watermark"]["node_tag"], report["watermark"]["slot_id"]) == (tag, 1), report["watermark"]
    voice = tmp_path / "recording-voice.m4a"  # the stream's sound alone, AAC 96 kbit/s again: 2 s of slot 1
    _audio_only(recording, voice)
    heard = verify_target(voice, VerifyOptions(trust=keys / "ca.pem"))["watermark"]
    assert heard["carried_by"] == ["audio"] and (heard["node_tag"], heard["slot_id_low16"]) == (tag, 1), heard


def test_deep_rechecks_the_pixels_and_speech_and_fails_another_script(slot, keys, tmp_path):
    report = verify_target(slot["mp4"], VerifyOptions(trust=keys / "ca.pem", recipe=slot["recipe"], deep=True))
    deep = report["checks"]["deep"]
    assert report["verdict"] == "verified", report["reasons"]
    assert deep["face_present"] and deep["identity"]["passed"] and deep["speech"]["wer"] <= 0.7
    assert deep["clip"]["cosine"] >= 0.99
    other = tmp_path / "other.json"
    other.write_text(json.dumps(short_recipe(slot_id=4, seed=11, script="Completely different words about the weather.")))
    report = verify_target(slot["mp4"], VerifyOptions(trust=keys / "ca.pem", recipe=other, deep=True))
    assert any(r.startswith("deep: speech: word error rate") for r in report["reasons"]), report["reasons"]
    with pytest.raises(Exception, match="--deep needs --recipe"):
        verify_target(slot["mp4"], VerifyOptions(deep=True))


# ---- step 5: the watermark -------------------------------------------------------------------------
def _reencode(src, dst, crf, size=None, start=0):
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        v = out.add_stream("libx264", rate=24, options={"crf": str(crf), "preset": "veryfast"})
        v.width, v.height = size or (vin.width, vin.height)
        v.pix_fmt = "yuv420p"
        first = None
        for index, frame in enumerate(inp.decode(vin)):
            if index < start:  # a clip cut from the middle: its first frame is the slot's frame `start`
                continue
            first = frame.pts if first is None else first
            frame.pts -= first
            for p in v.encode(frame.reformat(width=v.width, height=v.height, format="yuv420p")):
                out.mux(p)
        for p in v.encode():
            out.mux(p)


def test_a_reencoded_copy_loses_the_credentials_but_keeps_the_watermark(slot, keys, tmp_path):
    from vortex.provenance.watermark import node_tag

    signed = verify_target(slot["mp4"], VerifyOptions(trust=keys / "ca.pem"))
    assert signed["watermark"]["found"] and signed["watermark"]["matches_credentials"]
    node = signed["credentials"]["slot"]["node"]
    # whole copies, and a clip cut from frame 16 (4 frames into a window: the frame-0 alignment would misread it)
    for name, crf, size, start in (("crf30", 30, None, 0), ("small", 30, (640, 360), 0), ("cut", 30, None, 16)):
        copy = tmp_path / f"{name}.mp4"
        _reencode(slot["mp4"], copy, crf, size, start)
        report = verify_target(copy, VerifyOptions(trust=keys / "ca.pem"))
        assert not report["credentials"]["present"] and report["verdict"] == "not verified"
        mark = report["watermark"]
        assert mark["found"] and mark["slot_id"] == 4 and mark["node_tag"] == f"{node_tag(node):04x}", mark
        # the alignment read is the cut's, give or take a frame
        assert min((mark["offset"] - start) % 12, (start - mark["offset"]) % 12) <= 1 and mark["frames"] == 36 - start, mark
        assert any(r.startswith("only the watermark is left") for r in report["reasons"])


def test_the_pixel_mark_adds_its_rounded_field_saturating_at_black_and_white():
    """Marker: frame + floor(s * field + 0.5) clipped to 0..255, the sign flipping every WINDOW
    frames, for a uint8 frame (two saturating adds), a strided view, a float frame and a picture
    of another size (the program's 1280x720 around a 512² slot)."""
    from vortex.provenance.watermark import WINDOW, Marker, sign_at

    rng = np.random.default_rng(3)
    marker = Marker("node-a", 9, 64, 96)
    for h, w in ((64, 96), (72, 128)):
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        frame[:8], frame[8:16] = 0, 255  # where the mark saturates
        for index in (0, WINDOW - 1, WINDOW, 3 * WINDOW + 5):
            out = marker(index, frame)
            field = marker.field.astype(np.float64)
            expected = np.clip(frame + np.floor(sign_at(index) * field + 0.5), 0, 255).astype(np.uint8)
            assert np.array_equal(out, expected) and out is not frame
            assert np.array_equal(marker(index, frame[:, ::-1]), np.clip(
                frame[:, ::-1] + np.floor(sign_at(index) * field + 0.5), 0, 255).astype(np.uint8))
            assert np.array_equal(marker(index, frame.astype(np.float32)), expected)
        assert np.abs(marker(0, frame).astype(int) - frame).max() >= 1  # it marks at all


def _audio_only(src, dst, bitrate=96_000, rate=None, start_s=0.0):
    """The sound alone, re-encoded as AAC (`bitrate`, `rate`), from `start_s` on: a voice clip."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        a = out.add_stream("aac", rate=rate or inp.streams.audio[0].rate)
        a.bit_rate, a.layout = bitrate, "mono"
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=a.rate)
        skip = round(start_s * inp.streams.audio[0].rate)
        for frame in inp.decode(inp.streams.audio[0]):
            pcm = frame.to_ndarray()[:, skip:]
            skip = max(0, skip - frame.samples)
            if pcm.shape[1] == 0:
                continue
            cut = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm), format=frame.format.name, layout="mono")
            cut.sample_rate = frame.sample_rate
            for f in resampler.resample(cut):
                for p in a.encode(f):
                    out.mux(p)
        for f in resampler.resample(None):
            for p in a.encode(f):
                out.mux(p)
        for p in a.encode(None):
            out.mux(p)


def test_the_sound_alone_keeps_the_watermark(engine, keys, tmp_path):
    """The speech carries the payload too (vortex.provenance.audio_mark): the audio cut out of a slot,
    re-encoded at AAC 96 kbit/s (and resampled to 44.1 kHz, and cut from 1 s on), still names node and
    slot; an unmarked file reads nothing."""
    from vortex.provenance.audio_mark import read_audio_mark_file
    from vortex.provenance.watermark import node_tag

    data = short_recipe(slot_id=7, seed=12, duration=4.0, script="Good evening, here is the news from the harbour tonight.")
    (tmp_path / "r.json").write_text(json.dumps(data))
    result = engine.run(SlotRequest(recipe=Recipe.from_dict(data), output=tmp_path / "s.mp4"))
    assert result.success, result.error_msg
    signed = verify_target(tmp_path / "s.mp4", VerifyOptions(trust=keys / "ca.pem"))
    tag = f"{node_tag(signed['credentials']['slot']['node']):04x}"
    assert signed["watermark"]["carried_by"] == ["pixels", "audio"], signed["watermark"]
    assert (signed["watermark"]["audio"]["node_tag"], signed["watermark"]["audio"]["slot_id_low16"]) == (tag, 7)
    for name, kwargs in (("aac96", {}), ("aac96-44k", {"rate": 44_100}), ("cut", {"start_s": 1.0})):
        clip = tmp_path / f"{name}.m4a"
        _audio_only(tmp_path / "s.mp4", clip, **kwargs)
        report = verify_target(clip, VerifyOptions(trust=keys / "ca.pem"))
        mark = report["watermark"]
        assert report["verdict"] == "not verified" and mark["carried_by"] == ["audio"], mark
        assert mark["found"] and (mark["node_tag"], mark["slot_id_low16"]) == (tag, 7), mark
        assert any(r.startswith("only the watermark is left") for r in report["reasons"]), report["reasons"]
    from vortex.provenance.audio_mark import read_audio_mark

    noise = np.random.default_rng(3).standard_normal(4 * 24_000).astype(np.float32) * 0.1  # no mark in it
    assert not read_audio_mark(noise)["found"]
    assert read_audio_mark_file(tmp_path / "r.json")["found"] is False  # not media: no mark, and why
