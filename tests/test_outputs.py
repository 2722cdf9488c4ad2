"""Every failed write ends cleanly (issue 7, items 1-4): one line naming the path, the right exit
status, nothing half-written, an existing output untouched, SIGTERM like Ctrl-C, stale partial
files of dead processes removed."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.recipes import short_recipe

from vortex.cli import main
from vortex.engine.outputs import OutputError, SlotOutput, remove_stale_temporaries, write_text_atomic

EXE = shutil.which("vortex") or str(Path(sys.executable).parent / "vortex")
NO_OVERRIDE = ["setpriv", "--inh-caps=-dac_override,-dac_read_search,-fowner",
               "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def recipe_file(tmp_path, duration=1.5, script="Hello there.") -> Path:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(short_recipe(3, 5, duration, script, fps=None, voice=None,
                                            prompt="portrait of a presenter")))
    return path


def fast_config(tmp_path) -> Path:
    """The default profile without an animator: these tests are about files, not faces."""
    path = tmp_path / "still.yaml"
    path.write_text("extends: cpu-miniature\npipeline: {animation: still, generation_timeout_sec: 120}\n")
    return path


def run_cli(args, timeout=180, preexec=None, prefix=()):
    return subprocess.run([*prefix, EXE, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=preexec, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---- refused up front (exit 2), before any model loads --------------------------------------------
def test_output_that_is_a_directory_is_refused_up_front(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    code = main(["generate", str(recipe_file(tmp_path)), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "is a directory" in err and "loading models" not in err


def test_a_directory_named_like_the_sidecar_is_refused(tmp_path):
    (tmp_path / "x.json").mkdir()
    with pytest.raises(OutputError, match="directory in the way"):
        SlotOutput.prepare(tmp_path / "x.mp4")


def test_name_too_long_is_refused_with_the_limit(tmp_path, capsys):
    code = main(["generate", str(recipe_file(tmp_path)), "-o", str(tmp_path / ("a" * 240 + ".mp4"))])
    err = capsys.readouterr().err
    assert code == 2 and "too long" in err and "use at most" in err
    assert leftovers(tmp_path) == []


def test_unwritable_folder_is_refused_for_root_without_override(tmp_path):
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    proc = run_cli(["generate", recipe_file(tmp_path), "-o", folder / "x.mp4"], prefix=NO_OVERRIDE)
    assert proc.returncode == 2, proc.stderr
    assert "is not writable" in proc.stderr and str(folder) in proc.stderr and "Traceback" not in proc.stderr
    assert list(folder.iterdir()) == []


def test_not_a_mp4_name():
    with pytest.raises(OutputError, match="must end in .mp4"):
        SlotOutput.prepare("clip.mov")


# ---- failures during and after the slot -----------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One successful slot whose files the failing runs below must leave byte for byte."""
    tmp = tmp_path_factory.mktemp("finished")
    proc = run_cli(["generate", recipe_file(tmp), "--config", fast_config(tmp), "-o", tmp / "old.mp4"])
    assert proc.returncode == 0, proc.stderr
    return tmp


def test_a_failed_slot_leaves_existing_output_untouched(finished):
    before = {p.name: digest(p) for p in (finished / "old.mp4", finished / "old.json")}
    proc = run_cli(["generate", finished / "r.json", "--config", finished / "still.yaml",
                    "-o", finished / "old.mp4", "--deadline", "0.3"])
    assert proc.returncode == 1
    assert "deadline" in proc.stderr and "old.failed.json" in proc.stderr and "Traceback" not in proc.stderr
    assert {p.name: digest(p) for p in (finished / "old.mp4", finished / "old.json")} == before
    report = json.loads((finished / "old.failed.json").read_text())
    assert report["success"] is False and "deadline" in report["error_msg"]
    assert leftovers(finished) == []


def test_success_removes_a_stale_failure_report(tmp_path):
    out = SlotOutput.prepare(tmp_path / "s.mp4")
    out.write_report({"success": False}, success=False)
    assert out.failure_report.exists()
    out.write_report({"success": True}, success=True)
    assert out.sidecar.exists() and not out.failure_report.exists()


def test_real_disk_full_on_a_tiny_tmpfs(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        proc = run_cli(["generate", recipe_file(tmp_path, duration=2.0), "--config", fast_config(tmp_path),
                        "-o", mount / "x.mp4"])
        assert proc.returncode == 1, proc.stderr
        assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
        assert not (mount / "x.mp4").exists() and leftovers(mount) == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_atomic_text_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OutputError, match="No space left on device"):
        write_text_atomic(target, "new")
    assert target.read_text() == "old" and leftovers(tmp_path) == []


# ---- signals and dead processes -----------------------------------------------------------------
def test_sigterm_ends_a_slot_cleanly_within_seconds(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([EXE, "generate", str(recipe_file(tmp_path, duration=20.0, script="Good evening. " * 16)),
                             "--config", str(fast_config(tmp_path)), "-o", str(out / "x.mp4")],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    started = None
    for line in proc.stderr:  # wait until the slot is really running
        if "voice" in line and "started" in line:
            started = time.monotonic()
            break
    assert started is not None, "the slot never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    code = proc.wait(timeout=30)
    assert code == 143 and "terminated" in rest and "Traceback" not in rest
    assert time.monotonic() - started < 15
    assert [p.name for p in out.iterdir()] == ["x.failed.json"]  # no temporaries; the report says why
    assert "cancelled" in json.loads((out / "x.failed.json").read_text())["error_msg"]


def test_stale_partials_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".x.mp4.{dead_pid}.0123abcd.partial.mp4"
    mine = tmp_path / f".x.mp4.{os.getpid()}.0123abcd.partial.mp4"
    other = tmp_path / ".unrelated.tmp"
    for p in (stale, mine, other):
        p.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and mine.exists() and other.exists()
    SlotOutput.prepare(tmp_path / "y.mp4")  # the next run into the folder cleans too
