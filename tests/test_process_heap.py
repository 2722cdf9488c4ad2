"""engine/process.py's heap release: the pages that freed frame-sized buffers leave in glibc's
arenas go back to the OS after a slot (the soak's RSS climbed ~430 MB/h without it)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from vortex.engine.process import release_free_heap

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RssAnon from /proc")


def rss_anon_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def test_freed_frames_go_back_to_the_os():
    # A freed 8 MiB block lifts glibc's dynamic mmap threshold above it, so the 1 MiB "frames" a
    # slot thread makes next come from an arena, as the engine's frames do after its first slot.
    big = np.ones(8 << 20, np.uint8)
    del big
    frames, kept = [], []

    def slot() -> None:
        for _ in range(100):
            frames.append(np.ones(1 << 20, np.uint8))  # touched: resident
            kept.append(bytearray(256))  # small live blocks between them: the holes cannot shrink the top

    t = threading.Thread(target=slot)
    t.start()
    t.join()
    frames.clear()
    freed = rss_anon_mib()
    release_free_heap()
    assert freed - rss_anon_mib() >= 50, "malloc_trim handed back less than half of the 100 MiB freed"
    del kept
