"""A debug-only memory trace of `vortex serve`, off unless VORTEX_TRACEMALLOC=PATH is set: it starts
tracemalloc and, every VORTEX_TRACEMALLOC_EVERY seconds (default 120), appends to PATH the process's
RssAnon, the Python heap that tracemalloc sees, the top growth by traceback since the first dump,
and the gc object counts by type that grew. VORTEX_MALLOC_TRIM=1 also calls glibc's malloc_trim(0)
at each dump and logs RssAnon before and after (freed heap that glibc had kept vs live memory).
It tells Python-heap growth (tracemalloc rises with RssAnon) from native growth (it does not)."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Optional


def rss_anon_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _type_counts() -> Counter:
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def _malloc_trim() -> None:
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def start_from_env() -> Optional[threading.Thread]:
    path = os.environ.get("VORTEX_TRACEMALLOC")
    if not path:
        return None
    import tracemalloc

    every = float(os.environ.get("VORTEX_TRACEMALLOC_EVERY", "120"))
    trim = os.environ.get("VORTEX_MALLOC_TRIM") == "1"
    out = Path(path)

    def run() -> None:
        # started after the engine has loaded (tracemalloc slows the load past the harness's 120 s):
        # only growth is wanted, and the first dump is the baseline
        time.sleep(float(os.environ.get("VORTEX_TRACEMALLOC_AFTER", "90")))
        tracemalloc.start(int(os.environ.get("VORTEX_TRACEMALLOC_FRAMES", "6")))
        base, base_types, t0 = None, None, time.monotonic()
        while True:
            time.sleep(every)
            snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            types = _type_counts()
            cur, _peak = tracemalloc.get_traced_memory()
            lines = [f"== t={time.monotonic() - t0:.0f}s RssAnon {rss_anon_mib():.1f} MiB traced {cur / 2**20:.1f} MiB "
                     f"objects {sum(types.values())}"]
            if trim:
                before, t = rss_anon_mib(), time.perf_counter()
                _malloc_trim()
                lines.append(f"malloc_trim: RssAnon {before:.1f} -> {rss_anon_mib():.1f} MiB in "
                             f"{(time.perf_counter() - t) * 1e3:.1f} ms")
            if base is None:
                base, base_types = snap, types
            else:
                for st in snap.compare_to(base, "traceback")[:15]:
                    lines.append(f"{st.size_diff / 2**10:+.0f} KiB {st.count_diff:+d} blocks (now {st.size / 2**10:.0f} KiB)")
                    lines.extend("    " + ln for ln in st.traceback.format(limit=6))
                grew = sorted(((n - base_types.get(k, 0), k) for k, n in types.items()), reverse=True)[:15]
                lines.append("objects grown: " + ", ".join(f"{k} {d:+d}" for d, k in grew if d > 0))
            with out.open("a") as f:
                f.write("\n".join(lines) + "\n")

    thread = threading.Thread(target=run, name="vortex-memtrace", daemon=True)
    thread.start()
    return thread
