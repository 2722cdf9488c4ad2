"""The one way a process builds its engine: the process-wide settings first, then the pipeline.

Used by `vortex generate`, `vortex channel run`, `vortex serve`, a Ray Serve replica, the bench
and the device check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ..config import VortexConfig
from .process import configure_process

if TYPE_CHECKING:
    from .pipeline import VortexPipeline
    from .registry import ModelRegistry


def build_engine(cfg: VortexConfig, *, registry: Optional["ModelRegistry"] = None) -> "VortexPipeline":
    """configure_process (malloc arenas, TF32), then a `VortexPipeline` that loads every model."""
    configure_process(cfg)
    from .pipeline import VortexPipeline

    return VortexPipeline(cfg, registry=registry)
