"""The VRAM plan's figures: one row per resident model, buffer and activation peak, the totals
against the limits, and the units they are shown in. Data only: the rows are made in `weigh.py`,
shown in `render.py`, searched for a change that fits in `search.py`; `plan.py` is the entry point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from ..config import VortexConfig

GIB = 2**30


def gib(nbytes: int | float) -> str:
    return f"{nbytes / GIB:.2f} GiB"


def count_label(n: int | None) -> str:
    """A parameter count the way the table shows it: 11.89 B, 123.1 M, 227.3 K."""
    if n is None:
        return "-"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}" if unit == "B" else f"{n / scale:.1f} {unit}"
    return str(n)


@dataclass(frozen=True)
class PlanRow:
    component: str
    placement: str  # "cuda" | "cpu"
    precision: str
    params: int | None
    bytes: int
    basis: str  # "counted (meta)" | "counted (manifest)" | "estimate: <how>" | "measured" | "config"
    note: str = ""


@dataclass(frozen=True)
class PlanFigures:
    """What one weighing of a config gives (`weigh.weigh`); `plan.VRAMPlan` adds its verdict, its
    table, the search for a change that fits and the check before loading."""

    profile: str
    rows: list[PlanRow]
    gpu_bytes: int
    host_bytes: int
    soft_limit_bytes: int
    hard_limit_bytes: int
    device: str = "cuda:0"
    peak_phase: str = ""
    notes: tuple[str, ...] = ()
    config: "VortexConfig | None" = field(default=None, repr=False, compare=False)
    measured_activations: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def fits(self) -> bool:
        return self.gpu_bytes <= self.hard_limit_bytes

    @property
    def overage_bytes(self) -> int:
        return max(0, self.gpu_bytes - self.hard_limit_bytes)

    def gpu_components(self) -> list[PlanRow]:
        """Resident GPU weights, biggest first."""
        rows = [r for r in self.rows if r.placement == "cuda" and r.params is not None]
        return sorted(rows, key=lambda r: r.bytes, reverse=True)
