"""`vortex bench`: slot latency, device memory and real-time factor, measured on a resident engine.

One `VortexPipeline` is built (every model loaded once, as in production), a few warm-up slots
run and are thrown away (allocator growth, cuDNN/cuBLAS autotuning, the Flux prompt cache, lazy
imports), then N slots of the same recipe run with different seeds. Each slot writes its MP4 into
a temporary folder, so the encoder's cost and its overlap with rendering are inside the numbers.

What is reported, over the measured slots that succeeded:

- per phase (the result's `timings_ms`: voice, actor, video, verify) and the whole slot: P50 /
  P95 / P99, mean, min and max, in milliseconds;
- time to the first frame handed to the encoder, measured from the slot's start;
- how long voice and actor really ran at the same time (the overlap of their spans);
- the real-time factor: slot wall time / slot duration (below 1: faster than real time);
- per stage (voice+actor, video, verify) the peak device memory, allocated and reserved, as the
  maximum over slots; zeros, shown as "n/a (CPU)", on a CPU engine.

Percentiles are nearest-rank (`nearest_rank`): the ceil(p/100 * n)-th smallest of n samples, a
value that was actually measured. With fewer than 20 slots P95 and P99 are both the maximum,
and with one slot every percentile is that slot; the table says how many slots there were.

Default slot length: 45 s (a full slot) on a GPU profile; 6 s on a CPU profile, where the real
Kokoro voice alone runs at about half real time on 2 cores (a 45 s slot would take ~30 s each).
`--duration` sets it either way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import torch

from .config import VortexConfig
from .logs import quiet_libraries
from .errors import ConfigError, VortexError
from .recipe import MAX_DURATION_SEC, Recipe

if TYPE_CHECKING:
    from .pipeline import VortexPipeline
    from .result import GenerationResult

GIB = 2**30
PERCENTILES = (50, 95, 99)
PERCENTILE_METHOD = (
    "nearest-rank: the ceil(p/100 x n)-th smallest of n slots (a measured value, no interpolation); "
    "below 20 slots P95 and P99 are the maximum"
)
DEFAULT_DURATION_GPU = 45.0
DEFAULT_DURATION_CPU = 6.0
FIRST_FRAME = "first frame"  # the row name of the first-frame latency
TOTAL = "total"  # the row name of the whole slot

# The built-in recipe: a news read in short sentences, about 35 s for a 45 s slot at Kokoro's
# normal speed. Shorter slots take the leading sentences that fit (WORDS_PER_SECOND, with
# headroom), so the voice need not speed up; the first sentence is short enough for a 1 s slot.
BENCH_SCRIPT = (
    "Good evening.",
    "Welcome back to the news hour.",
    "Tonight, a cold front reaches the citadel.",
    "Expect light rain in the morning.",
    "Skies clear by the afternoon.",
    "In science news, a pocket portal gun.",
    "Its makers say it is perfectly safe.",
    "They would not say where the last volunteer went.",
    "Markets were calm across the galaxy today.",
    "Plumbus prices held steady for a third week.",
    "The festival of lights begins on Friday at sunset.",
    "Stay with us for the rest of the stories.",
)
BENCH_PROMPT = "studio portrait of a news anchor in a grey suit, looking at the camera, soft light"
WORDS_PER_SECOND = 1.6  # below what Kokoro speaks at speed 1.0 (1.8 with the packaged voices, ~2.5 English)


# ---- statistics -------------------------------------------------------------------------------
def nearest_rank(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile: the ceil(p/100 * n)-th smallest value (1-based), p in (0, 100]."""
    if not values:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    ordered = sorted(values)
    rank = max(1, math.ceil(round(p / 100 * len(ordered), 9)))  # round: 0.95*20 must be 19, not 19.000000000000004
    return float(ordered[rank - 1])


@dataclass(frozen=True)
class Percentiles:
    n: int
    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Percentiles":
        values = [float(v) for v in values]
        return cls(len(values), *(nearest_rank(values, p) for p in PERCENTILES),
                   sum(values) / len(values), min(values), max(values))


