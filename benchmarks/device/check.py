"""The device check: every Vortex component at full size (seeded random weights) on the GPU, the
memory each takes beside the plan's figure, then `vortex bench` over the same slots at two
settings, and the LivePortrait render path measured piece by piece. One command, < 8 minutes.

    python benchmarks/device/check.py --out DIR [--slots 3] [--warmup 1] [--duration 45] [--budget-s 420]
    python benchmarks/device/check.py --dry-run --out DIR      # the same code on this CPU, miniature sizes

Sections, in order (each one is timed against the budget and skipped, with a line saying so,
when too little is left; an error in one section is recorded and the next one runs):

 1. env: versions, the card, and its two ceilings measured (bf16 matmul, device-to-device copy).
 2. "rtx3060-12gb": the process is capped at the profile's hard limit
    (torch.cuda.set_per_process_memory_fraction(hard_limit / total)); Flux (NF4 transformer on the
    GPU, T5-XXL and CLIP-L on the host), Kokoro (fp32), both CLIPs (int8) and LivePortrait (fp16)
    are built with random weights, each one's allocator growth is recorded beside the VRAM plan's
    count, and `run_bench` runs warm-up + N slots of the built-in 45 s news read.
 3. LivePortrait, uncapped: W + G at batch 1, 8 and 32; a 1080-frame slot with and without the
    encoder; fp32 frame by frame against fp16 batched; NHWC vs NCHW; cuDNN autotuning; a CUDA
    graph; torch.compile; and the public LivePortrait networks (if carried in
    .device-public/LivePortrait) frame by frame at the same precision, same weights.
 4. "fastest": the same slots on the h100 profile's settings (every model bf16/fp16 on the GPU,
    T5 on the GPU) with LivePortrait at 16 frames a call through a 32-frame ring.
 5. Writes DIR/check.md (tables), DIR/check.json (everything), DIR/bench-<run>.json (BenchReport).

Why random weights are enough: time and memory depend on shapes, dtypes and kernels, not on the
values; the one exception, Kokoro's predicted durations (they set how much audio the vocoder
makes), is pinned to a real speaking rate (see random_models.py).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT / "src"), str(HERE), str(HERE.parent)]  # the tree travels; vortex runs from src/
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def import_kokoro_model_only() -> str:
    """`import kokoro` runs kokoro/__init__, which imports KPipeline, which imports misaki.en, which
    imports spaCy (with blis, thinc and friends: ~60 MB of wheels, over the device's carry limit).
    Vortex uses only `kokoro.KModel` and its own espeak G2P. Without spaCy, register the installed
    kokoro package without running its __init__ and attach the real KModel class to it."""
    if importlib.util.find_spec("spacy") is not None:
        return "kokoro imported normally"
    spec = importlib.util.find_spec("kokoro")
    if spec is None:
        raise ImportError("kokoro is not installed (carry its wheel: benchmarks/device/prepare.sh)")
    package = importlib.util.module_from_spec(spec)  # a package object with __path__, __init__ not run
    sys.modules["kokoro"] = package
    from kokoro.model import KModel
    from loguru import logger

    logger.disable("kokoro")  # what kokoro/__init__ does: its debug lines stay quiet
    package.KModel = KModel
    return "kokoro.KModel imported without kokoro.pipeline (no spaCy on this machine)"


KOKORO_IMPORT = import_kokoro_model_only()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import random_models as rm  # noqa: E402
import render  # noqa: E402
from vortex.bench import BENCH_PROMPT, BenchReport, Timing, bench_recipe, run_bench, time_calls  # noqa: E402
from vortex.config import VortexConfig, _deep_merge  # noqa: E402
from vortex.memory.plan import compute_plan  # noqa: E402
from vortex.memory.stats import GIB  # noqa: E402

FASTEST = {"models": {"liveportrait": {"batch_frames": 16}}, "buffers": {"video": {"ring_frames": 32}}}


# ---- bookkeeping ---------------------------------------------------------------------------------------
class Check:
    def __init__(self, out: Path, budget_s: float, dry_run: bool):
        self.out, self.budget_s, self.dry_run = out, budget_s, dry_run
        self.t0 = time.perf_counter()
        self.results: dict[str, Any] = {"errors": [], "skipped": [], "kokoro_import": KOKORO_IMPORT}
        self.md: list[str] = []

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def log(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f} s] {text}", flush=True)

    @contextlib.contextmanager
    def section(self, name: str, needs_s: float):
        """Run a section if `needs_s` seconds are left; record an error and go on if it fails."""
        if self.left() < needs_s:
            line = f"{name}: SKIPPED, {self.left():.0f} s of budget left and it needs ~{needs_s:.0f} s"
            self.log(line)
            self.results["skipped"].append(line)
            self.md.append(f"\n_{line}_\n")
            yield False
            return
        self.log(f"--- {name} ({self.left():.0f} s left)")
        try:
            yield True
        except Exception as exc:  # a section's failure must not cost the others their numbers
            text = f"{name}: {type(exc).__name__}: {exc}"
            self.log("ERROR " + text)
            traceback.print_exc()
            self.results["errors"].append({"section": name, "error": text, "traceback": traceback.format_exc()})
            self.md.append(f"\n**{name} failed**: `{text.splitlines()[0][:300]}`\n")
        finally:
            self.save()

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "check.json").write_text(json.dumps(self.results, indent=2, default=_json) + "\n")
        (self.out / "check.md").write_text("\n".join(self.md) + "\n")


def _json(value: Any) -> Any:
    if is_dataclass(value):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def timing_md(rows: list[Timing], gpu: bool) -> list[str]:
    lines = ["| what | n | P50 ms | min ms | peak alloc GiB | peak reserved GiB | note |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        mem = (f"{r.peak_allocated / GIB:.2f} | {r.peak_reserved / GIB:.2f}" if gpu else "n/a (CPU) | n/a (CPU)")
        lines.append(f"| {r.label} | {r.ms.n} | {r.ms.p50:.1f} | {r.ms.min:.1f} | {mem} | {r.note} |")
    return lines


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


# ---- 1. env and ceilings -------------------------------------------------------------------------------
def environment(check: Check, device: str) -> None:
    import importlib.metadata as md

    versions = {}
    for dist in ("torch", "diffusers", "transformers", "accelerate", "bitsandbytes", "av", "kokoro", "misaki",
                 "onnxruntime", "pydantic", "numpy"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    env = {"python": platform.python_version(), "versions": versions, "cpus": os.cpu_count(),
           "cuda": torch.version.cuda, "device": device, "dry_run": check.dry_run,
           "commit": os.environ.get("VORTEX_COMMIT"), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_bytes=props.total_memory, sms=props.multi_processor_count)
    check.results["env"] = env
    check.md += [f"# Vortex device check — {env.get('gpu', 'CPU dry run')}", "",
                 f"date {env['date']} · commit {env['commit'] or 'see git log'} · torch {versions['torch']} · "
                 f"CUDA {env['cuda']} · Python {env['python']} · {env['cpus']} CPUs · {KOKORO_IMPORT}", ""]
    if not device.startswith("cuda"):
        return
    # The two ceilings (METHOD.md): a large bf16 matmul and a large device-to-device copy.
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    mm = time_calls("bf16 8192^3 matmul", lambda: a @ b, device=device, repeat=10, warmup=3)
    src = torch.randn(2**28, device=device)  # 1 GiB
    dst = torch.empty_like(src)
    cp = time_calls("device-to-device copy 1 GiB", lambda: dst.copy_(src), device=device, repeat=10, warmup=3)
    tflops = 2 * n**3 / (mm.ms.p50 / 1000) / 1e12
    tbps = 2 * src.numel() * 4 / (cp.ms.p50 / 1000) / 1e12
    check.results["ceilings"] = {"bf16_tflops": tflops, "copy_tb_per_s_read_plus_write": tbps}
    check.md += [f"ceilings measured: bf16 matmul **{tflops:.0f} TFLOP/s**, device copy **{tbps:.2f} TB/s** "
                 "(bytes read + written)", ""]
    del a, b, src, dst
    free_memory()


# ---- 2 and 4. a whole engine, built from random weights --------------------------------------------
def configured(profile: str, device: str, folders: dict[str, Path], extra: dict | None, dry_run: bool) -> VortexConfig:
    cfg = VortexConfig.load(profile)
    data = cfg.model_dump()
    over: dict[str, Any] = {"models": {"kokoro": {"source": str(folders["kokoro"])},
                                       "clip_b": {"source": str(folders["clip_b"])},
                                       "clip_l": {"source": str(folders["clip_l"])},
                                       "liveportrait": {"source": str(folders["liveportrait"])}},
                            # random CLIP weights judge nothing: score every slot, fail none on it
                            "verification": {"enforce": False}}
    if dry_run:  # the CPU stands in: everything fp32 where the CPU has no kernels for the GPU formats
        over["device"] = {"name": "cpu"}
        over["vram"] = {"cuda_context_reserve_gb": 0.0}
        over["models"]["flux"] = {"precision": "bf16" if cfg.models.flux.precision == "nf4" else cfg.models.flux.precision}
        over["models"]["liveportrait"]["precision"] = "fp32"
        over["models"]["clip_b"]["precision"] = over["models"]["clip_l"]["precision"] = "int8"
        over["pipeline"] = {"generation_timeout_sec": 600.0}
    data = _deep_merge(data, over)
    if extra:
        data = _deep_merge(data, extra)
    return VortexConfig.model_validate(data)


def save_weights(tmp: Path, voices, size: str, log: Callable[[str], None]) -> dict[str, Path]:
    folders = {"kokoro": tmp / "kokoro", "clip_b": tmp / "clip_b32", "clip_l": tmp / "clip_l14",
               "liveportrait": tmp / "liveportrait"}
    start = time.perf_counter()
    rm.save_random_kokoro(folders["kokoro"], voices, size)
    rm.save_random_clip(folders["clip_b"], "b32", size, seed=1)
    rm.save_random_clip(folders["clip_l"], "l14", size, seed=2)
    rm.save_random_liveportrait(folders["liveportrait"], size, seed=3)
    log(f"random weights written in the upstream layouts in {time.perf_counter() - start:.1f} s")
    return folders


def plan_bytes_for(cfg: VortexConfig) -> dict[str, int]:
    """The plan's GPU bytes for each registry component."""
    plan = compute_plan(cfg)
    groups = {"flux": ("flux.",), "kokoro": ("kokoro",), "clip": ("clip_b32", "clip_l14"), "liveportrait": ("liveportrait",)}
    out = {}
    for name, prefixes in groups.items():
        out[name] = sum(r.bytes for r in plan.rows
                        if r.params is not None and r.placement == "cuda" and r.component.startswith(prefixes))
    return out


def engine_run(check: Check, run: str, profile: str, extra: dict | None, device: str, size: str,
               folders: dict[str, Path], args: argparse.Namespace, cap: bool) -> dict[str, Any]:
    """Build the engine from random weights, measure each component, bench the slots."""
    import psutil

    from vortex.models.registry import ModelRegistry, default_loaders
    from vortex.pipeline import VortexPipeline

    cfg = configured(profile, device, folders, extra, check.dry_run)
    result: dict[str, Any] = {"profile": cfg.profile, "settings": extra or {}}
    limit = 0
    if cap and device.startswith("cuda"):
        total = torch.cuda.get_device_properties(0).total_memory
        limit = int(cfg.vram.hard_limit_gb * GIB)
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), 0)
        result["memory_fraction"] = limit / total
        check.log(f"capped at {cfg.vram.hard_limit_gb} GiB = {limit / total:.4f} of {total / GIB:.1f} GiB")

    loaders = default_loaders(cfg)
    loaders["flux"] = lambda _: rm.random_flux_actor(cfg.models.flux, cfg.device.name, size, seed=0)
    rss = {}
    process = psutil.Process()

    def tracked(name, loader):
        def load(loaded):
            before = process.memory_info().rss
            out = loader(loaded)
            rss[name] = process.memory_info().rss - before
            return out
        return load

    loaders = {name: tracked(name, loader) for name, loader in loaders.items()}
    registry = ModelRegistry.load(cfg, loaders)
    planned = plan_bytes_for(cfg)
    rows = []
    for r in registry.records:
        rows.append({"component": r.name, "seconds": r.seconds, "vram_delta": r.vram_delta,
                     "weight_bytes": r.weight_bytes, "host_rss_delta": rss.get(r.name, 0), "plan_gpu_bytes": planned.get(r.name)})
    result["components"] = rows
    check.log("components: " + ", ".join(f"{r['component']} {r['vram_delta'] / GIB:.2f} GiB (plan "
                                          f"{(r['plan_gpu_bytes'] or 0) / GIB:.2f})" for r in rows))
    md = [f"\n## {run}: profile {cfg.profile}" + (f" + {json.dumps(extra)}" if extra else ""),
          "" if not limit else f"process capped at {limit / GIB:.2f} GiB (torch.cuda.set_per_process_memory_fraction)", "",
          "| component | load s | GPU bytes measured (allocator delta) GiB | plan GiB | weights as stored GiB | host RSS delta GiB |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        plan = "-" if r["plan_gpu_bytes"] is None else f"{r['plan_gpu_bytes'] / GIB:.3f}"
        md.append(f"| {r['component']} | {r['seconds']:.1f} | {r['vram_delta'] / GIB:.3f} | {plan} | "
                  f"{r['weight_bytes'] / GIB:.3f} | {r['host_rss_delta'] / GIB:.2f} |")
    check.md += md

    # The first prompt runs T5-XXL (on the host in the 12 GB profile); later slots of the same actor
    # hit the prompt cache. Timed here, so that no warm-up slot has to pay it against its deadline.
    actor = registry.get_model("flux")
    start = time.perf_counter()
    actor.encode_prompt(BENCH_PROMPT)
    result["first_prompt_encode_s"] = time.perf_counter() - start
    check.log(f"first prompt through T5-XXL + CLIP-L on {actor.text_device}: {result['first_prompt_encode_s']:.1f} s")
    check.md.append(f"\nfirst prompt through the text encoders ({actor.text_device}, T5 {cfg.models.flux.t5_precision}): "
                    f"**{result['first_prompt_encode_s']:.2f} s** (then cached per prompt)")
    pipeline = VortexPipeline(cfg, registry=registry)
    try:
        report = run_bench(cfg, slots=args.slots, warmup=args.warmup, duration=args.duration, pipeline=pipeline,
                           on_slot=lambda kind, i, s: check.log(f"{run} {kind} {i + 1}: {s.generation_time_ms / 1000:.2f} s "
                                                                + ("ok" if s.success else f"FAILED {s.failed_phase}: {s.error}")),
                           vram_limit_bytes=limit,
                           notes=[f"device check run '{run}': components built from seeded random weights at full size"
                                  if size == "full" else "dry run: miniature components on the CPU"])
        (check.out / f"bench-{run}.json").write_text(report.to_json())
        result["bench"] = report.summary()
        result["bench_animation"] = report.animation
        check.md += ["", "```", report.table(), "```"]
        print(report.table(), flush=True)
    except BaseException:
        pipeline.close()
        raise
    result["_pipeline"] = pipeline  # handed back for the LivePortrait section; popped before saving
    return result


# ---- 3. LivePortrait ----------------------------------------------------------------------------------
def liveportrait_section(check: Check, pipeline, cfg: VortexConfig, args: argparse.Namespace, size: str,
                         weights_folder: Path, tmp: Path) -> dict[str, Any]:
    from vortex.models.liveportrait.animator import DrivingRows, LivePortraitAnimator
    from vortex.models.liveportrait.networks import load_networks
    from vortex.motion.driver import MotionDriver

    from bench_verify import test_pattern

    device = torch.device(cfg.device.name)
    gpu = device.type == "cuda"
    lp = cfg.models.liveportrait
    fps = 24
    n = round(args.duration * fps)
    recipe = bench_recipe(args.duration)
    voice = pipeline.registry.get_model("kokoro")
    speech = voice.synthesize(recipe.audio_track.script, "rick_c137", 1.0, "neutral", round(args.duration * 24000), seed=0)
    driving = MotionDriver(cfg.motion).drive(speech, n, fps, seed=0)
    portrait = test_pattern()
    dtype = torch.float16 if gpu else torch.float32
    animator = LivePortraitAnimator(load_networks(weights_folder, device=device, dtype=dtype), lp, str(device))
    source = animator.prepare(portrait)
    rows = DrivingRows.upload(driving, device)
    results: dict[str, Any] = {"frames": n, "precision": str(dtype)}
    timings: list[Timing] = []

    batches = (1, 8, 32) if not check.dry_run else (1, 4)
    timings += render.batch_sweep(animator, source, rows, batches)
    timings.append(render.slot_render(animator, source, driving, cfg.buffers.video.ring_frames, fps, encode=False))
    timings.append(render.slot_render(animator, source, driving, cfg.buffers.video.ring_frames, fps, encode=True))
    fbf = 24 if not check.dry_run else 4
    timings.append(render.frame_by_frame(animator, source, rows, fbf, f"{str(dtype).split('.')[-1]}"))
    # fp32, frame by frame: the slow baseline of the fast path
    animator32 = LivePortraitAnimator(load_networks(weights_folder, device=device, dtype=torch.float32),
                                      lp.model_copy(update={"precision": "fp32"}), str(device))
    source32 = animator32.prepare(portrait)
    timings.append(render.frame_by_frame(animator32, source32, rows, fbf, "fp32"))
    b8 = 8 if not check.dry_run else 4
    batched = next(t for t in timings if t.label == f"W + G, batch {b8}")
    ratio = (timings[-1].ms.p50 / fbf) / (batched.ms.p50 / b8)
    results["fp32_frame_by_frame_over_batched"] = ratio
    if gpu:
        # NCHW: separate networks, since the NHWC animator converted G's weights in place
        nchw = LivePortraitAnimator(load_networks(weights_folder, device=device, dtype=dtype), lp, str(device),
                                    channels_last=False)
        timings += [Timing(t.label + ", NCHW", t.ms, t.peak_allocated, t.peak_reserved, t.note)
                    for t in render.batch_sweep(nchw, nchw.prepare(portrait), rows, (8,))]
        del nchw
        timings.append(render.cudnn_benchmark(animator, source, rows, 8))
        try:
            timings.append(render.cuda_graph(animator, source, rows, 8))
        except Exception as exc:  # capture fails on a host sync inside the networks: say so
            results["cuda_graph_error"] = f"{type(exc).__name__}: {exc}"
    results["timings"] = timings
    check.md += ["\n## LivePortrait render path (full size, seeded random weights)" if size == "full"
                 else "\n## LivePortrait render path (dry run: miniature, CPU)", "",
                 f"{n} frames driven by the motion driver from the voice's speech; ms a frame, fp32 frame by frame "
                 f"/ {str(dtype).split('.')[-1]} batch {b8}: **{ratio:.1f}x**", ""] + timing_md(timings, gpu)
    for key in ("cuda_graph_error",):
        if key in results:
            check.md.append(f"\n{key}: {results[key]}")

    if render.public_available(args.public):
        if check.dry_run:  # the public code builds only the full architecture: one full-size frame on the CPU
            full = rm.save_random_liveportrait(tmp / "public-full", "full", seed=3)
            lp32 = lp.model_copy(update={"precision": "fp32"})
            a32 = LivePortraitAnimator(load_networks(full, device=device, dtype=torch.float32), lp32, str(device))
            s32 = a32.prepare(portrait)
            comp = render.public_comparison(args.public, full, a32, a32, s32, s32, rows, frames=1, batch=1,
                                            repeat=1, warmup=0)
        else:
            comp = render.public_comparison(args.public, weights_folder, animator, animator32, source, source32,
                                            rows, frames=48, batch=8)
        results["public"] = comp
        check.md += ["", "### against the public LivePortrait networks (same weights, same inputs)", "",
                     f"fp32 numerics, ours vs public W + G: max |diff| {comp['max_abs_diff_fp32']:.2e}, "
                     f"relative {comp['rel_diff_fp32']:.2e}", "",
                     f"speed: **the Vortex render path delivers {comp['speedup']:.2f}x the frames per second of the "
                     "public frame-by-frame loop** (same card, same weights)", ""]
        check.md += timing_md([comp["public"], comp["ours"]], gpu)
    else:
        line = (f"public LivePortrait comparison SKIPPED: no public code at '{args.public}' (expected "
                "src/modules/*.py and src/config/models.yaml of github.com/KwaiVGI/LivePortrait; "
                "benchmarks/device/prepare.sh puts them there from a fetched mirror)")
        results["public"] = line
        check.md += ["", line]
        check.log(line)
    check.results["liveportrait"] = results
    return {"lp": lp, "portrait": portrait, "driving": driving, "weights": weights_folder, "dtype": dtype,
            "device": device, "batched": batched}


def compile_section(check: Check, ctx: dict[str, Any]) -> None:
    """torch.compile of W and G (Inductor, default mode) at batch 8, after everything else: the
    compile itself can take a minute or two."""
    from vortex.models.liveportrait.animator import DrivingRows, LivePortraitAnimator
    from vortex.models.liveportrait.networks import load_networks

    device = ctx["device"]
    animator = LivePortraitAnimator(load_networks(ctx["weights"], device=device, dtype=ctx["dtype"]), ctx["lp"],
                                    str(device))
    source = animator.prepare(ctx["portrait"])
    rows = DrivingRows.upload(ctx["driving"], device)
    t = render.compiled(animator, source, rows, 8)
    eager = ctx["batched"]
    check.results["compile"] = {"timing": t, "eager": eager}
    check.md += ["\n### torch.compile (W and G, Inductor default mode)", ""] + timing_md([eager, t], device.type == "cuda")


def nf4_self_test(check: Check) -> None:
    """The NF4 swap on a small MLP against its bf16 weights (runs on the CPU too)."""
    import bitsandbytes  # noqa: F401

    gen = rm._generator("cpu", 0)
    with torch.device("meta"):
        mlp = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.Linear(512, 128))
    layers = rm.nf4_linears_(mlp, "cuda" if torch.cuda.is_available() else "cpu", gen)
    x = torch.randn(16, 256, dtype=torch.bfloat16, device=layers[0].weight.device)
    y = mlp(x)
    ok = bool(torch.isfinite(y).all()) and y.shape == (16, 128) and float(y.float().std()) > 0.05
    check.results["nf4_self_test"] = {"ok": ok, "std": float(y.float().std())}
    check.log(f"NF4 swap self-test: {'ok' if ok else 'FAILED'}")


