"""`vortex bench` on the embedded default profile: a real engine (real Kokoro speech, miniature
Flux and CLIP through their real loaders), two measured 1 s slots after one warm-up, through the
command's own parser; then the report's fields, its percentile arithmetic, its JSON and its table."""

import argparse
import contextlib
import dataclasses
import io
import json

import pytest

from vortex.bench import (
    BENCH_SCRIPT,
    FIRST_AUDIO,
    FIRST_FRAME,
    PROCESS,
    TOTAL,
    UNATTRIBUTED,
    BenchReport,
    Percentiles,
    SlotSample,
    add_bench_parser,
    bench_recipe,
    nearest_rank,
    report_table,
)
from vortex.config import DEFAULT_PROFILE, VortexConfig
from vortex.errors import ConfigError

PHASES = {"voice", "actor", "video", "verify"}
STAGES = {"voice+actor", "video", "verify"}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vortex")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """`vortex bench --slots 2 --warmup 1 --duration 1 --json OUT` on the default profile."""
    out = tmp_path_factory.mktemp("bench") / "report.json"
    args = _parse(["bench", "--slots", "2", "--warmup", "1", "--duration", "1", "--json", str(out)])
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = args.func(args)
    return rc, stdout.getvalue(), out


@pytest.fixture(scope="module")
def report(bench_run) -> BenchReport:
    return BenchReport.from_json(bench_run[2].read_text())


def test_command_prints_a_cpu_labelled_table(bench_run):
    rc, table, _ = bench_run
    assert rc == 0, table
    assert f"profile {DEFAULT_PROFILE}" in table and "CPU figures, no GPU" in table
    assert "STAND-INS" in table and "animation " in table
    assert all(name in table for name in VortexConfig.load().stand_ins)
    for row in ("voice", "actor", "video", "verify", TOTAL, FIRST_FRAME, "real-time factor", "voice ‖ actor overlap"):
        assert any(line.startswith(row) for line in table.splitlines()), row
    report = BenchReport.from_json(bench_run[2].read_text())
    assert table.count("n/a (CPU)") == 2 * len(report.vram_peaks()) >= 2 * len(STAGES)  # allocated, reserved
    assert "GiB" not in table and "nearest-rank" in table


def test_report_fields(report):
    assert report.profile == DEFAULT_PROFILE and report.device == "cpu" and report.on_cpu
    assert (report.slots, report.warmup, len(report.samples), len(report.warmup_samples)) == (2, 1, 2, 1)
    assert (report.duration_sec, report.fps, report.n_frames, report.encode) == (1.0, 24, 24, True)
    # the stand-ins the default profile declares (miniature CLIPs at least), named in the report
    assert {"clip_b", "clip_l"} <= set(report.stand_ins) and report.stand_ins == VortexConfig.load().stand_ins
    assert report.recipe == "built-in"
    assert {"kokoro", "clip"} <= {f.component for f in report.load} and report.load_s > 0
    assert all(f.seconds > 0 for f in report.load) and report.animation
    # warm-up and measured slots are distinct slots with their own seeds
    assert [s.seed for s in report.warmup_samples + report.samples] == [1000, 1001, 1002]
    for s in report.samples:
        assert s.success, s.error
        assert PHASES <= set(s.timings_ms) and all(v > 0 for v in s.timings_ms.values())
        assert 0 < s.first_frame_ms < s.generation_time_ms
        assert s.generation_time_ms >= s.timings_ms["video"] + s.timings_ms["verify"]
        assert s.real_time_factor == pytest.approx(s.generation_time_ms / 1000.0)  # a 1 s slot
        assert STAGES <= set(s.vram_peaks)
        assert all(v == 0 for p in s.vram_peaks.values() for v in p.values())  # no GPU here
        assert 0 < s.voice_actor_overlap_ms <= min(s.timings_ms["voice"], s.timings_ms["actor"]) + 1.0
    phases = report.phases()
    assert set(phases) == set(report.samples[0].timings_ms) | {TOTAL, FIRST_AUDIO, FIRST_FRAME}
    totals = sorted(s.generation_time_ms for s in report.samples)
    # nearest-rank over two slots: P50 is the faster one, P95 and P99 the slower one
    assert (phases[TOTAL].p50, phases[TOTAL].p95, phases[TOTAL].p99) == (totals[0], totals[1], totals[1])
    assert report.real_time_factor().p50 == pytest.approx(totals[0] / 1000.0)


def test_cpu_per_content_second_is_split_by_stage(report, bench_run):
    """The stages' CPU (thread_time of the threads that did them, plus their libraries' threads)
    adds up to most of the process's CPU over the slots; the rest is printed as unattributed."""
    cpu = report.cpu_per_content_second()
    for stage in ("voice", "speech check", "render", "paste-back", "encode", "checks", "verify"):
        assert cpu[stage] > 0, stage
    stages = sum(v for k, v in cpu.items() if k not in (UNATTRIBUTED, PROCESS))
    assert cpu[PROCESS] == pytest.approx(stages + cpu[UNATTRIBUTED])
    assert stages >= 0.75 * cpu[PROCESS], cpu  # measured: 0.96 of 1.40 core-s at 5 s slots
    for s in report.samples:
        assert s.process_cpu_s >= sum(s.cpu_s.values()) * 0.9 and s.cpu_s  # ticks of 10 ms in the threads' figures
    table = bench_run[1]
    assert "CPU per content second" in table and UNATTRIBUTED in table and PROCESS in table
    assert json.loads(bench_run[2].read_text())["summary"]["cpu_s_per_content_s"]["voice"] > 0


