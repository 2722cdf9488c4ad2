"""The VRAM plan: what every resident model, buffer and activation peak costs, computed.

Each model is built at full size on the meta device from its upstream config (LivePortrait from
its public models.yaml, whose state dicts match the published weight files) and counted tensor
by tensor at the configured precision and placement (see `counting.py`); the figures are kept on
disk between runs (`census.py`). Buffers come from `cfg.buffers`, the CUDA context from `cfg.vram`,
and activation peaks from the estimates in `activations.py`. The figures' types are in `figures.py`, the
rows are made in `weigh.py`, the table in `render.py`, and the search for a change that fits in `search.py`.

All models stay resident, so the GPU peak is

    weights + buffers + CUDA context + max over phases(activations of that phase)

where voice (Kokoro) and actor (Flux) run concurrently: the "voice+actor" phase sums them.
Units are GiB (2**30 bytes); the config's `*_gb` limits are read as GiB.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping, get_args

from ..errors import PlanOverBudgetError
from .figures import PlanFigures

if TYPE_CHECKING:
    from ..config import VortexConfig


@dataclass(frozen=True)
class VRAMPlan(PlanFigures):
    """The plan of a config: its figures, their verdict and table, and what fits when they are over."""

    def verdict(self) -> str:
        from .render import verdict

        return verdict(self)

    def table(self) -> str:
        from .render import table

        return table(self, self.suggestion() if self.on_gpu and not self.fits else "")

    def suggestion(self) -> str:
        """When over: the biggest GPU components and a change that fits, found by re-planning."""
        from .census import census_at
        from .search import suggestion

        census = census_at(None if self.config is None else self.config.cache_path)
        try:
            return suggestion(self, census)
        finally:
            census.save()

    def over_budget_message(self) -> str:
        return (f"VRAM plan for profile '{self.profile}' does not fit: {self.suggestion()} "
                f"Run `vortex plan --profile {self.profile}` for the full table.")

    def raise_if_over(self) -> None:
        """What VortexPipeline calls before loading anything."""
        if self.on_gpu and not self.fits:
            raise PlanOverBudgetError(self.over_budget_message())

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile, "device": self.device, "units": "bytes (GiB = 2**30)",
            "rows": [asdict(r) for r in self.rows],
            "gpu_bytes": self.gpu_bytes, "host_bytes": self.host_bytes,
            "soft_limit_bytes": self.soft_limit_bytes, "hard_limit_bytes": self.hard_limit_bytes,
            "fits": self.fits, "overage_bytes": self.overage_bytes, "peak_phase": self.peak_phase,
            "verdict": self.verdict(), "notes": list(self.notes),
        }


def compute_plan(cfg: "VortexConfig", *, measured_activations: Mapping[str, int] | None = None) -> VRAMPlan:
    """The plan for `cfg`. `measured_activations` (activity -> peak bytes, e.g. from a bench run on
    the target card) replaces the matching estimates; those rows are marked "measured"."""
    from . import activations as act
    from .census import census_at
    from .search import t5_notes
    from .weigh import weigh

    measured = dict(measured_activations or {})
    unknown = set(measured) - set(get_args(act.Activity))
    if unknown:
        raise ValueError(f"unknown activities {sorted(unknown)} in measured_activations; "
                         f"known: {', '.join(get_args(act.Activity))}")
    census = census_at(cfg.cache_path)
    try:
        plan = weigh(cfg, measured, census)
        return VRAMPlan(**{**plan.__dict__, "notes": tuple(t5_notes(cfg, plan, measured, census))})
    finally:
        census.save()
