"""Slot and ad-break markers: EXT-X-DATERANGE per aired item, SCTE-35 on breaks, `{break: SECONDS}`.

A real channel (cpu-preview, `--pace asap`) airs a slot, a 2 s break and a slot; its playlist is read
with a DATERANGE parser written here from RFC 8216bis §4.2's attribute-list grammar (not the
project's), the SCTE-35 is decoded with threefive, and the stream is decoded with PyAV. A restart
(HlsChannelWriter.resume) keeps every earlier tag byte for byte and continues; a killed run's open
range is closed by the next one with what the playlist shows it aired.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from vortex.channel.cli import main
from vortex.channel.definition import ChannelDefinition, ChannelError
from vortex.channel.filler import BACKGROUND, standby_card

from dateranges import by_id, read_ranges, scte35
from streams import FPS, SR, decode

SLOT_A = {"slot_params": {"slot_id": 1, "duration_sec": 1.5, "fps": 24, "seed": 5},
          "audio_track": {"script": "Good evening.", "voice_id": "anchor"},
          "visual_track": {"prompt": "news anchor portrait"}}
SLOT_C = {"slot_params": {"slot_id": 3, "duration_sec": 1.7, "fps": 24, "seed": 9},
          "audio_track": {"script": "Hello there.", "voice_id": "rick_c137"},
          "visual_track": {"prompt": "scientist portrait"}}
BREAK_SEC = 2.0
CHANNEL = """\
    name: markers-7
    loop: true
    slots:
      - recipe: a.json
      - break: 2
      - recipe: c.json
    """


# -- the channel ------------------------------------------------------------------------------------

def write_channel(folder: Path, body: str = CHANNEL) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.json").write_text(json.dumps(SLOT_A))
    (folder / "c.json").write_text(json.dumps(SLOT_C))
    (folder / "channel.yaml").write_text(textwrap.dedent(body))
    return folder / "channel.yaml"


@pytest.fixture(scope="module")
def aired(tmp_path_factory):
    """slot, break, slot (`--max-slots 3`: the break counts as one); then a restart airs 2 more."""
    root = tmp_path_factory.mktemp("markers")
    channel, out = write_channel(root / "def"), root / "out"
    assert main(["run", str(channel), "--out", str(out), "--pace", "asap", "--max-slots", "3"]) == 0
    first = {"text": (out / "index.m3u8").read_text(), "state": json.loads((out / "channel.json").read_text())}
    first["frames"] = decode(out)
    assert main(["run", str(channel), "--out", str(out), "--pace", "asap", "--max-slots", "5"]) == 0
    return {"out": out, "channel": channel, "first": first, "text": (out / "index.m3u8").read_text(),
            "state": json.loads((out / "channel.json").read_text())}


def test_max_slots_counts_a_break_as_one_item(aired):
    slots = aired["first"]["state"]["slots"]
    assert [s["decision"] for s in slots] == ["aired", "break", "aired"]
    assert [s["n_frames"] for s in slots] == [36, 48, 41]
    assert slots[1]["recipe"] == "break" and slots[1]["attempts"] == []  # nothing was made for it
    assert [s["decision"] for s in aired["state"]["slots"]] == ["aired", "break", "aired", "aired", "break"]


def test_every_item_is_one_date_range_at_its_first_frame(aired):
    state, ranges = aired["first"]["state"], read_ranges(aired["first"]["text"])
    items = by_id(ranges)
    assert list(items) == ["slot-0", "slot-1", "slot-2"]  # one ID per item, in air order
    definition = ChannelDefinition.from_file(aired["channel"])
    for s in state["slots"]:
        opening, closing = items[f"slot-{s['index']}"]
        kind = "break" if s["decision"] == "break" else "slot"
        # The opening tag: just before the segment that starts with the item's first frame.
        assert opening["START-DATE"] == opening["next_pdt"] == s["air_time"]
        assert opening["frame"] == s["first_frame"]
        assert opening["CLASS"] == f"com.vortex.{kind}" and opening["X-KIND"] == kind
        assert opening["X-SLOT-ID"] == str(s["index"])
        assert opening["PLANNED-DURATION"] == pytest.approx(s["n_frames"] / FPS, abs=5e-4)
        if kind == "slot":
            assert opening["X-RECIPE-DIGEST"] == definition.slots[s["position"]].recipe.sha256()
        else:
            assert "X-RECIPE-DIGEST" not in opening
        # The closing tag: same ID, CLASS and START-DATE (RFC: a repeated attribute keeps its value),
        # the DURATION that aired, placed where the next item starts.
        assert (closing["CLASS"], closing["START-DATE"]) == (opening["CLASS"], opening["START-DATE"])
        assert closing["DURATION"] == pytest.approx(s["n_frames"] / FPS, abs=5e-4)
        assert closing["frame"] == s["first_frame"] + s["n_frames"]
        start = datetime.fromisoformat(opening["START-DATE"])
        if closing["next_pdt"] is not None:
            assert datetime.fromisoformat(closing["next_pdt"]) - start == timedelta(seconds=round(closing["DURATION"], 3))
    assert ranges[-1]["next_pdt"] is None  # the last close follows the last segment, before ENDLIST
    assert aired["first"]["text"].rstrip().endswith(ranges[-1]["line"] + "\n#EXT-X-ENDLIST")


def test_the_break_carries_scte35_out_and_in_with_its_duration(aired):
    opening, closing = by_id(read_ranges(aired["first"]["text"]))["slot-1"]
    assert "SCTE35-IN" not in opening and "SCTE35-OUT" not in closing
    out, back = scte35(opening["SCTE35-OUT"]), scte35(closing["SCTE35-IN"])
    for cue in (out, back):
        assert cue.info_section.table_id == "0xfc" and cue.command.command_type == 5  # splice_insert
    assert out.command.out_of_network_indicator is True and out.command.duration_flag is True
    assert out.command.break_duration == pytest.approx(BREAK_SEC, abs=1 / 90000)
    assert out.command.break_auto_return is True
    assert back.command.out_of_network_indicator is False
    assert back.command.splice_event_id == out.command.splice_event_id


def test_the_break_airs_the_slate_with_silence(aired):
    slots = aired["first"]["state"]["slots"]
    vpts, apts, pcm, priming, frames = aired["first"]["frames"]
    assert len(frames) == sum(s["n_frames"] for s in slots)
    b = slots[1]
    slate = np.stack(frames[b["first_frame"]:b["first_frame"] + b["n_frames"]])
    corner = slate[:, :8, :8].reshape(-1, 3).mean(axis=0)
    assert np.abs(corner - BACKGROUND).max() < 6  # the stand-by card's background
    card = standby_card("markers-7", slate.shape[2], slate.shape[1]).astype(np.int16)
    error = np.abs(slate.astype(np.int16) - card).mean(axis=(1, 2, 3))
    assert error.max() < 1.5, error  # every frame is the card (x264 blurs its text edges a little)
    speech = pcm[priming:]
    hush = speech[b["first_frame"] * SR // FPS + 2048:(b["first_frame"] + b["n_frames"]) * SR // FPS - 2048]
    assert np.sqrt(np.mean(hush ** 2)) < 1e-3
    before = speech[slots[0]["first_frame"] * SR // FPS:b["first_frame"] * SR // FPS]
    assert np.sqrt(np.mean(before ** 2)) > 0.01  # the slot before it speaks


def test_a_restart_keeps_every_marker_and_continues(aired):
    old, new = read_ranges(aired["first"]["text"]), read_ranges(aired["text"])
    assert [r["line"] for r in new[:len(old)]] == [r["line"] for r in old]  # byte for byte, in order
    # ... and each still precedes the same segment (the last close: now the first new segment).
    assert [(r["next_pdt"], r["frame"]) for r in new[:len(old) - 1]] == [(r["next_pdt"], r["frame"]) for r in old[:-1]]
    state = aired["state"]["slots"]
    items = by_id(new)
    assert list(items) == [f"slot-{i}" for i in range(5)]  # IDs unique across the restart
    for s in state[3:]:
        opening, closing = items[f"slot-{s['index']}"]
        assert opening["START-DATE"] == opening["next_pdt"] == s["air_time"] and opening["frame"] == s["first_frame"]
        assert closing["DURATION"] == pytest.approx(s["n_frames"] / FPS, abs=5e-4)
    assert "SCTE35-OUT" in items["slot-4"][0] and "SCTE35-IN" in items["slot-4"][1]
    assert scte35(items["slot-4"][0]["SCTE35-OUT"]).command.splice_event_id != \
        scte35(items["slot-1"][0]["SCTE35-OUT"]).command.splice_event_id
    text = aired["text"]
    assert text.count("#EXT-X-DISCONTINUITY") == 1
    # the first run's last close sits before the restart's DISCONTINUITY, where it was written
    # The first run's last close stays where it was written (after its last segment); the restart's
    # first segment takes it over, its own opening tag after it, then the DISCONTINUITY.
    assert text.index(old[-1]["line"]) < text.index(items["slot-3"][0]["line"]) < text.index("#EXT-X-DISCONTINUITY")


# -- a killed run's open range (the writer alone, no engine) ----------------------------------------

KILLED = """\
import os, sys, numpy as np
from datetime import datetime, timezone
from vortex.channel.hls.writer import HlsChannelWriter
from vortex.channel.marking import Marks
w = HlsChannelWriter(sys.argv[1], width=64, height=64, fps=24, program_start=datetime(2026, 12, 6, 22, tzinfo=timezone.utc))
m = Marks()
m.begin(w, kind="slot", id="slot-0", planned_sec=1.0, slot_id="0", recipe_digest="ab")
w.append_slot(np.zeros((24, 64, 64, 3), np.uint8), np.zeros(24000, np.float32))
m.begin(w, kind="break", id="slot-1", planned_sec=5.0, slot_id="1", scte35_event_id=2)
w.append_slot(np.zeros((60, 64, 64, 3), np.uint8), np.zeros(60000, np.float32))  # 2.5 s of 5 aired
os._exit(0)  # like kill -9: nothing closed, the last parts not cut
"""


def test_a_killed_runs_open_break_is_closed_by_the_next_run(tmp_path):
    from vortex.channel.hls.writer import HlsChannelWriter
    from vortex.channel.marking import Marks

    folder = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", KILLED, str(folder)], env=env, check=True, timeout=120)
    before = read_ranges((folder / "index.m3u8").read_text())
    assert [(r["ID"], "DURATION" in r) for r in before] == [("slot-0", False), ("slot-0", True), ("slot-1", False)]
    w = HlsChannelWriter.resume(folder, width=64, height=64, fps=24,
                                air_time=datetime.fromisoformat("2026-12-06T22:10:00+00:00"))
    marks = Marks()
    assert marks.recover(w) == 1
    marks.begin(w, kind="slot", id="slot-2", planned_sec=0.5, slot_id="2", recipe_digest="ab")
    w.append_slot(np.zeros((12, 64, 64, 3), np.uint8), np.zeros(12000, np.float32))
    marks.end(w)
    w.close()
    after = read_ranges((folder / "index.m3u8").read_text())
    assert [r["line"] for r in after[:3]] == [r["line"] for r in before]
    closing = after[3]
    assert closing["ID"] == "slot-1" and closing["START-DATE"] == before[2]["START-DATE"]
    listed = closing["frame"] - before[2]["frame"]  # what the killed run listed of the break
    assert 0 < listed <= 60 and closing["DURATION"] == pytest.approx(listed / FPS, abs=5e-4)
    assert scte35(closing["SCTE35-IN"]).command.splice_event_id == 2
    assert scte35(closing["SCTE35-IN"]).command.out_of_network_indicator is False
    assert [r["ID"] for r in after[4:]] == ["slot-2", "slot-2"]


# -- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry, field", [
    ("{break: 0}", "slots[1].break"),
    ("{break: -5}", "slots[1].break"),
    ("{break: 600.5}", "slots[1].break"),
    ("{break: '30'}", "slots[1].break"),
    ("{break: true}", "slots[1].break"),
    ("{break: 30, slate: missing.png}", "slots[1].slate"),
    ("{break: 30, slate: a.json}", "slots[1].slate"),
    ("{break: 30, length: 2}", "slots[1]"),
])
def test_bad_break_exits_2_naming_the_field(tmp_path, capsys, entry, field):
    channel = write_channel(tmp_path, f"name: x\nslots: [{{recipe: a.json}}, {entry}]\n")
    assert main(["run", str(channel), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"field '{field}'" in err and "channel.yaml" in err, err
    assert not (tmp_path / "out").exists()  # refused before anything was made


def test_break_limits_and_slates(tmp_path):
    from PIL import Image

    Image.new("RGB", (160, 90), (200, 30, 30)).save(tmp_path / "slate.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    write_channel(tmp_path, "name: x\n")
    d = ChannelDefinition.from_dict({"name": "x", "slate": "slate.png", "slots": [
        {"recipe": "a.json"}, {"break": 600}, {"break": 0.5}]}, base_dir=tmp_path)
    assert [s.is_break for s in d.slots] == [False, True, True]
    assert (d.slots[1].n_frames, d.slots[1].duration_sec, d.slots[1].slate) == (14400, 600.0, tmp_path / "slate.png")
    assert (d.slots[2].n_frames, d.fps) == (12, 24)
    for data, field in (({"slate": "broken.png", "slots": [{"recipe": "a.json"}]}, "slate"),
                        ({"slots": [{"break": 30}]}, "slots")):
        with pytest.raises(ChannelError) as exc:
            ChannelDefinition.from_dict({"name": "x", **data}, base_dir=tmp_path)
        assert exc.value.field == field
    from vortex.channel.breaks import slate_frame

    frame = slate_frame(tmp_path / "slate.png", "x", 128, 128)  # 16:9 fitted inside a square, centred
    assert frame.shape == (128, 128, 3) and tuple(frame[64, 64]) == (200, 30, 30)
    assert np.abs(frame[2, 64].astype(int) - BACKGROUND).max() < 3


def test_short_items_keep_their_parts_as_long_as_two_second_segments_did(tmp_path):
    """Items of 13 frames make segments of 13 frames (each item's first frame starts one): the part files
    stay 16 s of stream after their segment (3 target durations listed, 3 more to fetch: publish.py),
    counted in seconds, not in segments."""
    from vortex.channel.hls import read_playlist
    from vortex.channel.hls.writer import HlsChannelWriter
    from vortex.channel.marking import Marks

    w = HlsChannelWriter(tmp_path, width=64, height=64, fps=24,
                         program_start=datetime.fromisoformat("2026-12-06T22:00:00+00:00"))
    marks = Marks()
    for i in range(48):
        marks.begin(w, kind="slot", id=f"slot-{i}", planned_sec=13 / 24, slot_id=str(i), recipe_digest="ab")
        w.append_slot(np.zeros((13, 64, 64, 3), np.uint8), np.zeros(13000, np.float32))
    marks.end(w)
    w.close()
    segments = read_playlist(tmp_path).segments
    assert len(segments) == 48 and {round(s.duration_sec * FPS) for s in segments} == {13}
    ends = np.cumsum([s.duration_sec for s in segments])
    parts = sorted(p.name for p in tmp_path.glob("part-*.m4s"))
    kept = {int(name[5:10]) for name in parts}
    for k, end in enumerate(ends, start=1):  # segment k's parts: kept while it ended < 16 s before the end
        assert (k in kept) == (ends[-1] - end < 16 - 1e-6), (k, ends[-1] - end)
