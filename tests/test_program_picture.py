"""The program picture (vortex.program graphics + compose): a channel with a `program` block airs
1280x720 with the anchor placed in the set, the lower third, the ticker, the logo and the AI label.

Read back with independent readers: the stream decoded by PyAV, the face found by dlib's HOG
detector (vortex.faces), the text read by tesseract OCR; the ticker's motion measured from the
pixels. Bad inputs are refused up front naming the field; PATCH changes the ticker of a running
channel (a real server on loopback)."""

from __future__ import annotations

import json
import re
import secrets
import textwrap
import time
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from vortex.channel.cli import main
from vortex.channel.definition import ChannelDefinition, ChannelError
from vortex.config import VortexConfig
from vortex.faces.analyzer import FaceAnalyzer
from vortex.program.compose import ProgramCompositor
from vortex.program.graphics import layout
from vortex.program.spec import ProgramError, parse_program
from support.harness import Server, free_port
from support.ocr import ocr, ocr_still, squeezed
from support.recipes import short_recipe

from streams import fetch_stream, post, wait_for

PROGRAM = {"lower_third": {"name": "Ada Reyes", "title": "Evening News"},
           "ticker": ["Comet seen over the harbor", "Markets close higher"], "logo": "logo.png"}
SLOT_A = short_recipe(slot_id=1, seed=5, duration=1.5, script="Good evening.")
SLOT_B = short_recipe(slot_id=2, seed=6, duration=1.5, script="Sunny today.",
                      lower_third={"name": "Bo Lind", "title": "Weather"})