# ---- one slot ----------------------------------------------------------------------------------
@dataclass
class SlotSample:
    slot_id: int
    seed: int
    success: bool
    duration_sec: float
    generation_time_ms: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    first_frame_ms: Optional[float] = None
    voice_actor_overlap_ms: Optional[float] = None  # how long voice and actor ran at the same time
    vram_peaks: dict[str, dict[str, int]] = field(default_factory=dict)
    error: Optional[str] = None
    failed_phase: Optional[str] = None

    @property
    def real_time_factor(self) -> float:
        return self.generation_time_ms / 1000.0 / self.duration_sec

    @classmethod
    def from_result(cls, result: "GenerationResult", duration_sec: float) -> "SlotSample":
        return cls(
            slot_id=result.slot_id, seed=result.seed, success=result.success, duration_sec=duration_sec,
            generation_time_ms=result.generation_time_ms, timings_ms=dict(result.timings_ms),
            first_frame_ms=result.first_frame_ms, voice_actor_overlap_ms=_overlap_ms(result.spans_ms),
            vram_peaks={k: dict(v) for k, v in result.vram_peaks.items()},
            error=result.error_msg, failed_phase=result.failed_phase,
        )


def _overlap_ms(spans: dict[str, tuple[float, float]]) -> Optional[float]:
    if "voice" not in spans or "actor" not in spans:
        return None
    (v0, v1), (a0, a1) = spans["voice"], spans["actor"]
    return max(0.0, min(v1, a1) - max(v0, a0))


# ---- the report --------------------------------------------------------------------------------
@dataclass
class LoadFigure:
    component: str
    seconds: float
    weight_bytes: int
    vram_delta: int


