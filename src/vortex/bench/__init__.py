"""`vortex bench`: slot latency, device memory and real-time factor, measured on a resident engine.

One package, one concern a module:

- `stats`: nearest-rank percentiles (`nearest_rank`: the ceil(p/100 * n)-th smallest of n
  samples, a value that was actually measured; below 20 slots P95 and P99 are the maximum);
- `report`: the measured slots and what is derived from them (`BenchReport`, `SlotSample`);
- `table`: the report as the terminal table;
- `recipes`: the built-in news read and the default slot lengths;
- `run`: the run loop on one resident engine (`run_bench`);
- `host`: load average, device name, commit, card capacity;
- `timing`: the component timing harness of benchmarks/ (`Timing`, `time_calls`, `timing_table`);
- `cli`: `vortex bench` and the component benchmarks' arguments.

The names below resolve on first use, so `from vortex.bench.cli import add_bench_parser` (what
`vortex profiles` pays for) imports no torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "stats": ("GIB", "PERCENTILES", "PERCENTILE_METHOD", "Percentiles", "nearest_rank"),
    "report": ("FIRST_AUDIO", "FIRST_FRAME", "PROCESS", "TOTAL", "UNATTRIBUTED", "BenchReport", "LoadFigure",
               "SlotSample"),
    "table": ("report_table",),
    "recipes": ("BENCH_PROMPT", "BENCH_SCRIPT", "DEFAULT_DURATION_CPU", "DEFAULT_DURATION_GPU", "WORDS_PER_SECOND",
                "bench_recipe", "default_duration", "with_duration"),
    "run": ("SlotCallback", "run_bench"),
    "host": ("current_commit", "device_name", "host_load", "vram_total"),
    "timing": ("Timing", "time_calls", "timing_table"),
    "cli": ("add_bench_parser", "bench_command", "component_parser", "main"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'vortex.bench' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