# ---- main ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out/device-check")))
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--duration", type=float, default=45.0)
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting sections after this")
    parser.add_argument("--public", default=render.PUBLIC_FOLDER, help="folder with the public LivePortrait code")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurement")
    parser.add_argument("--skip-fastest", action="store_true")
    parser.add_argument("--dry-run", action="store_true",
                        help="no GPU: miniature components on the CPU, short slots, same code path")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.duration = min(args.duration, 2.0)
        args.slots, args.warmup = min(args.slots, 1), min(args.warmup, 1)
    elif not torch.cuda.is_available():
        print("check.py: no CUDA device; use --dry-run on a CPU machine", file=sys.stderr)
        return 2
    device = "cpu" if args.dry_run else "cuda:0"
    size = "miniature" if args.dry_run else "full"
    check = Check(args.out, args.budget_s, args.dry_run)
    check.log(f"device check: {device}, {size} components, {args.warmup} warm-up + {args.slots} slots of "
              f"{args.duration:g} s; {KOKORO_IMPORT}")
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory(prefix="vortex-device-check-") as tmp_name:
        tmp = Path(tmp_name)
        with check.section("env", 0) as go:
            if go:
                environment(check, device)
                nf4_self_test(check)
        folders: dict[str, Path] = {}
        with check.section("random weights", 0) as go:
            if go:  # one set of files for both runs: the loaders cast them to each profile's precision
                voices = {v for p in ("rtx3060-12gb", "h100") for v in VortexConfig.load(p).models.kokoro.voices.values()}
                folders = save_weights(tmp / "weights", voices, size, check.log)
        pipeline, lp_context = None, None
        with check.section("rtx3060-12gb", 120) as go:
            if go:
                res = engine_run(check, "rtx3060-12gb", "rtx3060-12gb", None, device, size, folders, args, cap=True)
                pipeline = res.pop("_pipeline")
                check.results["rtx3060-12gb"] = res
        if torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(1.0, 0)
        with check.section("liveportrait", 60) as go:
            if go:
                if pipeline is None:
                    raise RuntimeError("needs the rtx3060-12gb engine (its voice drives the motion)")
                lp_context = liveportrait_section(check, pipeline, pipeline.config, args, size,
                                                  folders["liveportrait"], tmp)
        if pipeline is not None:
            pipeline.close()
            pipeline = None
            free_memory()
        if not args.skip_fastest:
            with check.section("fastest", 120) as go:
                if go:
                    res = engine_run(check, "fastest", "h100", FASTEST, device, size, folders, args, cap=False)
                    res.pop("_pipeline").close()
                    check.results["fastest"] = res
            free_memory()
        if device.startswith("cuda") and not args.no_compile and lp_context is not None:
            with check.section("torch.compile", 150) as go:
                if go:
                    compile_section(check, lp_context)
        check.results["elapsed_s"] = time.perf_counter() - check.t0
        check.save()
    check.log(f"done in {time.perf_counter() - check.t0:.0f} s; wrote {args.out}/check.md, check.json, bench-*.json")
    return 0 if not check.results["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
