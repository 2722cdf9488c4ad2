"""The device check's sections (see check.py, which sets up the import path and the environment
before importing this module): the card's ceilings, an engine built from random full-size weights
and benched, the LivePortrait render path piece by piece, torch.compile, the NF4 self-test."""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

import random_models as rm
import render
from vortex.bench.recipes import BENCH_PROMPT, bench_recipe
from vortex.bench.run import run_bench
from vortex.bench.table import report_table
from vortex.bench.timing import Timing, time_calls
from vortex.config import LivePortraitConfig, VortexConfig
from vortex.cpu_check import FLUX_CPU_PRECISION
from vortex.memory.plan import compute_plan
from vortex.memory.stats import GIB

from bookkeeping import Check

if TYPE_CHECKING:
    from vortex.engine.pipeline import VortexPipeline

FASTEST = {"models": {"liveportrait": {"batch_frames": 16}}, "buffers": {"video": {"ring_frames": 32}}}


@dataclass
class ComponentFigure:
    """One registry component as loaded: its allocator growth beside the plan's GPU count."""

    component: str
    seconds: float
    vram_delta: int
    weight_bytes: int
    host_rss_delta: int
    plan_gpu_bytes: int | None


@dataclass
class EngineFigures:
    """What one engine run measured (check.json's "rtx3060-12gb" and "fastest")."""

    profile: str
    settings: dict[str, Any]
    components: list[ComponentFigure] = field(default_factory=list)
    memory_fraction: float | None = None  # the per-process cap, when capped
    first_prompt_encode_s: float | None = None
    bench: dict[str, Any] | None = None  # BenchReport.summary()
    bench_animation: str = ""


@dataclass
class EngineRun:
    figures: EngineFigures
    pipeline: "VortexPipeline"  # still open: the LivePortrait section drives its voice; the caller closes it


