"""Every bad input ends cleanly (issue 7, items 5-10): the exact error class and field or file,
what is allowed, and nothing written. Through the public API and, for a subset, the CLI."""

import codecs
import io
import json
import os
import re
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vortex.config import ConfigFieldError, VortexConfig
from vortex.errors import ConfigError, RecipeError
from vortex.inputs import (MAX_DEPTH, MAX_IMAGE_PIXELS, MAX_TEXT_BYTES, ConfigFileError, RecipeFileError,
                           open_image, parse_text)
from vortex.recipe import WORDS_PER_SEC_BOUND, Recipe

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def good(**audio) -> dict:
    return {
        "slot_params": {"slot_id": 3, "duration_sec": 2.5, "fps": 24, "seed": 11},
        "audio_track": {"script": "Hello there.", "voice_id": "rick_c137", **audio},
        "visual_track": {"prompt": "portrait of a man"},
    }


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def within(seconds: float, fn, *args, **kwargs):
    """Run fn in a daemon thread: a hang (a FIFO opened for reading) fails the test, not the run."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn.__qualname__} still running after {seconds} s: it blocked"
    if "error" in box:
        raise box["error"]
    return box["value"]


def png_claiming(width: int, height: int) -> bytes:
    """A 4x4 PNG whose IHDR claims width x height (CRC fixed): a decompression bomb's header in 70 bytes."""
    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def deep_json(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


# ---- item 5: depth, encoding, device ------------------------------------------------------------
@pytest.mark.parametrize("name, text", [
    ("deep.json", deep_json(100_000)),
    ("deep.yaml", "[" * 100_000 + "]" * 100_000),
    ("deep_block.yaml", "".join(" " * i + "k:\n" for i in range(100)) + " " * 100 + "v"),
    ("deep_recipe.json", json.dumps({**good(), "extra": json.loads(deep_json(MAX_DEPTH))})),
])
def test_deep_nesting_is_refused_before_it_is_built(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    before = listing(tmp_path)
    with pytest.raises(RecipeFileError) as info:
        within(10, Recipe.from_file, path)
    assert str(info.value).startswith(f"recipe file '{path}': nests deeper than {MAX_DEPTH} levels")
    with pytest.raises(RecipeFileError, match="^recipe text: nests deeper than 64"):
        within(10, Recipe.from_text, text)
    assert listing(tmp_path) == before


def test_nesting_up_to_the_limit_is_fine():
    # The recipe itself is depth 2; an ignored extra key may nest up to MAX_DEPTH in all.
    extra = json.loads(deep_json(MAX_DEPTH - 1))
    assert Recipe.from_text(json.dumps({**good(), "extra": extra})).slot_params.slot_id == 3
    assert parse_text("[" * MAX_DEPTH + "]" * MAX_DEPTH, "config", fmt="yaml") is not None


@pytest.mark.parametrize("kind", ["recipe", "config"])
@pytest.mark.parametrize("encode, needle", [
    (lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"), "is UTF-16 text"),
    (lambda t: t.encode("utf-16"), "is UTF-16 text"),
    (lambda t: codecs.BOM_UTF32_LE + t.encode("utf-32-le"), "is UTF-32 text"),
    (lambda t: t.encode("utf-16-le"), "contains NUL bytes"),
    (lambda t: t.encode("latin-1"), "is not UTF-8 text (byte 0xe9"),
    (lambda t: png_claiming(4, 4), "is not UTF-8 text"),
    (lambda t: bytes(range(1, 256)), "is not UTF-8 text (byte 0x80 at offset 127)"),
])
def test_text_that_is_not_utf8_names_the_file(tmp_path, kind, encode, needle):
    if kind == "recipe":
        path, text = tmp_path / "r.json", json.dumps(good(script="Café au lait."), ensure_ascii=False)
        load, error = Recipe.from_file, RecipeFileError
    else:
        path, text = tmp_path / "c.yaml", "extends: cpu-miniature\ndescription: café\n"
        load, error = (lambda p: VortexConfig.load(path=p)), ConfigFileError
    path.write_bytes(encode(text))
    with pytest.raises(error) as info:
        load(path)
    assert str(info.value).startswith(f"{kind} file '{path}': ") and needle in str(info.value)
    assert "must be UTF-8" in str(info.value) or "NUL" in str(info.value)


def test_utf8_with_a_bom_is_fine(tmp_path):
    (tmp_path / "r.json").write_bytes(codecs.BOM_UTF8 + json.dumps(good()).encode())
    assert Recipe.from_file(tmp_path / "r.json").slot_params.slot_id == 3
    (tmp_path / "c.yaml").write_bytes(codecs.BOM_UTF8 + b"extends: cpu-miniature\n")
    assert VortexConfig.load(path=tmp_path / "c.yaml").extends == "cpu-miniature"


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,
    "models:\n" + "".join(" " * i + "k:\n" for i in range(1, 100)),
])
def test_deep_config_is_refused(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigFileError, match=f"^config file '{path}': nests deeper than {MAX_DEPTH} levels"):
        within(10, VortexConfig.load, path=path)


@pytest.mark.parametrize("name", ["bogus", "cuda:x", "gpu", "CUDA", "cuda:0 ", ""])
def test_bad_device_names_the_field(tmp_path, name):
    path = tmp_path / "c.yaml"
    path.write_text(f"extends: cpu-miniature\ndevice: {{name: {json.dumps(name)}}}\n")
    with pytest.raises(ConfigFieldError) as info:
        VortexConfig.load(path=path)
    assert info.value.field == "device.name"
    assert "'cpu', 'cuda', 'cuda:N'" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:0", "cuda:3", "mps"])
def test_good_devices_load(tmp_path, name):
    path = tmp_path / "c.yaml"
    path.write_text(f"extends: cpu-miniature\ndevice: {{name: '{name}'}}\n")
    assert VortexConfig.load(path=path).device.name == name


def test_loading_a_config_does_not_import_torch():
    probe = "import sys, vortex.config; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"


# ---- item 6: image bombs and non-regular files ---------------------------------------------------
@pytest.mark.parametrize("width, height, needle", [
    (30_000, 30_000, "claims more than 179 megapixels; the limit is 40 megapixels"),
    (7_000, 7_000, "is 7000x7000 = 49.0 megapixels; the limit is 40 megapixels"),
])
def test_decompression_bomb_is_refused_with_the_limit(tmp_path, width, height, needle):
    (tmp_path / "bomb.png").write_bytes(png_claiming(width, height))
    (tmp_path / "r.json").write_text(json.dumps({**good(), "visual_track": {"prompt": "p", "actor_image": "bomb.png"}}))
    with pytest.raises(RecipeError) as info:
        Recipe.from_file(tmp_path / "r.json")
    assert info.value.field == "visual_track.actor_image" and needle in str(info.value)
    with pytest.raises(RecipeError, match="megapixels"):
        open_image(tmp_path / "bomb.png", "visual_track.actor_image")


def test_open_image_decodes_a_real_portrait(tmp_path):
    Image.fromarray(np.full((64, 48, 3), 120, np.uint8)).save(tmp_path / "p.png")
    im = open_image(tmp_path / "p.png")
    assert im.size == (48, 64) and np.asarray(im.convert("RGB"))[0, 0].tolist() == [120, 120, 120]
    assert MAX_IMAGE_PIXELS == 40_000_000


def test_image_over_the_size_limit_is_not_read(tmp_path):
    with open(tmp_path / "huge.png", "wb") as f:
        f.truncate(60_000_000)  # sparse: refused by its size, before a byte is read
    with pytest.raises(RecipeError, match=r"huge.png': it is 60.0 MB; the limit is 50.0 MB"):
        open_image(tmp_path / "huge.png", "visual_track.actor_image")


def _fifo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


def test_fifo_recipe_and_config_are_refused_at_once(tmp_path):
    with pytest.raises(RecipeFileError, match=r"recipe file '.*r.json': is a FIFO \(named pipe\), not a regular file"):
        within(5, Recipe.from_file, _fifo(tmp_path, "r.json"))
    with pytest.raises(ConfigFileError, match=r"config file '.*c.yaml': is a FIFO \(named pipe\), not a regular file"):
        within(5, VortexConfig.load, path=_fifo(tmp_path, "c.yaml"))


@pytest.mark.parametrize("field", ["actor_image", "driving_source"])
def test_fifo_in_a_recipe_field_is_refused_at_once(tmp_path, field):
    _fifo(tmp_path, "pipe")
    (tmp_path / "r.json").write_text(json.dumps({**good(), "visual_track": {"prompt": "p", field: "pipe"}}))
    with pytest.raises(RecipeError) as info:
        within(5, Recipe.from_file, tmp_path / "r.json")
    assert info.value.field == f"visual_track.{field}" and "'pipe'" in str(info.value)
    assert "is a FIFO (named pipe), not a regular file" in str(info.value)


@pytest.mark.parametrize("make, needle", [
    (lambda d: d, "is a directory, not a regular file"),
    (lambda d: Path("/dev/zero"), "is a character device, not a regular file"),
    (lambda d: d / "absent.json", "cannot be read: no such file"),
])
def test_other_non_regular_recipes(tmp_path, make, needle):
    path = make(tmp_path)
    with pytest.raises(RecipeFileError, match=f"^recipe file '{re.escape(str(path))}': {re.escape(needle)}"):
        within(5, Recipe.from_file, path)


@pytest.mark.parametrize("kind", ["recipe", "config"])
def test_text_over_the_size_limit_is_not_read(tmp_path, kind):
    path = tmp_path / ("r.json" if kind == "recipe" else "c.yaml")
    path.write_text("#" * (MAX_TEXT_BYTES + 1) if kind == "config" else " " * (MAX_TEXT_BYTES + 1))
    load = Recipe.from_file if kind == "recipe" else (lambda p: VortexConfig.load(path=p))
    with pytest.raises((RecipeFileError, ConfigFileError), match=f"^{kind} file '.*': is 1.0 MB; the limit is 1 MiB"):
        load(path)


# ---- item 7: JSON is parsed as JSON ---------------------------------------------------------------
def test_surrogate_pair_escapes_and_exponents_are_json(tmp_path):
    data = good(script="Hi 👋 there.")
    data["slot_params"]["duration_sec"] = 6.0
    text = json.dumps(data).replace("6.0", "6e0")  # json.dumps escapes the emoji as \ud83d\udc4b
    assert "\\ud83d\\udc4b" in text and "6e0" in text
    (tmp_path / "r.json").write_text(text)
    for r in (Recipe.from_file(tmp_path / "r.json"), Recipe.from_text(text)):
        assert r.audio_track.script == "Hi 👋 there."
        assert r.slot_params.duration_sec == 6.0 and r.slot_params.n_frames == 144


def test_yaml_recipes_and_yaml_flow_text_still_parse(tmp_path):
    assert Recipe.from_file(EXAMPLES / "wrapped_recipe.yaml").slot_params.slot_id == 7
    flow = "{slot_params: {slot_id: 4, duration_sec: 1}, audio_track: {script: Hi.}, visual_track: {prompt: a face}}"
    assert Recipe.from_text(flow).slot_params.slot_id == 4
    (tmp_path / "r.recipe").write_text(json.dumps(good()))  # no known extension: decided by content
    assert Recipe.from_file(tmp_path / "r.recipe").slot_params.slot_id == 3


@pytest.mark.parametrize("text, needle", [
    ('{"slot_params": ', "is not valid JSON at line 1, column 17"),
    ('{"a": NaN}', "NaN is not a JSON number"),
    ("[1, 2]", "must hold a JSON/YAML object (the recipe), got a list"),
    ('{"a": 1' + "0" * 5000 + "}", "is not valid JSON: a number has more than 4300 digits"),
])
def test_malformed_json_names_the_file(tmp_path, text, needle):
    (tmp_path / "r.json").write_text(text)
    with pytest.raises(RecipeFileError) as info:
        Recipe.from_file(tmp_path / "r.json")
    assert str(info.value).startswith(f"recipe file '{tmp_path / 'r.json'}': ") and needle in str(info.value)


# ---- item 8 (recipe parts): duplicates, unspeakable, zero frames, too long --------------------------
@pytest.mark.parametrize("name, text, field", [
    ("r.json", '{"slot_params": {"slot_id": 1, "duration_sec": 2, "duration_sec": 3}, '
               '"audio_track": {"script": "Hi."}, "visual_track": {"prompt": "p"}}', "slot_params.duration_sec"),
    ("r.json", '{"slot_params": {"slot_id": 1, "duration_sec": 2}, "audio_track": {"script": "Hi."}, '
               '"visual_track": {"prompt": "p"}, "audio_track": {"script": "Bye."}}', "audio_track"),
    ("r.yaml", "slot_params: {slot_id: 1, duration_sec: 2}\naudio_track:\n  script: Hi.\n  speed: 1.0\n"
               "  speed: 2.0\nvisual_track: {prompt: p}\n", "audio_track.speed"),
])
def test_duplicate_keys_are_refused_by_path(tmp_path, name, text, field):
    (tmp_path / name).write_text(text)
    with pytest.raises(RecipeFileError) as info:
        Recipe.from_file(tmp_path / name)
    assert info.value.field == field
    assert f"key '{field}' appears more than once" in str(info.value) and name in str(info.value)


def test_duplicate_config_keys_are_refused_and_merge_keys_are_not(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("extends: cpu-miniature\nmodels:\n  flux: {steps: 2}\n  flux: {steps: 3}\n")
    with pytest.raises(ConfigFileError) as info:
        VortexConfig.load(path=path)
    assert info.value.field == "models.flux" and "lines 3 and 4" in str(info.value)
    data = parse_text("base: &b {soft_limit_gb: 10, hard_limit_gb: 11}\nvram: {<<: *b, hard_limit_gb: 12}\n", "config")
    assert data["vram"] == {"soft_limit_gb": 10, "hard_limit_gb": 12}


@pytest.mark.parametrize("script", ["... !!! ???", "—", "___", "🙂🙂"])
def test_unpronounceable_script_is_refused(script):
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict(good(script=script))
    assert info.value.field == "audio_track.script" and "at least one letter or digit" in str(info.value)


@pytest.mark.parametrize("script", ["こんにちは。", "Привет!", "42!", "Ok"])
def test_any_script_with_a_letter_or_digit_is_speakable(script):
    assert Recipe.from_dict(good(script=script)).audio_track.script == script


@pytest.mark.parametrize("duration, fps, shortest", [(0.01, 24, "0.04167"), (0.001, 60, "0.01667"), (0.4, 1, "1")])
def test_duration_that_gives_no_frame_is_refused(duration, fps, shortest):
    data = good()
    data["slot_params"].update(duration_sec=duration, fps=fps)
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict(data)
    assert info.value.field == "slot_params.duration_sec"
    assert f"gives 0 frames at {fps} fps" in str(info.value) and f"one frame, {shortest} s" in str(info.value)


def test_a_script_no_speed_can_fit_is_refused_before_synthesis():
    data = good(script=" ".join(["word"] * 20_000))
    data["slot_params"]["duration_sec"] = 45
    recipe = Recipe.from_dict(data)
    with pytest.raises(RecipeError) as info:
        recipe.check_speakable(max_speed=2.0)
    assert info.value.field == "audio_track.script"
    assert "20000 words cannot be spoken in 45 s even at speed 2: at most 1800 words fit" in str(info.value)
    with pytest.raises(RecipeError, match="audio_track.script"):
        VortexConfig.load().check_recipe(recipe)


def test_speakable_bound_is_generous_at_the_edge():
    # 2.5 s x speed 2 x 20 words/s = 100 words: 100 may be tried, 101 are refused; the recipe's own
    # speed counts when it is faster than the voice's max_speed; "don't" is one word, not two.
    assert WORDS_PER_SEC_BOUND == 20.0
    Recipe.from_dict(good(script=" ".join(["don't"] * 100))).check_speakable(2.0)
    with pytest.raises(RecipeError, match="101 words cannot be spoken in 2.5 s even at speed 2: at most 100"):
        Recipe.from_dict(good(script=" ".join(["go"] * 101))).check_speakable(2.0)
    Recipe.from_dict(good(script=" ".join(["go"] * 100), speed=2.0)).check_speakable(1.0)
    with pytest.raises(RecipeError, match="at most 50 words fit"):
        Recipe.from_dict(good(script=" ".join(["go"] * 51), speed=1.0)).check_speakable(1.0)
    Recipe.from_file(EXAMPLES / "rick_intro.json").check_speakable(1.0)


# ---- item 9: config cross-checks at load -----------------------------------------------------------
@pytest.mark.parametrize("override, field, needle", [
    ("models: {flux: {height: 768}}", "models.flux.height", "buffers.actor holds 512x512"),
    ("buffers: {video: {width: 7}}", "buffers.video.width", "even number of pixels >= 16 (got 7)"),
    ("buffers: {actor: {height: 511}}", "buffers.actor.height", "even number of pixels >= 16 (got 511)"),
    ("buffers: {video: {height: 8, width: 8}}", "buffers.video.height", ">= 16 (got 8)"),
    ("buffers: {video: {height: 256, width: 256}}", "buffers.video.height", "must be equal"),
    ("buffers: {actor: {channels: 4}}", "buffers.actor.channels", "must be 3"),
    ("buffers: {audio: {sample_rate: 0}}", "buffers.audio.sample_rate", "must be 24000"),
    ("buffers: {audio: {sample_rate: 16000}}", "buffers.audio.sample_rate", "must be 24000"),
    ("buffers: {audio: {duration_sec: 30}}", "buffers.audio.duration_sec", "at least 45 s"),
    ("vram: {monitor_interval_sec: 5}", "vram.monitor_interval_sec", "Extra inputs are not permitted"),
])
def test_contradicting_settings_are_refused_at_load(tmp_path, override, field, needle):
    path = tmp_path / "c.yaml"
    path.write_text(f"extends: cpu-miniature\n{override}\n")
    with pytest.raises(ConfigFieldError) as info:
        VortexConfig.load(path=path)
    assert info.value.field == field and needle in str(info.value)
    assert str(info.value).startswith(f"config file '{path}': field '{field}': ")


def test_max_frames_is_enforced_per_recipe(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("extends: cpu-miniature\nbuffers: {video: {max_frames: 240}}\n")
    cfg = VortexConfig.load(path=path)
    data = good()
    data["slot_params"]["duration_sec"] = 20
    with pytest.raises(RecipeError) as info:
        cfg.check_recipe(Recipe.from_dict(data))
    assert info.value.field == "slot_params.duration_sec"
    assert "480 frames; this config's buffers.video.max_frames is 240: at most 10 s at 24 fps" in str(info.value)
    data["slot_params"]["duration_sec"] = 10
    cfg.check_recipe(Recipe.from_dict(data))
    with pytest.raises(RecipeError, match="unknown voice"):
        cfg.check_recipe(Recipe.from_dict(good(voice_id="nobody")))


@pytest.mark.parametrize("text, profile", [
    ("extends: rtx3060-12gb\nvram: {hard_limit_gb: 11.8}\n", "mine"),
    ("extends: rtx3060-12gb\nprofile: studio-a\n", "studio-a"),
    ("device: {name: cpu}\n", "mine"),
])
def test_a_custom_config_reports_its_own_name_and_its_base(tmp_path, text, profile):
    (tmp_path / "mine.yaml").write_text(text)
    cfg = VortexConfig.load(path=tmp_path / "mine.yaml")
    assert cfg.profile == profile
    assert cfg.extends == ("rtx3060-12gb" if "extends" in text else None)
    assert VortexConfig.load(profile="24gb").extends == "rtx3060-12gb"
    assert VortexConfig.load(profile="cpu-miniature").extends is None


# ---- item 10 and the CLI: exit 2, one line, no traceback, nothing written ---------------------------
def _cli_cases(tmp: Path) -> list[tuple[list[str], str]]:
    bomb = tmp / "bomb.png"
    bomb.write_bytes(png_claiming(30_000, 30_000))
    cases = {
        "deep.json": deep_json(100_000),
        "utf16.json": None,
        "dup.json": '{"slot_params": {"slot_id": 1, "slot_id": 2, "duration_sec": 1}}',
        "emoji.json": json.dumps(good(script="👋 ...")),  # parsed as JSON (surrogates), then refused
        "frames.json": json.dumps({**good(), "slot_params": {"slot_id": 1, "duration_sec": 0.01}}),
        "bomb.json": json.dumps({**good(), "visual_track": {"prompt": "p", "actor_image": "bomb.png"}}),
        "mute.json": json.dumps(good(script="... !!! ???")),
    }
    for name, text in cases.items():
        path = tmp / name
        path.write_bytes(codecs.BOM_UTF16_LE + json.dumps(good()).encode("utf-16-le") if text is None else text.encode())
    os.mkfifo(tmp / "fifo.json")
    (tmp / "bogus.yaml").write_text("extends: cpu-miniature\ndevice: {name: bogus}\n")
    (tmp / "deep.yaml").write_text("x: " + "[" * 100_000 + "]" * 100_000 + "\n")
    ok = str(EXAMPLES / "rick_intro.json")
    return [
        ([str(tmp / "deep.json")], f"recipe file '{tmp / 'deep.json'}': nests deeper than 64"),
        ([str(tmp / "utf16.json")], "is UTF-16 text"),
        ([str(tmp / "fifo.json")], "is a FIFO (named pipe), not a regular file"),
        ([str(tmp / "dup.json")], "key 'slot_params.slot_id' appears more than once"),
        ([str(tmp / "emoji.json")], "recipe field 'audio_track.script': has no pronounceable word"),
        ([str(tmp / "frames.json")], "recipe field 'slot_params.duration_sec': 0.01 s gives 0 frames"),
        ([str(tmp / "bomb.json")], "recipe field 'visual_track.actor_image': cannot read image 'bomb.png'"),
        ([str(tmp / "mute.json")], "recipe field 'audio_track.script'"),
        ([ok, "--config", str(tmp / "bogus.yaml")], "field 'device.name': unknown device 'bogus'"),
        ([ok, "--config", str(tmp / "deep.yaml")], "config file"),
    ]


def test_cli_exits_2_with_one_line_and_writes_nothing(tmp_path):
    inputs_dir, out_dir = tmp_path / "in", tmp_path / "out"
    inputs_dir.mkdir(), out_dir.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    for args, needle in _cli_cases(inputs_dir):
        before = listing(inputs_dir)
        proc = subprocess.run([sys.executable, "-m", "vortex.cli", "generate", *args, "-o", str(out_dir / "x.mp4")],
                              capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("vortex: error: ") and needle in lines[0], (args, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout
        assert listing(out_dir) == set() and listing(inputs_dir) == before and listing(tmp_path) >= {"in", "out"}