def write_logo(path: Path) -> None:
    """A red disc with alpha (a PNG with a transparent surround)."""
    yy, xx = np.mgrid[0:120, 0:120]
    rgba = np.zeros((120, 120, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 220, np.where((yy - 60) ** 2 + (xx - 60) ** 2 < 55 ** 2, 255, 0)
    Image.fromarray(rgba, "RGBA").save(path)


def frames_of(folder: Path) -> list[np.ndarray]:
    """Every frame of the channel's listed segments, decoded as RGB."""
    from vortex.channel.hls import read_playlist

    playlist = read_playlist(folder)
    data = b"".join((folder / u).read_bytes() for u in [playlist.segments[0].map_uri] + [s.uri for s in playlist.segments])
    path = folder / "all.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


def listed_frames(playlist_text: str, fps: int = 24) -> int:
    """Frames the playlist lists: its EXTINF durations summed (segments are cut at every item start,
    so they are not all 48 frames long; counting segments overestimated and indexed past the end)."""
    seconds = sum(float(line[len("#EXTINF:"):].split(",")[0]) for line in playlist_text.splitlines()
                  if line.startswith("#EXTINF:"))
    return round(seconds * fps)


@pytest.fixture(scope="module")
def aired(tmp_path_factory):
    """A 2-slot channel with the program (slot 1's recipe has its own lower third), aired asap."""
    root = tmp_path_factory.mktemp("program")
    write_logo(root / "logo.png")
    (root / "channel.yaml").write_text(json.dumps({"name": "prog", "program": PROGRAM,
                                                   "slots": [{"recipe": SLOT_A}, {"recipe": SLOT_B}]}))
    out = root / "out"
    assert main(["run", str(root / "channel.yaml"), "--out", str(out), "--pace", "asap"]) == 0
    spec = parse_program(PROGRAM, root)
    return frames_of(out), spec


def test_the_program_is_720p_with_the_face_where_the_anchor_was_placed(aired):
    frames, spec = aired
    assert len(frames) == 72 and frames[0].shape == (720, 1280, 3)
    box = layout(spec).anchor
    analyzer = FaceAnalyzer.load(VortexConfig.load().faces)
    for k in (5, 50):
        faces = analyzer.detect(frames[k])
        assert faces, f"no face in frame {k}"
        cx, cy = faces[0].center
        assert box.x < cx < box.x + box.w and box.y < cy < box.y + box.h, (faces[0], box)
    # The logo (red disc) is in the top-right corner, the AI label's dark pill top-left.
    disc = frames[5][40:70, 1210:1240]  # the logo: 65 px high at 22 px from the corner (0.09 H, 0.03 H)
    assert disc[..., 0].mean() > 180 and disc[..., 2].mean() < 80, disc.mean(axis=(0, 1))


def test_the_lower_third_reads_back_and_a_recipe_wins(aired):
    frames, spec = aired
    lt = layout(spec).lower_third
    crop = slice(lt.y, lt.y + lt.h), slice(lt.x, lt.x + lt.w)
    first, second = ocr_still(frames, (8, 10, 12), *crop), ocr_still(frames, (58, 60, 62), *crop)
    assert "Ada Reyes" in first and "Evening News" in first, first
    assert "Bo Lind" in second and "Weather" in second, second  # slot 1's recipe lower third
    label = ocr_still(frames, (8, 10, 12), slice(0, 80), slice(0, 260))
    assert re.search(r"A[Il|]-generated", label), label  # sans-serif I and l look alike to OCR


def crawl_shift(a: np.ndarray, b: np.ndarray, lay, max_shift: int = 16) -> int:
    """How many pixels the crawl moved left from a to b (the best match of the band's luma)."""
    rows = slice(lay.band.y + lay.rule + 4, lay.band.y + lay.band.h - 4)
    ya, yb = (f[rows, lay.crawl_x:].astype(np.float32).mean(axis=2) for f in (a, b))
    errs = [np.abs(yb[:, :-max_shift] - ya[:, s:s + yb.shape[1] - max_shift]).mean() for s in range(max_shift)]
    return int(np.argmin(errs))


def test_the_ticker_moves_a_constant_step_across_the_slot_boundary(aired):
    frames, spec = aired
    lay = layout(spec)
    assert lay.speed == 4
    shifts = [crawl_shift(frames[k], frames[k + 1], lay) for k in range(28, 44)]  # slot boundary at 36
    assert shifts == [4] * len(shifts), shifts


def test_breaking_and_a_new_ticker_take_effect_from_the_next_frame(tmp_path):
    spec = parse_program({k: v for k, v in PROGRAM.items() if k != "logo"})
    comp = ProgramCompositor(spec)
    anchor = np.full((512, 512, 3), 120, np.uint8)
    comp.begin_slot(breaking=True)
    lay = layout(spec)
    lt = lay.lower_third
    text = ocr(comp.compose_rgb(anchor, 0)[lt.y:lt.y + lt.h, lt.x:lt.x + lt.w])
    assert "BREAKING" in text and "Ada Reyes" in text, text
    before = comp.compose_rgb(anchor, 7)
    comp.update(ticker=["Polls open at eight"])
    after = comp.compose_rgb(anchor, 8)
    fresh = ProgramCompositor(spec.with_text(ticker=["Polls open at eight"]))
    fresh.begin_slot(breaking=True)
    band = slice(lay.band.y, lay.band.y + lay.band.h)
    assert np.array_equal(after[band], fresh.compose_rgb(anchor, 8)[band])  # the new strip, at frame 8's place
    assert not np.array_equal(before[band], after[band])
    with pytest.raises(ProgramError) as bad:
        comp.update(lower_third={"name": "N" * 120})
    assert bad.value.field == "lower_third.name" and "at most" in bad.value.problem


@pytest.mark.parametrize("program, field", [
    ({"background": "broken.png"}, "program.background"),
    ({"logo": "broken.png"}, "program.logo"),
    ({"logo": "missing.png"}, "program.logo"),
    ({"size": "1281x720"}, "program.size"),
    ({"size": "2560x1440"}, "program.size"),
    ({"lower_third": {"name": "A very long name " * 5}}, "program.lower_third.name"),
    ({"lower_third": {"name": "Ada", "title": "An extremely long title that no lower third can hold"}},
     "program.lower_third.title"),
    ({"font": "Nonexistent Sans"}, "program.font"),
])
def test_bad_program_inputs_name_the_field(tmp_path, program, field):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(ChannelError) as err:
        ChannelDefinition.from_dict({"name": "x", "program": program, "slots": [{"recipe": SLOT_A}]}, base_dir=tmp_path)
    assert err.value.field == field, err.value
    if field == "program.font":
        assert "DejaVu Sans" in err.value.problem  # says what is installed


def test_a_recipe_lower_third_too_long_and_the_cli_exit_code(tmp_path):
    long = short_recipe(lower_third={"name": "Somebody With A Name Far Too Long For Any Lower Third Bar"})
    with pytest.raises(ChannelError) as err:
        ChannelDefinition.from_dict({"name": "x", "program": {}, "slots": [{"recipe": long}]})
    assert err.value.field == "slots[0].recipe.visual_track.lower_third.name"
    path = tmp_path / "channel.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: x
        program: {{size: 1279x720}}
        slots: [{{recipe: {json.dumps(SLOT_A)}}}]
        """))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--pace", "asap"]) == 2
    assert not out.exists()  # nothing half-written


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(data=tmp_path_factory.mktemp("serve-prog") / "data", port=free_port(), token=secrets.token_urlsafe(24))
    s.data.mkdir()
    s.start()
    yield s
    s.stop()


def patch(server: Server, name: str, body) -> httpx.Response:
    return httpx.patch(f"{server.url}/v1/channels/{name}/program", content=json.dumps(body), timeout=60,
                       headers=server.headers(**{"Content-Type": "application/json"}))


def test_patch_changes_the_ticker_of_a_running_channel(server, tmp_path):
    program = {"ticker": ["Comet seen over the harbor"], "lower_third": {"name": "Ada Reyes"}, "captions": "burn"}
    r = post(server, {"name": "prog-live", "loop": True, "lookahead": 1, "margin_sec": 0.5, "program": program,
                      "slots": [{"recipe": SLOT_A}]}, pace="realtime")
    assert r.status_code == 201, r.text
    wait_for(server, "prog-live", lambda s: s["status"] == "on_air" and s["on_air"] is not None)
    for body, field in (({"ticker": "one"}, "ticker"), ({"ticker": ["ok", ""]}, "ticker[1]"),
                        ({"lower_third": {"name": "N" * 150}}, "lower_third.name"), ({"colour": 1}, "colour")):
        bad = patch(server, "prog-live", body)
        assert bad.status_code == 422 and bad.json()["error"]["field"] == field, bad.text
    r = patch(server, "prog-live", {"ticker": ["Polls open at eight"], "lower_third": None})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["ticker"] == ["Polls open at eight"] and answer["lower_third"] is None
    from_frame = answer["from_frame"]
    kept = json.loads((server.data / "channels" / "prog-live" / "channel.json").read_text())["program"]
    assert kept["ticker"] == ["Polls open at eight"] and kept["lower_third"] is None  # what a restart airs
    assert kept["from_frame"] == from_frame and wait_for(server, "prog-live", lambda s: s["program"])["program"] == kept
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until a segment wholly after the change is listed
        text, _ = fetch_stream(server, "prog-live", tmp_path / "s")
        if listed_frames(text) > from_frame + 96:
            break
        time.sleep(1)
    frames = frames_of(tmp_path / "s")
    lay = layout(parse_program(program))
    band = frames[-1][lay.band.y:, lay.crawl_x:]
    after = ocr(np.concatenate([band, frames[-30][lay.band.y:, lay.crawl_x:]], axis=1))
    before = ocr(np.concatenate([frames[0][lay.band.y:, lay.crawl_x:], frames[20][lay.band.y:, lay.crawl_x:]], axis=1))
    assert "Polls" in after and "Comet" not in after, after
    assert "Comet" in before, before

    # A live insert shows the BREAKING lower third while it airs, and the crawl does not jump into it.
    insert = short_recipe(duration=1.5, script="This just in.", lower_third={"name": "Cy Park"})
    r = httpx.post(f"{server.url}/v1/channels/prog-live/live", content=json.dumps({"recipe": insert, "at": "now"}),
                   headers=server.headers(**{"Content-Type": "application/json"}), timeout=60)
    assert r.status_code == 202, r.text
    done = wait_for(server, "prog-live", lambda s: s["inserts"] and s["inserts"][-1]["state"] in ("aired", "failed"),
                    timeout=120)
    row = done["inserts"][-1]
    assert row["state"] == "aired", row
    first = row["first_frame"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the insert's frames are listed
        text, _ = fetch_stream(server, "prog-live", tmp_path / "s2")
        if listed_frames(text) > first + row["n_frames"] + 2:
            break
        time.sleep(1)
    frames = frames_of(tmp_path / "s2")
    assert len(frames) > first + 10, (len(frames), row)
    lt = lay.lower_third
    lt_box = slice(lt.y, lt.y + lt.h), slice(lt.x, lt.x + lt.w)
    shown = ocr_still(frames, [first + k for k in (8, 10, 12, 14, 16)], *lt_box)
    assert "BREAKING" in shown and "Cy Park" in shown, shown
    # `captions: burn`: the insert's cue is in its picture, above the lower third (unless its chunk aired as the card)
    # (five frames: tesseract can miss a word of one, more so on a watermarked stream's flip frames)
    cue_band = [ocr(frames[first + k][CUE_ROWS, 160:1120]) for k in (6, 12, 18, 24, 30)]
    if row["late_chunks"] == 0 and row["replaced_chunks"] == 0:
        assert any("justin" in squeezed(t) for t in cue_band), (cue_band, row)
    else:
        assert not any("justin" in squeezed(t) for t in cue_band), (cue_band, row)
    assert "BREAKING" not in ocr(frames[first - 5][lt.y:lt.y + lt.h, lt.x:lt.x + lt.w])
    assert [crawl_shift(frames[k], frames[k + 1], lay) for k in range(first - 3, first + 3)] == [lay.speed] * 6
    assert httpx.delete(f"{server.url}/v1/channels/prog-live", headers=server.headers(), timeout=120).status_code == 200
    no_program = post(server, {"name": "plain", "slots": [{"recipe": SLOT_A}]}, pace="asap", max_slots=1)
    assert no_program.status_code == 201
    assert patch(server, "plain", {"ticker": ["x"]}).status_code == 409


def test_generate_with_a_config_program_writes_the_program_mp4(tmp_path):
    from vortex.cli import main as vortex_main

    write_logo(tmp_path / "logo.png")
    config = tmp_path / "config.yaml"
    config.write_text("extends: cpu-preview\nprogram: {logo: logo.png, lower_third: {name: Ada Reyes}, captions: burn}\n")
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(short_recipe(duration=1.0, script="Good evening.")))
    out = tmp_path / "slot.mp4"
    assert vortex_main(["generate", str(recipe), "--config", str(config), "-o", str(out)]) == 0
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    assert len(frames) == 24 and frames[0].shape == (720, 1280, 3)
    lt = layout(parse_program({})).lower_third
    assert "Ada Reyes" in ocr_still(frames, (10, 12, 14), slice(lt.y, lt.y + lt.h), slice(lt.x, lt.x + lt.w))
    assert squeezed("Good evening") in squeezed(ocr_still(frames, (10, 12, 14), CUE_ROWS, slice(160, 1120)))  # burned, above the lower third
    config.write_text("extends: cpu-preview\nprogram: {logo: missing.png}\n")
    assert vortex_main(["generate", str(recipe), "--config", str(config), "-o", str(tmp_path / "bad.mp4")]) == 2
    assert not (tmp_path / "bad.mp4").exists()


def test_program_fields_over_http_are_422_and_files_are_uploads(server, tmp_path):
    def start(program):
        return post(server, {"name": "prog-bad", "program": program, "slots": [{"recipe": SLOT_A}]}, pace="asap",
                    max_slots=1)

    for program, field in (({"logo": "/etc/passwd"}, "program.logo"), ({"background": "studio.png"}, "program.background"),
                           ({"size": "1280x721"}, "program.size"), ({"font": "Nonexistent Sans"}, "program.font"),
                           ({"lower_third": {"name": "N" * 90}}, "program.lower_third.name")):
        r = start(program)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    write_logo(tmp_path / "logo.png")
    up = httpx.post(server.url + "/v1/portraits", files={"file": ("logo.png", (tmp_path / "logo.png").read_bytes())},
                    headers=server.headers(), timeout=60)
    assert up.status_code == 201, up.text
    r = start({"logo": up.json()["ref"], "background": "#102040"})
    assert r.status_code == 201, r.text
    wait_for(server, "prog-bad", lambda s: s["status"] in ("ended", "stopped"))


def test_the_channel_page_plays_the_program_at_16_9(server, tmp_path):
    from streams import chromium

    r = post(server, {"name": "prog-page", "loop": True, "lookahead": 1, "margin_sec": 0.5, "program": PROGRAM_WEB,
                      "slots": [{"recipe": SLOT_A}]}, pace="realtime")
    assert r.status_code == 201, r.text
    wait_for(server, "prog-page", lambda s: s["status"] == "on_air" and s["counts"].get("aired", 0) >= 1)
    driver = chromium(tmp_path / "chromium-profile")
    try:
        driver.set_window_size(1400, 1000)
        driver.get(server.url + "/channels/prog-page")
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not driver.execute_script("return vxPlayer.started && !!vxPlayer.size"):
            time.sleep(0.3)
        time.sleep(2)
        size = driver.execute_script("return vxPlayer.size")
        box = driver.execute_script("const v = document.getElementById('video'); return [v.clientWidth, v.clientHeight]")
        driver.save_screenshot(str(tmp_path / "page.png"))
    finally:
        driver.quit()
        httpx.delete(f"{server.url}/v1/channels/prog-page", headers=server.headers(), timeout=120)
    assert size == "1280x720", size
    assert abs(box[0] / box[1] - 16 / 9) < 0.02 and box[0] >= 640, box  # 16:9, not pillar-boxed in a square


PROGRAM_WEB = {k: v for k, v in PROGRAM.items() if k != "logo"}


def test_the_crawl_continues_across_a_restart_of_the_writer(tmp_path):
    from datetime import datetime, timezone

    from vortex.channel.hls import HlsChannelWriter

    spec = parse_program({"ticker": ["Comet seen over the harbor", "Markets close higher"]})
    lay = layout(spec)
    anchor = [np.full((512, 512, 3), 40 + k, np.uint8) for k in range(24)]
    wave = np.zeros(24 * 1000, np.float32)
    kw = dict(width=1280, height=720, fps=24, sample_rate=24000)
    w = HlsChannelWriter(tmp_path, program_start=datetime.now(timezone.utc), compose=ProgramCompositor(spec), **kw)
    w.append_slot(anchor, wave)
    w.close(end=False)  # a crash or a stop: the next run resumes the playlist
    w = HlsChannelWriter.resume(tmp_path, air_time=datetime.now(timezone.utc), compose=ProgramCompositor(spec), **kw)
    w.append_slot(anchor, wave)
    w.close()
    frames = frames_of(tmp_path)
    assert len(frames) == 48
    assert [crawl_shift(frames[k], frames[k + 1], lay) for k in range(20, 28)] == [lay.speed] * 8  # restart at 24


CUE_ROWS = slice(440, 530)  # a burned cue over a lower third sits just above it (y 532 at 720p)


def test_a_burned_cue_clears_the_lower_third_and_a_carded_cue_is_not_burned():
    from vortex.contracts.captions import Cue

    comp = ProgramCompositor(parse_program({"captions": "burn", "lower_third": {"name": "Ada Reyes"}}))
    anchor = np.full((512, 512, 3), 90, np.uint8)
    cues = (Cue(0.0, 1.0, "Comet seen tonight", (0,)), Cue(1.0, 2.0, "Zorblax quindrel", (1,)))
    comp.begin_slot(breaking=True, cues=cues, keep=lambda c: c.chunks != (1,), first_frame=0, fps=24)
    shown, carded = comp.compose_rgb(anchor, 12), comp.compose_rgb(anchor, 36)
    lt = layout(comp.spec).lower_third
    assert "Cometseentonight" in squeezed(ocr(shown[CUE_ROWS, 160:1120])), ocr(shown[CUE_ROWS, 160:1120])
    text = ocr(shown[lt.y:lt.y + lt.h, lt.x:lt.x + lt.w])
    assert "BREAKING" in text and "Ada Reyes" in text, text  # the cue does not cover the lower third
    assert "Zorblax" not in ocr(carded[400:670])  # its chunk aired as the card: no words
    comp.begin_slot(full_frame=True, cues=cues)  # an ad break: the slate alone, never a cue
    slate = np.full((720, 1280, 3), 200, np.uint8)
    assert np.abs(comp.compose_rgb(slate, 12).astype(int) - 200).max() <= 2


def test_burned_in_captions_show_the_cue_on_its_frames_only():
    from vortex.contracts.captions import Cue

    comp = ProgramCompositor(parse_program({"size": "1280x720", "captions": "burn"}))
    anchor = np.full((512, 512, 3), 90, np.uint8)
    comp.begin_slot(cues=(Cue(0.5, 2.0, "Comet seen tonight"),), first_frame=100, fps=24)
    before = comp.compose_rgb(anchor, 100)  # 0 s into the slot: no cue yet
    during = comp.compose_rgb(anchor, 100 + 24)  # 1 s: the cue
    after = comp.compose_rgb(anchor, 100 + 60)  # 2.5 s: gone, and the plate was left clean
    band = slice(500, 660)  # the cue's box sits above the title-safe bottom margin
    assert "Comet seen tonight" in ocr(during[band]), ocr(during[band])
    assert "Comet" not in ocr(before[band]) and "Comet" not in ocr(after[band])
    assert np.abs(after[band, 400:880].astype(int) - before[band, 400:880]).max() <= 2
    plain = ProgramCompositor(parse_program({"size": "1280x720", "captions": True}))
    plain.begin_slot(cues=(Cue(0.5, 2.0, "Comet seen tonight"),), first_frame=100, fps=24)
    assert "Comet" not in ocr(plain.compose_rgb(anchor, 124)[band])  # captions: true is the rendition only