@dataclass
class LivePortraitContext:
    """What the torch.compile section reuses of the LivePortrait section."""

    lp: LivePortraitConfig
    portrait: np.ndarray
    driving: Any  # the motion driver's DrivingSequence
    weights: Path
    dtype: torch.dtype
    device: torch.device
    batched: Timing  # eager W + G at batch 8: the compile's baseline


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
                 f"CUDA {env['cuda']} · Python {env['python']} · {env['cpus']} CPUs · {check.results['kokoro_import']}", ""]
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
    over: dict[str, Any] = {"models": {"kokoro": {"source": str(folders["kokoro"])},
                                       "clip_b": {"source": str(folders["clip_b"])},
                                       "clip_l": {"source": str(folders["clip_l"])},
                                       "liveportrait": {"source": str(folders["liveportrait"])}},
                            # random CLIP weights judge nothing: score every slot, fail none on it; the
                            # speech check's tiny.en (75.5 MB) and CTranslate2 exceed the 64 MiB carry
                            "verification": {"enforce": False, "speech_check": False},
                            # random Flux paints no face to frame; the 99.7 MB 68-point dlib model
                            # cannot travel to the device machine either (64 MiB per call)
                            "faces": {"framing": False}}
    if dry_run:  # the CPU stands in, with vortex.cpu_check's substitutions (NF4 -> bf16), and LivePortrait
        # in fp32: fp16 convolutions run on torch's reference kernels on a CPU without AVX512-FP16
        # (~40x slower than bf16; tests/test_precisions.py runs them), too slow for a dry run
        over["device"] = {"name": "cpu"}
        over["vram"] = {"cuda_context_reserve_gb": 0.0}
        flux = cfg.models.flux
        over["models"]["flux"] = {f: FLUX_CPU_PRECISION.get(getattr(flux, f), getattr(flux, f))
                                  for f in ("precision", "t5_precision")}
        over["models"]["liveportrait"]["precision"] = "fp32"
        over["models"]["clip_b"]["precision"] = over["models"]["clip_l"]["precision"] = "int8"
        over["pipeline"] = {"generation_timeout_sec": 600.0}
    cfg = cfg.with_changes(over)
    return cfg.with_changes(extra) if extra else cfg


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
               folders: dict[str, Path], args: argparse.Namespace, cap: bool) -> EngineRun:
    """Build the engine from random weights, measure each component, bench the slots. The engine
    is handed back open (the LivePortrait section drives its voice); the caller closes it."""
    import psutil

    from vortex.engine.registry import ModelRegistry, default_loaders
    from vortex.engine.factory import build_engine

    cfg = configured(profile, device, folders, extra, check.dry_run)
    result = EngineFigures(profile=cfg.profile, settings=extra or {})
    limit = 0
    if cap and device.startswith("cuda"):
        total = torch.cuda.get_device_properties(0).total_memory
        limit = int(cfg.vram.hard_limit_gb * GIB)
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), 0)
        result.memory_fraction = limit / total
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
    rows = [ComponentFigure(r.name, r.seconds, r.vram_delta, r.weight_bytes, rss.get(r.name, 0), planned.get(r.name))
            for r in registry.records]
    result.components = rows
    check.log("components: " + ", ".join(f"{r.component} {r.vram_delta / GIB:.2f} GiB (plan "
                                          f"{(r.plan_gpu_bytes or 0) / GIB:.2f})" for r in rows))
    md = [f"\n## {run}: profile {cfg.profile}" + (f" + {json.dumps(extra)}" if extra else ""),
          "" if not limit else f"process capped at {limit / GIB:.2f} GiB (torch.cuda.set_per_process_memory_fraction)", "",
          "| component | load s | GPU bytes measured (allocator delta) GiB | plan GiB | weights as stored GiB | host RSS delta GiB |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        plan = "-" if r.plan_gpu_bytes is None else f"{r.plan_gpu_bytes / GIB:.3f}"
        md.append(f"| {r.component} | {r.seconds:.1f} | {r.vram_delta / GIB:.3f} | {plan} | "
                  f"{r.weight_bytes / GIB:.3f} | {r.host_rss_delta / GIB:.2f} |")
    check.md += md

    # The first prompt runs T5-XXL (on the host in the 12 GB profile); later slots of the same actor
    # hit the prompt cache. Timed here, so that no warm-up slot has to pay it against its deadline.
    actor = registry.get_model("flux")
    start = time.perf_counter()
    actor.encode_prompt(BENCH_PROMPT)
    result.first_prompt_encode_s = time.perf_counter() - start
    check.log(f"first prompt through T5-XXL + CLIP-L on {actor.text_device}: {result.first_prompt_encode_s:.1f} s")
    check.md.append(f"\nfirst prompt through the text encoders ({actor.text_device}, T5 {cfg.models.flux.t5_precision}): "
                    f"**{result.first_prompt_encode_s:.2f} s** (then cached per prompt)")
    pipeline = build_engine(cfg, registry=registry)
    try:
        report = run_bench(cfg, slots=args.slots, warmup=args.warmup, duration=args.duration, pipeline=pipeline,
                           on_slot=lambda kind, i, s: check.log(f"{run} {kind} {i + 1}: {s.generation_time_ms / 1000:.2f} s "
                                                                + ("ok" if s.success else f"FAILED {s.failed_phase}: {s.error}")),
                           vram_limit_bytes=limit,
                           notes=[f"device check run '{run}': components built from seeded random weights at full size"
                                  if size == "full" else "dry run: miniature components on the CPU"])
        (check.out / f"bench-{run}.json").write_text(report.to_json())
        result.bench = report.summary()
        result.bench_animation = report.animation
        check.md += ["", "```", report_table(report), "```"]
        print(report_table(report), flush=True)
    except BaseException:
        pipeline.close()
        raise
    return EngineRun(result, pipeline)


# ---- 3. LivePortrait ----------------------------------------------------------------------------------
def liveportrait_section(check: Check, pipeline: "VortexPipeline", cfg: VortexConfig, args: argparse.Namespace,
                         size: str, weights_folder: Path, tmp: Path) -> LivePortraitContext:
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
    # Streaming: several slots at once through one render queue (the road to many channels a GPU).
    others = [animator.prepare(np.ascontiguousarray(np.roll(portrait, 16 * k, axis=1))) for k in range(4)]
    timings += render.concurrent_streams(animator, [source] + others, driving,
                                         streams=(1, 4, 16) if not check.dry_run else (1, 4), frames=96 if gpu else 8)
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
    return LivePortraitContext(lp, portrait, driving, weights_folder, dtype, device, batched)


def compile_section(check: Check, ctx: LivePortraitContext) -> None:
    """torch.compile of W and G (Inductor, default mode) at batch 8, after everything else: the
    compile itself can take a minute or two."""
    from vortex.models.liveportrait.animator import DrivingRows, LivePortraitAnimator
    from vortex.models.liveportrait.networks import load_networks

    device = ctx.device
    animator = LivePortraitAnimator(load_networks(ctx.weights, device=device, dtype=ctx.dtype), ctx.lp, str(device))
    source = animator.prepare(ctx.portrait)
    rows = DrivingRows.upload(ctx.driving, device)
    t = render.compiled(animator, source, rows, 8)
    eager = ctx.batched
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
