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

This file is the entry: `main()` puts src/ and this folder on the import path, sets the offline
and quiet switches and imports kokoro's model (`setup()`), then runs the sections of
`sections.py`, which return typed results (`EngineRun`, `EngineFigures`, `LivePortraitContext`)
into the `Check` of `bookkeeping.py` (budget, log, check.json/check.md); imports run one way:
check -> sections -> bookkeeping.

Why random weights are enough: time and memory depend on shapes, dtypes and kernels, not on the
values; the one exception, Kokoro's predicted durations (they set how much audio the vocoder
makes), is pinned to a real speaking rate (see random_models.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def setup() -> str:
    """What the check needs before any import of vortex or torch: the copied tree's src/ and this
    folder on the import path (the tree travels; vortex runs from src/), offline and quiet
    libraries, and kokoro's model without its pipeline. Returns how kokoro was imported."""
    for path in (str(ROOT / "src"), str(HERE), str(HERE.parent)):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    from vortex.logs import quiet_libraries

    quiet_libraries()
    return import_kokoro_model_only()


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


# ---- main ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out/device-check")))
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--duration", type=float, default=45.0)
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting sections after this")
    parser.add_argument("--public", help="folder with the public LivePortrait code (default .device-public/LivePortrait)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurement")
    parser.add_argument("--skip-fastest", action="store_true")
    parser.add_argument("--dry-run", action="store_true",
                        help="no GPU: miniature components on the CPU, short slots, same code path")
    args = parser.parse_args(argv)
    kokoro_import = setup()
    import torch

    import render
    import sections as s
    from bookkeeping import Check
    from vortex.config import VortexConfig

    args.public = args.public or render.PUBLIC_FOLDER

    if args.dry_run:
        args.duration = min(args.duration, 2.0)
        args.slots, args.warmup = min(args.slots, 1), min(args.warmup, 1)
    elif not torch.cuda.is_available():
        print("check.py: no CUDA device; use --dry-run on a CPU machine", file=sys.stderr)
        return 2
    device = "cpu" if args.dry_run else "cuda:0"
    size = "miniature" if args.dry_run else "full"
    check = Check(args.out, args.budget_s, args.dry_run, kokoro_import)
    check.log(f"device check: {device}, {size} components, {args.warmup} warm-up + {args.slots} slots of "
              f"{args.duration:g} s; {kokoro_import}")
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory(prefix="vortex-device-check-") as tmp_name:
        tmp = Path(tmp_name)
        with check.section("env", 0) as go:
            if go:
                s.environment(check, device)
                s.nf4_self_test(check)
        folders: dict[str, Path] = {}
        with check.section("random weights", 0) as go:
            if go:  # one set of files for both runs: the loaders cast them to each profile's precision
                voices = {v for p in ("rtx3060-12gb", "h100") for v in VortexConfig.load(p).models.kokoro.voices.values()}
                folders = s.save_weights(tmp / "weights", voices, size, check.log)
        pipeline, lp_context = None, None
        with check.section("rtx3060-12gb", 120) as go:
            if go:
                run = s.engine_run(check, "rtx3060-12gb", "rtx3060-12gb", None, device, size, folders, args, cap=True)
                pipeline = run.pipeline
                check.results["rtx3060-12gb"] = run.figures
        if torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(1.0, 0)
        with check.section("liveportrait", 60) as go:
            if go:
                if pipeline is None:
                    raise RuntimeError("needs the rtx3060-12gb engine (its voice drives the motion)")
                lp_context = s.liveportrait_section(check, pipeline, pipeline.config, args, size,
                                                    folders["liveportrait"], tmp)
        if pipeline is not None:
            pipeline.close()
            pipeline = None
            s.free_memory()
        if not args.skip_fastest:
            with check.section("fastest", 120) as go:
                if go:
                    run = s.engine_run(check, "fastest", "h100", s.FASTEST, device, size, folders, args, cap=False)
                    run.pipeline.close()
                    check.results["fastest"] = run.figures
            s.free_memory()
        if device.startswith("cuda") and not args.no_compile and lp_context is not None:
            with check.section("torch.compile", 150) as go:
                if go:
                    s.compile_section(check, lp_context)
        check.results["elapsed_s"] = time.perf_counter() - check.t0
        check.save()
    check.log(f"done in {time.perf_counter() - check.t0:.0f} s; wrote {args.out}/check.md, check.json, bench-*.json")
    return 0 if not check.results["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