def test_json_round_trip(report, bench_run):
    again = BenchReport.from_json(report.to_json())
    assert again == report
    written = json.loads(bench_run[2].read_text())
    assert written["summary"] == json.loads(json.dumps(report.summary()))  # derived, and consistent
    assert written["summary"]["succeeded"] == 2 and written["summary"]["failed"] == 0


def test_nearest_rank_on_known_numbers():
    # the textbook example of the nearest-rank method
    values = [15, 20, 35, 40, 50]
    assert [nearest_rank(values, p) for p in (5, 30, 40, 50, 100)] == [15, 20, 20, 35, 50]
    assert nearest_rank(list(range(1, 101)), 95) == 95 and nearest_rank(list(range(1, 101)), 99) == 99
    assert nearest_rank(list(range(1, 21)), 95) == 19  # 0.95 x 20 is exactly 19, not the 20th
    assert nearest_rank(list(range(1, 21)), 99) == 20
    assert nearest_rank([3.0, 1.0, 2.0], 50) == 2.0  # order of the input does not matter
    p = Percentiles.of([4, 1, 3, 2])
    assert (p.n, p.p50, p.p95, p.p99, p.mean, p.min, p.max) == (4, 2, 4, 4, 2.5, 1, 4)
    with pytest.raises(ValueError):
        nearest_rank([], 50)
    with pytest.raises(ValueError):
        nearest_rank([1.0], 0)


def test_failed_slots_are_listed_not_averaged(report):
    ok = report.samples[0]
    failed = SlotSample(slot_id=9, seed=9, success=False, duration_sec=1.0, generation_time_ms=5.0,
                        timings_ms={"voice": 5.0}, error="deadline of 0.01 s exceeded during phase 'voice+actor'",
                        failed_phase="voice+actor")
    mixed = dataclasses.replace(report, samples=[ok, failed])
    assert mixed.phases()[TOTAL].n == 1 and mixed.phases()[TOTAL].p50 == ok.generation_time_ms
    assert "FAILED slot 9 in 'voice+actor'" in report_table(mixed)


def test_gpu_report_is_shown_in_gib(report):
    sample = dataclasses.replace(report.samples[0], vram_peaks={"video": {"allocated": 3 * 2**30, "reserved": 4 * 2**30}})
    gpu = dataclasses.replace(report, device="cuda:0", device_name="NVIDIA Test", vram_total_bytes=12 * 2**30,
                              vram_limit_bytes=int(11.5 * 2**30), samples=[sample])
    table = report_table(gpu)
    assert "CPU" not in table.splitlines()[0] and "GPU NVIDIA Test" in table
    assert "3.00 GiB      4.00 GiB" in table and "per-process VRAM cap: 11.50 GiB" in table


def test_builtin_recipe_fits_the_slot():
    short, full = bench_recipe(1.0), bench_recipe(45.0)
    assert short.audio_track.script == BENCH_SCRIPT[0]
    assert full.slot_params.n_frames == 1080 and len(full.audio_track.script.split()) >= 60
    assert bench_recipe(12.0).audio_track.script.startswith(short.audio_track.script)
    with pytest.raises(ConfigError):
        bench_recipe(46.0)


def test_registering_the_command_imports_no_torch():
    """`vortex profiles` builds the same parser as `vortex bench`: it must not pay torch's import."""
    import subprocess
    import sys

    code = ("import sys; from vortex.cli import _parser; _parser().parse_args(['profiles']); "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'bitsandbytes') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_every_public_name_resolves_from_the_package():
    import vortex.bench as bench
    from vortex.bench import report, stats, timing

    for name in bench.__all__:
        assert getattr(bench, name) is not None, name
    assert bench.Percentiles is stats.Percentiles and bench.Timing is timing.Timing
    assert bench.BenchReport is report.BenchReport
    with pytest.raises(AttributeError, match="no attribute 'Stopwatch'"):
        bench.Stopwatch  # noqa: B018
