"""The `vortex` command: bad input exits 2 with one clear line; plan, models and generate work."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.recipes import short_recipe as build

from vortex.cli import main
from vortex.media import probe_mp4

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def write(tmp_path, data, name="r.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def short_recipe(**audio):
    return build(9, 2, script="Hello from the command line.", fps=None, voice=None, prompt="portrait of a presenter",
                 audio=audio)


@pytest.mark.parametrize(
    "data, needle",
    [
        ({**short_recipe(), "slot_params": {"slot_id": 1, "duration_sec": 60}}, "slot_params.duration_sec"),
        (short_recipe(speed=3), "audio_track.speed"),
        (short_recipe(emotion="bored"), "audio_track.emotion"),
        (short_recipe(voice_id="nobody"), "unknown voice 'nobody'"),
        ({**short_recipe(), "visual_track": {"prompt": "p", "expression_preset": "smirk"}}, "visual_track.expression_preset"),
        ({**short_recipe(), "visual_track": {"prompt": "p", "driving_source": "nope.pkl"}}, "visual_track.driving_source"),
        ('{"slot_params": ', "is not valid JSON"),
    ],
)
def test_bad_recipes_exit_2_with_one_clear_line(tmp_path, capsys, data, needle):
    code = main(["generate", str(write(tmp_path, data)), "-o", str(tmp_path / "x.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "x.mp4").exists()


def test_missing_recipe_file_and_bad_profile(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "absent.json")]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert main(["generate", str(EXAMPLES / "rick_intro.json"), "--profile", "nosuch"]) == 2
    assert "unknown profile 'nosuch'" in capsys.readouterr().err


def test_entry_point_prints_no_traceback(tmp_path):
    exe = shutil.which("vortex") or str(Path(sys.executable).parent / "vortex")
    bad = write(tmp_path, short_recipe(speed=9))
    proc = subprocess.run([exe, "generate", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "audio_track.speed" in proc.stderr and "Traceback" not in proc.stderr


def test_plan_prints_the_table_and_verdict(capsys):
    assert main(["plan", "--profile", "rtx3060-12gb"]) == 0
    out = capsys.readouterr().out
    for needle in ("flux.transformer", "flux.t5_xxl", "kokoro", "clip_b32", "clip_l14", "liveportrait", "FITS", "T5-XXL choice"):
        assert needle in out
    assert main(["plan", "--profile", "h100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fits"] is True


def test_models_list_and_profiles(capsys):
    assert main(["models", "list", "--profile", "rtx3060-12gb"]) == 0
    out = capsys.readouterr().out
    assert "black-forest-labs/FLUX.1-schnell" in out and "missing" in out
    assert main(["profiles"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("cpu-preview" in line and "(default)" in line for line in lines)
    assert any("cpu-miniature" in line for line in lines)


def test_generate_writes_mp4_and_sidecar_on_the_default_profile(tmp_path, capsys):
    out = tmp_path / "nested" / "slot.mp4"
    assert main(["generate", str(write(tmp_path, short_recipe())), "-o", str(out), "--log-file", str(tmp_path / "log.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "profile cpu-preview" in err and "STAND-INS" in err and "wrote" in err
    info = probe_mp4(out)
    assert (info.n_frames, info.n_audio_samples) == (36, 36000)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["success"] and meta["seed"] == 2 and meta["slot_id"] == 9
    cues = out.with_suffix(".vtt").read_text()  # the captions beside it: the script's words
    assert " ".join(line for line in cues.splitlines()[1:] if line and "-->" not in line).split() == \
        short_recipe()["audio_track"]["script"].split() and "caption cue(s)" in err
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    phases = {e["phase"] for e in events if e.get("event") == "phase"}
    assert phases == {"voice", "actor", "video", "speech_check", "verify"} and all(e["slot_id"] == 9 for e in events if e.get("event") == "phase")
