"""Settings that belong to the whole process, not to one engine: set by the process's owner (the
`vortex` command, `vortex serve`, the bench, the device check) before it builds an engine."""

from __future__ import annotations

from ..config import VortexConfig


def configure_process(cfg: VortexConfig) -> None:
    """Before the engine starts: glibc's malloc arenas capped, and TF32 on CUDA as the profile asks
    (a process-wide torch switch: two engines in one process would overwrite each other's)."""
    cap_malloc_arenas()
    if not cfg.device.is_cuda:
        return
    import torch

    torch.backends.cuda.matmul.allow_tf32 = cfg.device.allow_tf32
    torch.backends.cudnn.allow_tf32 = cfg.device.allow_tf32


def cap_malloc_arenas(n: int = 2) -> None:
    """glibc gives each new thread its own malloc arena (up to 8 per core): measured on cpu-preview
    in `vortex serve`, 1 s slots, the process grew ~35 MiB a slot (1093 → 1505 MiB over 12 slots)
    and plateaued at ~1150 MiB with 2 arenas. Set before the engine starts any thread; a no-op
    off glibc."""
    import ctypes
    import ctypes.util

    M_ARENA_MAX = -8  # malloc.h
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(M_ARENA_MAX, n)
    except (OSError, AttributeError):
        pass


_LIBC = None


def release_free_heap() -> None:
    """glibc's malloc_trim(0): the heap pages that freed memory left, handed back to the OS. glibc
    keeps them (its mmap threshold rises to the largest freed frame-sized block, so later frames
    come from the arenas, and freed arena pages stay resident). Measured in `vortex serve`, full
    soak mix (bench_soak_all, loaded 2-core machine): one trim took RssAnon 1224 -> 964 MiB while
    the Python heap had grown 8 MiB; 12 min with a kill at 6, the same load, RSS slope after 2 min
    -28/-200 MB/h with it, +602/+616 MB/h without. ~0.1 ms per MiB freed. After each slot; a no-op off glibc."""
    global _LIBC
    import ctypes
    import ctypes.util

    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _LIBC.malloc_trim(0)
    except (OSError, AttributeError):
        pass
