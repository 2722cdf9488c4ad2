"""The bench's run loop: one resident engine, warm-up slots thrown away, then N measured slots.

One `VortexPipeline` is built (every model loaded once, as in production), a few warm-up slots
run and are thrown away (allocator growth, cuDNN/cuBLAS autotuning, the Flux prompt cache, lazy
imports), then N slots of the same recipe run with different seeds. Each slot writes its MP4 into
a temporary folder, so the encoder's cost and its overlap with rendering are inside the numbers.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from ..errors import ConfigError
from ..recipe import Recipe
from .host import current_commit, device_name, host_load, vram_total
from .recipes import bench_recipe, default_duration, with_duration
from .report import BenchReport, LoadFigure, SlotSample

if TYPE_CHECKING:
    from ..config import VortexConfig
    from ..engine.pipeline import VortexPipeline

SlotCallback = Callable[[str, int, SlotSample], None]  # ("warmup" | "slot", index, sample)


def run_bench(
    cfg: "VortexConfig",
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
            the_recipe = with_duration(the_recipe, duration)
    the_recipe.check_voice(list(cfg.models.kokoro.voices))

    import torch

    from ..engine.factory import build_engine

    own = pipeline is None
    load_s = None
    if own:
        start = time.perf_counter()
        pipeline = build_engine(cfg)
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
                # One slot at a time: the process's CPU and the library threads' over the slot are its own.
                libraries = pipeline.library_threads.cpu_by_stage()
                cpu_start = time.process_time()
                result = pipeline.generate_slot_sync(the_recipe, slot_id=i + 1, seed=seed + i,
                                                     deadline=deadline, output=output)
                process_cpu = time.process_time() - cpu_start
                sample = SlotSample.from_result(result, p.duration_sec)
                sample.process_cpu_s = process_cpu
                threads = pipeline.library_threads
                for stage, spent in threads.spent(libraries, threads.cpu_by_stage()).items():
                    sample.cpu_s[stage] = sample.cpu_s.get(stage, 0.0) + spent
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
        commit=current_commit(), torch_version=torch.__version__, vram_total_bytes=vram_total(device),
        vram_limit_bytes=vram_limit_bytes, animation=animation, notes=list(notes), host_load=host_load(),
    )
