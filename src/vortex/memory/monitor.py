"""Watches GPU memory against the configured limits: warn once at the soft limit, stop at the hard one."""

from __future__ import annotations

import logging
from typing import Callable, Optional

import torch

from ..errors import MemoryPressureError
from .stats import GIB, format_bytes

log = logging.getLogger("vortex.memory")


class VRAMMonitor:
    """Checked at phase boundaries. Usage is what PyTorch's allocator reserves on the device: the
    memory this process holds, which is what the budget is about (other processes are not ours
    to police). On a CPU-only engine there is no VRAM to watch and the monitor is inactive."""

    def __init__(
        self,
        soft_limit_gb: float,
        hard_limit_gb: float,
        device: str = "cuda:0",
        usage_fn: Optional[Callable[[], int]] = None,
    ):
        if soft_limit_gb > hard_limit_gb:
            raise ValueError(f"soft limit {soft_limit_gb} GiB exceeds hard limit {hard_limit_gb} GiB")
        self.soft_limit = int(soft_limit_gb * GIB)
        self.hard_limit = int(hard_limit_gb * GIB)
        self.device = torch.device(device)
        if usage_fn is None and self.device.type == "cuda":
            usage_fn = lambda: torch.cuda.memory_reserved(self.device)  # noqa: E731
        self._usage_fn = usage_fn
        self.soft_warned = False
        self.last_usage = 0

    @property
    def active(self) -> bool:
        return self._usage_fn is not None

    def check(self, where: str = "") -> int:
        """Return the bytes in use; warn once above the soft limit, raise above the hard limit."""
        if self._usage_fn is None:
            return 0
        usage = int(self._usage_fn())
        self.last_usage = usage
        at = f" at {where}" if where else ""
        if usage > self.hard_limit:
            raise MemoryPressureError(
                f"GPU memory in use{at} is {format_bytes(usage)}, over the hard limit of "
                f"{format_bytes(self.hard_limit)}; run `vortex plan` to see where it goes"
            )
        if usage > self.soft_limit and not self.soft_warned:
            self.soft_warned = True
            log.warning(
                "soft VRAM limit crossed",
                extra={"event": "vram_soft_limit", "where": where, "bytes": usage, "soft_limit": self.soft_limit},
            )
        return usage

    def reset_warning(self) -> None:
        self.soft_warned = False
