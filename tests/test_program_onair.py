"""The program through a restart and an ad break (a real cpu-preview engine, in process):

- a PATCH of the ticker is kept in channel.json and a restarted run (a new runner on the same
  folder: the path a restart of the service and a takeover by another node take) airs it;
  tesseract reads the ticker band before the PATCH, after it, and after the restart;
- a `{break: N}` airs its slate as the whole 1280x720 picture: the card, or the configured file,
  with no set, lower third, ticker or AI label; its SCTE-35 markers are as before."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from support.engines import engine_fixture
from support.ocr import ocr, ocr_still
from support.recipes import short_recipe

from vortex.channel.definition import ChannelDefinition
from vortex.channel.filler import standby_card
from vortex.channel.program_text import patched, restore
from vortex.channel.scheduler import ChannelRunner, RunOptions
from vortex.program.graphics import layout
from vortex.program.spec import parse_program

from dateranges import by_id, read_ranges
from streams import FPS, SR, decode

engine = engine_fixture()  # the embedded default: cpu-preview
PROGRAM = {"lower_third": {"name": "Ada Reyes", "title": "Evening News"}, "ticker": ["Comet seen over the harbor"]}
SLOT = short_recipe(slot_id=1, seed=5, duration=1.5, script="Good evening.")


def write_sponsor(path) -> np.ndarray:
    """A 16:9 slate: four colour quarters, so a misplaced or boxed picture shows."""
    rgb = np.zeros((360, 640, 3), np.uint8)
    rgb[:180, :320], rgb[:180, 320:], rgb[180:, :320], rgb[180:, 320:] = (200, 30, 30), (30, 200, 30), (30, 30, 200), \
        (220, 220, 40)
    Image.fromarray(rgb).save(path)
    return np.asarray(Image.fromarray(rgb).resize((1280, 720), Image.NEAREST))


def runner(engine, definition: ChannelDefinition, out, max_slots: int, **kw) -> ChannelRunner:
    v = engine.config.buffers.video
    return ChannelRunner(definition, engine, RunOptions(out=out, width=v.width, height=v.height, sample_rate=SR,
                                                        pace="asap", max_slots=max_slots),
                         engine.config.pipeline.generation_timeout_sec, **{"say": lambda line: None, **kw})


def channel(root) -> ChannelDefinition:
    return ChannelDefinition.from_dict(
        {"name": "onair", "loop": True, "program": PROGRAM,
         "slots": [{"recipe": SLOT}, {"break": 1}, {"break": 0.5, "slate": "sponsor.png"}]}, base_dir=root,
        source="test")


@pytest.fixture(scope="module")
def aired(engine, tmp_path_factory):
    """slot, card break, sponsor break; the ticker PATCHed once slot 0 has aired; then a restart airs
    the slot again (index 3)."""
    root = tmp_path_factory.mktemp("onair")
    sponsor = write_sponsor(root / "sponsor.png")
    out = root / "out"
    answers = []

    def on_record(record, what):
        if what == "appended" and record.index == 0:  # the appender thread, right after slot 0's frames
            answers.append(first.update_program({"ticker": ["Polls open at eight"]}))

    first = runner(engine, channel(root), out, 3, on_record=on_record)
    first.run()
    before = json.loads((out / "channel.json").read_text())
    frames_before = decode(out)[4]
    said = []
    runner(engine, channel(root), out, 4, say=said.append).run()  # a new process's runner: the definition's ticker
    return {"out": out, "answers": answers, "before": before, "frames_before": frames_before,
            "after": json.loads((out / "channel.json").read_text()), "frames": decode(out)[4], "sponsor": sponsor,
            "said": said}


def band_text(frame: np.ndarray, lay) -> str:
    return ocr(frame[lay.band.y:, lay.crawl_x:])


def test_a_patched_ticker_is_kept_and_airs_after_a_restart(aired):
    (spec, from_frame), = aired["answers"]
    slot_frames = round(1.5 * FPS)
    assert from_frame == slot_frames + 1 and spec.ticker == ("Polls open at eight",)
    kept = aired["before"]["program"]
    assert kept["ticker"] == ["Polls open at eight"] and kept["from_frame"] == from_frame
    assert kept["over"] == {"ticker": ["Comet seen over the harbor"]} and "lower_third" not in kept
    assert aired["after"]["program"] == kept  # the restart kept it as it was
    assert len(aired["after"]["epochs"]) == 2 and aired["after"]["epochs"][1]["resumed"]
    lay = layout(parse_program(PROGRAM))
    frames = aired["frames"]
    assert len(frames) == 2 * slot_frames + 36 and frames[0].shape == (720, 1280, 3)
    assert "Comet" in band_text(frames[10], lay), band_text(frames[10], lay)  # before the PATCH: the definition's
    restarted = [frames[k] for k in range(slot_frames + 36 + 5, len(frames), 10)]  # slot 3, after the restart
    texts = [band_text(f, lay) for f in restarted]
    assert any("Polls" in t for t in texts) and not any("Comet" in t for t in texts), texts
    # what aired before the restart was not rewritten by it
    assert all(np.array_equal(a, b) for a, b in zip(aired["frames_before"], frames[:len(aired["frames_before"])]))


def test_a_break_is_the_slate_over_the_whole_picture(aired):
    frames, lay = aired["frames"], layout(parse_program(PROGRAM))
    first = round(1.5 * FPS)
    card, sponsor = frames[first:first + 24], frames[first + 24:first + 36]
    expected = standby_card("onair", 1280, 720).astype(int)
    for f in (card[0], card[12], card[-1]):
        assert np.abs(f.astype(int) - expected).mean() < 3  # the card, full frame: no set, no anchor box
    lt = lay.lower_third
    for f in (card[12], sponsor[6]):
        words = ocr(f[lt.y:lt.y + lt.h, lt.x:lt.x + lt.w]) + band_text(f, lay) + ocr(f[0:80, 0:260])
        assert not re.search(r"Ada|Reyes|Comet|Polls|generated|BREAKING", words), words
    quarters = [(slice(40, 140), slice(40, 600)), (slice(40, 140), slice(680, 1240)),
                (slice(400, 700), slice(40, 600)), (slice(400, 700), slice(680, 1240))]
    for f in (sponsor[0], sponsor[-1]):  # the file, scaled to 1280x720, every corner its own colour
        for rows, cols in quarters:
            assert np.abs(f[rows, cols].astype(int) - aired["sponsor"][rows, cols]).mean() < 8
    # the program is back after the break: the lower third and the ticker over the next slot
    back = [first + 36 + k for k in (8, 10, 12)]
    assert "Ada Reyes" in ocr_still(frames, back, slice(lt.y, lt.y + lt.h), slice(lt.x, lt.x + lt.w))


def test_the_breaks_keep_their_scte35_markers(aired):
    ranges = by_id(read_ranges((aired["out"] / "index.m3u8").read_text()))
    for k in (1, 2):
        opening, closing = ranges[f"slot-{k}"]
        assert opening["CLASS"] == "com.vortex.break" and "SCTE35-OUT" in opening and "SCTE35-IN" in closing


def test_a_restart_drops_a_patch_whose_definition_text_changed():
    definition = parse_program(PROGRAM)
    now = definition.with_text(ticker=["Polls open at eight"], lower_third=None)
    stored = patched(None, {"ticker": ["Polls open at eight"]}, now, definition, 37, "t0")
    stored = patched(stored, {"lower_third": None}, now, definition, 50, "t1")
    assert stored["over"] == {"ticker": ["Comet seen over the harbor"],
                              "lower_third": {"name": "Ada Reyes", "title": "Evening News"}}
    applied, said = [], []
    kept = restore(stored, definition, lambda **kw: applied.append(kw), said.append)
    assert applied == [{"ticker": ["Polls open at eight"], "lower_third": None}] and kept["from_frame"] == 50
    edited = definition.with_text(ticker=["A new rundown"])  # the channel posted again with a new ticker
    applied.clear()
    kept = restore(stored, edited, lambda **kw: applied.append(kw), said.append)
    assert applied == [{"lower_third": None}] and "ticker" not in kept and "ticker changed" in said[-1]
    assert restore(None, definition, lambda **kw: applied.append(kw), said.append) is None
