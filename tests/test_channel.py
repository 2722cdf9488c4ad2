"""`vortex channel run`: a schedule of real engine slots (cpu-preview) becomes one gapless HLS stream.

Slots are short (1.5-1.7 s) and run with `--pace asap`. The finished playlist is decoded as one
MPEG-TS stream: exactly the scheduled frames and samples, timestamps +1 frame / +1 AAC frame all
the way (no gap at a slot boundary). A slot that can never be made (a portrait with no face: an
`input` error, never retried) still fills its air time exactly; kill -9 and a restart continue the
stream without touching a listed segment.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from vortex.channel.hls import read_playlist
from vortex.channel.cli import main
from vortex.channel.filler import BACKGROUND

from streams import FPS, SR, TS, decode

GOOD_A = {"slot_params": {"slot_id": 1, "duration_sec": 1.5, "fps": 24, "seed": 5},
          "audio_track": {"script": "Good evening.", "voice_id": "anchor"},
          "visual_track": {"prompt": "news anchor portrait"}}
GOOD_C = {"slot_params": {"slot_id": 3, "duration_sec": 1.5, "fps": 24, "seed": 9},
          "audio_track": {"script": "Hello there.", "voice_id": "rick_c137"},
          "visual_track": {"prompt": "scientist portrait"}}
INLINE_B = ('{slot_params: {duration_sec: 1.7, fps: 24, seed: 7}, audio_track: {script: "Sunny today.", '
            'voice_id: narrator}, visual_track: {prompt: "weather presenter"}}')
NO_FACE = {"slot_params": {"slot_id": 2, "duration_sec": 1.7, "fps": 24},
           "audio_track": {"script": "Nobody home.", "voice_id": "morty"},
           "visual_track": {"prompt": "an empty room", "actor_image": "noface.png"}}


def write_channel(folder: Path, body: str, recipes: dict[str, dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, recipe in recipes.items():
        (folder / name).write_text(json.dumps(recipe))
    path = folder / "channel.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def run_channel(channel: Path, out: Path, *extra: str) -> int:
    return main(["run", str(channel), "--out", str(out), "--pace", "asap", *extra])


def state_of(folder: Path) -> dict:
    return json.loads((folder / "channel.json").read_text())


def listed_frames(folder: Path) -> int:
    return sum(round(s.duration_sec * FPS) for s in read_playlist(folder).segments)


def test_looped_channel_is_exact_and_gapless(tmp_path):
    channel = write_channel(tmp_path / "def", f"""\
        name: loop-3
        loop: true
        lookahead: 2
        slots:
          - recipe: a.json
          - recipe: {INLINE_B}
          - recipe: c.json
        """, {"a.json": GOOD_A, "c.json": GOOD_C})
    out = tmp_path / "out"
    assert run_channel(channel, out, "--max-slots", "4") == 0

    state = state_of(out)
    slots = state["slots"]
    assert [s["index"] for s in slots] == [0, 1, 2, 3]
    assert [s["position"] for s in slots] == [0, 1, 2, 0]  # the list replays
    assert [s["decision"] for s in slots] == ["aired"] * 4
    n = [36, 41, 36, 36]  # 1.5 s, 1.7 s, 1.5 s, 1.5 s at 24 fps
    assert [s["n_frames"] for s in slots] == n
    assert [s["first_frame"] for s in slots] == [0, 36, 77, 113]
    assert all(len(s["attempts"]) == 1 and s["attempts"][0]["outcome"] == "ok" for s in slots)
    assert state["ended"] is True

    playlist = read_playlist(out)
    assert playlist.ended and (out / "index.m3u8").read_text().rstrip().endswith("#EXT-X-ENDLIST")
    assert playlist.segments[0].program_date_time.isoformat(timespec="milliseconds") == slots[0]["air_time"]
    vpts, apts, pcm, priming, frames = decode(out)
    total = sum(n)
    assert len(vpts) == total == listed_frames(out)
    assert set(np.diff(vpts)) == {TS // FPS}  # +1 frame all the way: no gap at 36, 77 or 113
    assert set(np.diff(apts)) == {1024 * TS // SR}  # contiguous AAC frames across every boundary
    assert priming == 1024  # the only priming is at the stream's start
    samples = total * SR // FPS
    assert samples <= pcm.size - priming < samples + 1024
    speech = pcm[priming:priming + samples]
    for s in slots:  # every slot carries its speech (not silence)
        part = speech[s["first_frame"] * 1000:(s["first_frame"] + s["n_frames"]) * 1000]
        assert np.sqrt(np.mean(part ** 2)) > 0.01, s
    # Each frame was encoded once: the engine spooled the slots (no slot MP4), and only the last good
    # slot's spool (the filler's source) and its sidecar are kept.
    assert sorted(p.name for p in (out / "slots").iterdir()) == ["slot-00003.json", "slot-00003.pcm",
                                                                  "slot-00003.yuv"]
    assert json.loads((out / "slots" / "slot-00003.json").read_text())["success"] is True


@pytest.fixture(scope="module")
def no_face_png(tmp_path_factory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "noface.png"
    y, x = np.mgrid[0:512, 0:512]
    Image.fromarray(np.stack([x // 2, y // 2, (x + y) // 4], -1).astype(np.uint8)).save(path)
    return path


def test_a_slot_that_never_succeeds_is_filled_exactly(tmp_path, no_face_png):
    folder = tmp_path / "def"
    channel = write_channel(folder, """\
        name: fail-7
        max_attempts: 3
        filler: {policy: last_good}
        slots:
          - recipe: bad.json
          - recipe: a.json
          - recipe: bad.json
        """, {"a.json": GOOD_A, "bad.json": NO_FACE})
    (folder / "noface.png").write_bytes(no_face_png.read_bytes())
    out = tmp_path / "out"
    assert run_channel(channel, out) == 0  # the list does not loop: it ends after 3 slots

    slots = state_of(out)["slots"]
    # No last good slot yet: the stand-by card; then slot 1 re-aired, padded from 36 to 41 frames.
    assert [s["decision"] for s in slots] == ["filler:standby", "aired", "filler:last_good"]
    assert slots[2]["filler_of"] == 1
    for s in (slots[0], slots[2]):
        assert len(s["attempts"]) == 1  # an input error is not retried
        assert s["attempts"][0]["outcome"] == "failed" and s["attempts"][0]["error_kind"] == "input"
        assert "actor_image" in s["attempts"][0]["error"]
    vpts, apts, pcm, priming, frames = decode(out)
    assert len(vpts) == 41 + 36 + 41 == listed_frames(out)  # every failed slot's air time covered exactly
    assert set(np.diff(vpts)) == {TS // FPS} and set(np.diff(apts)) == {1024 * TS // SR}
    samples = len(vpts) * 1000
    assert samples <= pcm.size - priming < samples + 1024
    audio = pcm[priming:priming + samples]
    card = frames[20].astype(float)
    assert np.abs(card[:40].mean(axis=(0, 1)) - BACKGROUND).max() < 6  # the dark stand-by card ...
    assert np.sqrt(np.mean(audio[:41_000] ** 2)) < 1e-3  # ... with silence
    # The re-aired slot starts as slot 1 did, and its last frames are slot 1's last one, frozen.
    assert np.abs(frames[77].astype(float) - frames[41]).mean() < 4
    assert np.abs(frames[-1].astype(float) - frames[41 + 35]).mean() < 4
    assert np.sqrt(np.mean(audio[(77 + 36) * 1000 + 600:] ** 2)) < 1e-3  # padded with silence


CRASHING = """
import sys
from vortex.channel.cli import main
sys.exit(main(["run", {channel!r}, "--out", {out!r}, "--pace", "asap", "--max-slots", "9"]))
"""


def test_kill_9_and_restart_continue_the_stream(tmp_path):
    channel = write_channel(tmp_path / "def", """\
        name: crash-7
        loop: true
        lookahead: 1
        slots:
          - recipe: a.json
          - recipe: c.json
        """, {"a.json": GOOD_A, "c.json": GOOD_C})
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", CRASHING.format(channel=str(channel), out=str(out))], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if (out / "index.m3u8").is_file() and len(read_playlist(out).segments) >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the channel process ended before it was killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = read_playlist(out)
    assert len(before.segments) >= 2 and not before.ended
    digests = {s.uri: hashlib.sha256((out / s.uri).read_bytes()).hexdigest() for s in before.segments}
    # Frames the killed run published: its listed segments and the parts of its open segment (the
    # restart closes that segment as it is, so a slot that began in those parts has aired)
    open_parts = before.open is not None and bool(before.open.parts)
    listed = listed_frames(out) + (round(before.open.duration_sec * FPS) if open_parts else 0)
    aired = [s for s in state_of(out)["slots"] if s["first_frame"] is not None and s["first_frame"] < listed]
    resume_at = len(aired)

    assert run_channel(channel, out, "--max-slots", str(resume_at + 2)) == 0
    after = read_playlist(out)
    assert after.segments[:len(before.segments)] == before.segments  # nothing listed is lost or rewritten
    for uri, digest in digests.items():
        assert hashlib.sha256((out / uri).read_bytes()).hexdigest() == digest
    assert [s.discontinuity for s in after.segments].count(True) == 1
    # Exactly where the stream restarted: after the segment that recovery closed from the killed run's
    # published parts, if it had any (parts listed as the open segment when it was killed)
    restart = len(before.segments) + (1 if open_parts else 0)
    assert after.segments[restart].discontinuity, (restart, before.open)
    assert after.ended
    state = state_of(out)
    assert [s["index"] for s in state["slots"]] == list(range(resume_at + 2))  # slots continue at the next index
    assert state["epochs"][-1]["first_index"] == resume_at and state["epochs"][-1]["resumed"]
    new = state["slots"][resume_at:]
    assert [s["decision"] for s in new] == ["aired", "aired"] and new[0]["first_frame"] == listed
    vpts, apts, pcm, priming, _ = decode(out)
    assert len(vpts) == listed_frames(out) == listed + sum(s["n_frames"] for s in new)
    assert set(np.diff(vpts)) == {TS // FPS}  # timestamps run on over the restart
    assert pcm.size > 0


@pytest.mark.parametrize("body, field", [
    ("name: x\nlookahead: 0\nslots: [{recipe: a.json}]\n", "lookahead"),
    ("name: x\nslots: []\n", "slots"),
    ("name: 'bad name'\nslots: [{recipe: a.json}]\n", "name"),
    ("name: x\nstart: '2026-12-01T21:00:00'\nslots: [{recipe: a.json}]\n", "start"),
    ("name: x\nfiller: {policy: black}\nslots: [{recipe: a.json}]\n", "filler.policy"),
    ("name: x\nslots: [{recipe: a.json}, {recipe: missing.json}]\n", "slots[1].recipe"),
    ("name: x\nslots: [{recipe: a.json}, {recipe: {slot_params: {duration_sec: 1.5, fps: 25}, audio_track: "
     "{script: hi, voice_id: anchor}, visual_track: {prompt: p}}}]\n", "slots[1].recipe.slot_params.fps"),
    ("name: x\nslots: [{recipe: {slot_params: {duration_sec: 1.5}, audio_track: {script: hi, voice_id: nobody}, "
     "visual_track: {prompt: p}}}]\n", "slots[0].recipe.audio_track.voice_id"),
    ("name: x\nshuffle: true\nslots: [{recipe: a.json}]\n", "shuffle"),
    ("name: x\nslots_in_flight: 0\nslots: [{recipe: a.json}]\n", "slots_in_flight"),
])
def test_bad_channel_file_exits_2_naming_the_field(tmp_path, capsys, body, field):
    (tmp_path / "a.json").write_text(json.dumps(GOOD_A))
    (tmp_path / "bad.yaml").write_text(body)
    assert main(["run", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"field '{field}'" in err and "bad.yaml" in err, err
    assert not (tmp_path / "out").exists()  # refused before anything was made
