"""`vortex bench` and the arguments of the component benchmarks in benchmarks/.

Registering the parser imports no torch: `vortex profiles` builds the same parser and must start
in a fraction of a second; the run loop (and torch) is imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..config import DEFAULT_PROFILE
from .recipes import DEFAULT_DURATION_CPU, DEFAULT_DURATION_GPU, default_duration
from .stats import PERCENTILE_METHOD


def add_bench_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `vortex bench` on the `vortex` command's subparsers."""
    b = subparsers.add_parser(
        "bench", help="measure slot latency (P50/P95/P99 per phase), peak VRAM and real-time factor",
        description="Runs warm-up slots, then N measured slots of one recipe on one resident engine. "
                    f"Percentiles: {PERCENTILE_METHOD}.",
    )
    group = b.add_mutually_exclusive_group()
    group.add_argument("--profile", help=f"a shipped profile (default: {DEFAULT_PROFILE})")
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
    from ..config import VortexConfig
    from ..logs import quiet_libraries
    from .report import SlotSample
    from .run import run_bench
    from .table import report_table

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
    print(report_table(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(report.to_json(), encoding="utf-8")
        print(f"wrote {args.json}", file=err)
    return 0 if not report.failures else 1


def component_parser(description: str, repeat: int = 5) -> argparse.ArgumentParser:
    """The arguments every component benchmark in benchmarks/ takes."""
    parser = argparse.ArgumentParser(description=description)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--profile", default=None, help=f"a shipped profile (default: {DEFAULT_PROFILE})")
    group.add_argument("--config", type=Path)
    parser.add_argument("--repeat", type=int, default=repeat)
    parser.add_argument("--warmup", type=int, default=1)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m vortex.bench ...`: the same command outside the `vortex` entry point."""
    from ..errors import VortexError

    parser = argparse.ArgumentParser(prog="vortex")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except VortexError as exc:
        print(f"vortex: error: {exc}", file=sys.stderr)
        return 2