@dataclass
class BenchReport:
    profile: str
    description: str
    device: str  # "cpu" | "cuda:0"
    device_name: str  # the GPU's name, or the CPU's model and core count
    stand_ins: list[str]
    recipe: str  # "built-in" or the recipe file
    duration_sec: float
    fps: int
    n_frames: int
    slots: int
    warmup: int
    encode: bool
    load_s: Optional[float]
    load: list[LoadFigure]
    samples: list[SlotSample]  # the measured slots, warm-up excluded
    warmup_samples: list[SlotSample]
    date: str
    commit: Optional[str]
    torch_version: str
    vram_total_bytes: int = 0  # the card's capacity (0 on CPU)
    vram_limit_bytes: int = 0  # the per-process cap in force during the run (0: none)
    animation: str = ""
    notes: list[str] = field(default_factory=list)
    percentile_method: str = PERCENTILE_METHOD
    host_load: list[float] = field(default_factory=list)  # 1/5/15-min load average at the end: CPU contention

    @property
    def on_cpu(self) -> bool:
        return not self.device.startswith("cuda")

    @property
    def succeeded(self) -> list[SlotSample]:
        return [s for s in self.samples if s.success]

    @property
    def failures(self) -> list[SlotSample]:
        return [s for s in self.samples if not s.success]

    # ---- the summary ----------------------------------------------------------------------
    def phases(self) -> dict[str, Percentiles]:
        """Percentiles per phase, then the whole slot and the first frame (ms), successful slots only."""
        ok = self.succeeded
        if not ok:
            return {}
        names: list[str] = []
        for s in ok:
            names += [n for n in s.timings_ms if n not in names]
        rows = {n: Percentiles.of([s.timings_ms[n] for s in ok if n in s.timings_ms]) for n in names}
        rows[TOTAL] = Percentiles.of([s.generation_time_ms for s in ok])
        firsts = [s.first_frame_ms for s in ok if s.first_frame_ms is not None]
        if firsts:
            rows[FIRST_FRAME] = Percentiles.of(firsts)
        return rows

    def voice_actor_overlap(self) -> Optional[Percentiles]:
        values = [s.voice_actor_overlap_ms for s in self.succeeded if s.voice_actor_overlap_ms is not None]
        return Percentiles.of(values) if values else None

    def real_time_factor(self) -> Optional[Percentiles]:
        ok = self.succeeded
        return Percentiles.of([s.real_time_factor for s in ok]) if ok else None

    def vram_peaks(self) -> dict[str, dict[str, int]]:
        """Per stage, the largest peak over every measured slot (failed ones too: memory is memory)."""
        peaks: dict[str, dict[str, int]] = {}
        for s in self.samples:
            for stage, p in s.vram_peaks.items():
                slot = peaks.setdefault(stage, {"allocated": 0, "reserved": 0})
                for k in ("allocated", "reserved"):
                    slot[k] = max(slot[k], int(p.get(k, 0)))
        return peaks

    def summary(self) -> dict[str, Any]:
        rtf, overlap = self.real_time_factor(), self.voice_actor_overlap()
        return {
            "phases_ms": {k: asdict(v) for k, v in self.phases().items()},
            "real_time_factor": None if rtf is None else asdict(rtf),
            "voice_actor_overlap_ms": None if overlap is None else asdict(overlap),
            "vram_peaks_bytes": self.vram_peaks(),
            "succeeded": len(self.succeeded),
            "failed": len(self.failures),
        }

    # ---- output ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary()  # derived; from_json recomputes it from the samples
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "BenchReport":
        data = json.loads(text)
        data.pop("summary", None)
        data["load"] = [LoadFigure(**x) for x in data["load"]]
        data["samples"] = [SlotSample(**x) for x in data["samples"]]
        data["warmup_samples"] = [SlotSample(**x) for x in data["warmup_samples"]]
        return cls(**data)

    def table(self) -> str:
        where = (f"CPU ({self.device_name}) — CPU figures, no GPU" if self.on_cpu
                 else f"GPU {self.device_name} ({self.device}, {self.vram_total_bytes / GIB:.1f} GiB)")
        lines = [f"vortex bench · profile {self.profile} · {where}"]
        if self.stand_ins:
            lines.append(f"  STAND-INS (miniature seeded-random weights): {', '.join(self.stand_ins)}")
        lines.append(f"  recipe {self.recipe}: {self.duration_sec:g} s at {self.fps} fps = {self.n_frames} frames; "
                     f"{self.slots} slots measured after {self.warmup} warm-up; "
                     f"MP4 encode {'on' if self.encode else 'off'}; animation {self.animation or '?'}")
        load = f"{self.load_s:.1f} s" if self.load_s is not None else "not measured here"
        lines.append(f"  engine load {load}; torch {self.torch_version}; {self.date}"
                     + (f"; commit {self.commit[:12]}" if self.commit else "")
                     + (f"; host load average {self.host_load[0]:.2f}" if self.host_load else ""))
        if self.vram_limit_bytes:
            lines.append(f"  per-process VRAM cap: {self.vram_limit_bytes / GIB:.2f} GiB")
        lines.append(f"  percentiles: {self.percentile_method}")
        lines.append("")
        unit = "ms (CPU)" if self.on_cpu else "ms"
        lines.append(f"{'phase':<22}{'P50':>10}{'P95':>10}{'P99':>10}{'mean':>10}{'min':>10}{'max':>10}  {unit}")
        lines.append("-" * 92)
        for name, p in self.phases().items():
            lines.append(_row(name, p, "{:10.1f}"))
        overlap = self.voice_actor_overlap()
        if overlap is not None:
            lines.append(_row("voice ‖ actor overlap", overlap, "{:10.1f}"))
        rtf = self.real_time_factor()
        if rtf is not None:
            lines.append(_row("real-time factor", rtf, "{:10.3f}") + "  slot time / slot duration")
        if not self.succeeded:
            lines.append("(no slot succeeded: no latency figures)")
        lines.append("")
        lines.append(f"{'peak memory per stage':<22}{'allocated':>14}{'reserved':>14}")
        lines.append("-" * 50)
        for stage, p in self.vram_peaks().items():
            if self.on_cpu:
                lines.append(f"{stage:<22}{'n/a (CPU)':>14}{'n/a (CPU)':>14}")
            else:
                lines.append(f"{stage:<22}{p['allocated'] / GIB:>10.2f} GiB{p['reserved'] / GIB:>10.2f} GiB")
        for s in self.failures:
            lines.append(f"FAILED slot {s.slot_id} in '{s.failed_phase}': {s.error}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _row(name: str, p: Percentiles, fmt: str) -> str:
    return f"{name:<22}" + "".join(fmt.format(v) for v in (p.p50, p.p95, p.p99, p.mean, p.min, p.max))


# ---- the recipe ----------------------------------------------------------------------------------
def bench_recipe(duration_sec: float, fps: int = 24, voice_id: str = "rick_c137") -> Recipe:
    """The built-in recipe: as many sentences of BENCH_SCRIPT as fit `duration_sec` comfortably."""
    if not 0 < duration_sec <= MAX_DURATION_SEC:
        raise ConfigError(f"bench duration must be in (0, {MAX_DURATION_SEC:g}] seconds, got {duration_sec:g}")
    budget = duration_sec * WORDS_PER_SECOND
    sentences = [BENCH_SCRIPT[0]]
    for sentence in BENCH_SCRIPT[1:]:
        if len(" ".join(sentences + [sentence]).split()) > budget:
            break
        sentences.append(sentence)
    return Recipe.from_dict({
        "slot_params": {"slot_id": 1, "duration_sec": duration_sec, "fps": fps},
        "audio_track": {"script": " ".join(sentences), "voice_id": voice_id},
        "visual_track": {"prompt": BENCH_PROMPT},
    })


def _with_duration(recipe: Recipe, duration_sec: float) -> Recipe:
    params = recipe.slot_params.model_copy(update={"duration_sec": duration_sec})
    return Recipe.from_dict(recipe.model_copy(update={"slot_params": params}).model_dump(mode="json"))


def default_duration(cfg: VortexConfig) -> float:
    return DEFAULT_DURATION_GPU if cfg.device.is_cuda else DEFAULT_DURATION_CPU


# ---- running it ------------------------------------------------------------------------------------
SlotCallback = Callable[[str, int, SlotSample], None]  # ("warmup" | "slot", index, sample)


def run_bench(
    cfg: VortexConfig,
    *,
    slots: int = 5,
    warmup: int = 1,
    recipe: Recipe | dict | str | Path | None = None,
    duration: Optional[float] = None,
    seed: int = 1000,
    deadline: Optional[float] = None,
    encode: bool = True,
    pipeline: Optional["VortexPipeline"] = None,
    on_slot: Optional[SlotCallback] = None,
    notes: Sequence[str] = (),
    vram_limit_bytes: int = 0,
) -> BenchReport:
    """Run `warmup` + `slots` slots of one recipe on one engine and report the measured slots.

    `pipeline`: an engine already built from `cfg` (the device check builds its components from
    random full-size weights); without it one is built here and its load time is reported.
    `vram_limit_bytes`: the per-process cap the caller set (torch.cuda.set_per_process_memory_fraction),
    written in the report; the bench sets none itself.
    `deadline`: seconds per slot (default: the profile's generation_timeout_sec).
    """
    if slots < 1 or warmup < 0:
        raise ConfigError(f"bench needs at least 1 slot and 0 or more warm-up slots (got {slots}, {warmup})")
    source = "built-in"
    if recipe is None:
        the_recipe = bench_recipe(duration or default_duration(cfg))
    else:
        if isinstance(recipe, (str, Path)):
            source = str(recipe)
            the_recipe = Recipe.from_file(recipe)
        else:
            source = "given"
            the_recipe = recipe if isinstance(recipe, Recipe) else Recipe.from_dict(recipe)
        if duration is not None:
            the_recipe = _with_duration(the_recipe, duration)
    the_recipe.check_voice(list(cfg.models.kokoro.voices))

    from .pipeline import VortexPipeline

    own = pipeline is None
    load_s = None
    if own:
        start = time.perf_counter()
        pipeline = VortexPipeline(cfg)
        load_s = time.perf_counter() - start
    load = [LoadFigure(r.name, r.seconds, r.weight_bytes, r.vram_delta) for r in pipeline.registry.records]
    p = the_recipe.slot_params
    warm: list[SlotSample] = []
    measured: list[SlotSample] = []
    try:
        with tempfile.TemporaryDirectory(prefix="vortex-bench-") as tmp:
            for i in range(warmup + slots):
                kind, index = ("warmup", i) if i < warmup else ("slot", i - warmup)
                output = Path(tmp) / f"slot-{i}.mp4" if encode else None
                result = pipeline.generate_slot_sync(the_recipe, slot_id=i + 1, seed=seed + i,
                                                     deadline=deadline, output=output)
                sample = SlotSample.from_result(result, p.duration_sec)
                (warm if kind == "warmup" else measured).append(sample)
                if on_slot is not None:
                    on_slot(kind, index, sample)
                if output is not None:  # keep the folder small: a 45 s slot is a few MB
                    output.unlink(missing_ok=True)
                    output.with_suffix(".json").unlink(missing_ok=True)
        animation = getattr(result, "animation", "")
    finally:
        if own:
            pipeline.close()
    device = cfg.device.name
    return BenchReport(
        profile=cfg.profile, description=cfg.description, device=device, device_name=device_name(device),
        stand_ins=list(pipeline.stand_ins), recipe=source, duration_sec=p.duration_sec, fps=p.fps,
        n_frames=p.n_frames, slots=slots, warmup=warmup, encode=encode, load_s=load_s, load=load,
        samples=measured, warmup_samples=warm, date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        commit=current_commit(), torch_version=torch.__version__, vram_total_bytes=_vram_total(device),
        vram_limit_bytes=vram_limit_bytes, animation=animation, notes=list(notes), host_load=host_load(),
    )


def host_load() -> list[float]:
    """The 1, 5 and 15-minute load averages (other processes competing for the cores), if known."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def current_commit() -> Optional[str]:
    """$VORTEX_COMMIT (a copied tree has no .git), else the checkout's HEAD, else None."""
    if os.environ.get("VORTEX_COMMIT"):
        return os.environ["VORTEX_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _vram_total(device: str) -> int:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    return 0


# ---- component benchmarks (benchmarks/bench_*.py and the device check use these) ---------------------
@dataclass(frozen=True)
class Timing:
    """One measured call: its latency over `repeat` runs and the device memory peak while it ran."""

    label: str
    ms: Percentiles
    peak_allocated: int = 0  # bytes; 0 on CPU
    peak_reserved: int = 0
    note: str = ""


def time_calls(label: str, fn: Callable[[], Any], *, device: str | torch.device, repeat: int = 5,
               warmup: int = 1, note: str = "") -> Timing:
    """Call `fn` `warmup` times unmeasured, then `repeat` times, synchronising the GPU around each
    call (CUDA work is asynchronous: an unsynchronised host clock measures the launch, not the work)."""
    from .memory.stats import reset_peak, vram_stats

    device = torch.device(device)
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    reset_peak(device)
    times = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
    stats = vram_stats(device)
    return Timing(label, Percentiles.of(times), stats.max_allocated, stats.max_reserved, note)


def timing_table(title: str, rows: Sequence[Timing], device: str | torch.device) -> str:
    """A small table of component timings; CPU runs say so in the header and show no memory column."""
    cpu = torch.device(device).type != "cuda"
    where = f"CPU ({device_name('cpu')}) — CPU figures, no GPU" if cpu else f"GPU {device_name(str(device))}"
    load = host_load()
    lines = [f"{title} · {where} · torch {torch.__version__}" + (f" · load average {load[0]:.2f}" if load else "")]
    header = f"{'what':<40}{'n':>4}{'P50 ms':>11}{'P95 ms':>11}{'min ms':>11}"
    header += "" if cpu else f"{'peak alloc':>12}{'peak res.':>12}"
    lines += [header, "-" * len(header)]
    for r in rows:
        line = f"{r.label:<40}{r.ms.n:>4}{r.ms.p50:>11.1f}{r.ms.p95:>11.1f}{r.ms.min:>11.1f}"
        if not cpu:
            line += f"{r.peak_allocated / GIB:>8.2f} GiB{r.peak_reserved / GIB:>8.2f} GiB"
        lines.append(line + (f"  {r.note}" if r.note else ""))
    return "\n".join(lines)


# ---- the command ------------------------------------------------------------------------------------
def add_bench_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `vortex bench` on the `vortex` command's subparsers."""
    b = subparsers.add_parser(
        "bench", help="measure slot latency (P50/P95/P99 per phase), peak VRAM and real-time factor",
        description="Runs warm-up slots, then N measured slots of one recipe on one resident engine. "
                    f"Percentiles: {PERCENTILE_METHOD}.",
    )
    group = b.add_mutually_exclusive_group()
    group.add_argument("--profile", help="a shipped profile (default: the embedded cpu-miniature)")
    group.add_argument("--config", type=Path, help="a config.yaml (may start with `extends: <profile>`)")
    b.add_argument("--slots", type=int, default=5, help="measured slots (default 5)")
    b.add_argument("--warmup", type=int, default=1, help="warm-up slots, not counted (default 1)")
    b.add_argument("--duration", type=float,
                   help=f"slot length in seconds (default {DEFAULT_DURATION_GPU:g} on a GPU profile, "
                        f"{DEFAULT_DURATION_CPU:g} on a CPU profile)")
    b.add_argument("--recipe", type=Path, help="a recipe file (default: the built-in news read)")
    b.add_argument("--seed", type=int, default=1000, help="seed of the first slot; each slot adds 1")
    b.add_argument("--deadline", type=float, help="seconds per slot (default: the profile's generation_timeout_sec)")
    b.add_argument("--no-encode", action="store_true", help="do not write the MP4 (by default each slot is encoded)")
    b.add_argument("--json", type=Path, metavar="OUT", help="also write the full report as JSON to OUT")
    b.set_defaults(func=bench_command)
    return b


def bench_command(args: argparse.Namespace) -> int:
    cfg = VortexConfig.load(profile=args.profile, path=args.config)
    err = sys.stderr
    quiet_libraries(load=True)
    duration = args.duration if args.duration is not None else (None if args.recipe else default_duration(cfg))
    print(f"vortex bench · profile {cfg.profile}: {args.warmup} warm-up + {args.slots} slots"
          + (f" of {duration:g} s" if duration else "") + " · loading models …", file=err, flush=True)

    def progress(kind: str, index: int, s: SlotSample) -> None:
        state = "ok" if s.success else f"FAILED in {s.failed_phase}: {s.error}"
        print(f"  {kind} {index + 1}: {s.generation_time_ms / 1000:.2f} s ({state})", file=err, flush=True)

    report = run_bench(cfg, slots=args.slots, warmup=args.warmup, recipe=args.recipe, duration=duration,
                       seed=args.seed, deadline=args.deadline, encode=not args.no_encode, on_slot=progress)
    print(report.table())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(report.to_json(), encoding="utf-8")
        print(f"wrote {args.json}", file=err)
    return 0 if not report.failures else 1


def component_parser(description: str, repeat: int = 5) -> argparse.ArgumentParser:
    """The arguments every component benchmark in benchmarks/ takes."""
    parser = argparse.ArgumentParser(description=description)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--profile", default=None, help="a shipped profile (default cpu-miniature)")
    group.add_argument("--config", type=Path)
    parser.add_argument("--repeat", type=int, default=repeat)
    parser.add_argument("--warmup", type=int, default=1)
    return parser




def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m vortex.bench ...`: the same command outside the `vortex` entry point."""
    parser = argparse.ArgumentParser(prog="vortex")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except VortexError as exc:
        print(f"vortex: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
