"""A timing harness for single components (benchmarks/bench_*.py and the device check use it)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from .host import device_name, host_load
from .stats import GIB, Percentiles


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
    from ..memory.stats import reset_peak, vram_stats

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
