"""The engine: one slot from a recipe, streamed chunk by chunk through every model, checked on the
way, and published whole (see pipeline.py for the slot's numbered steps).

Light on import: torch and the models load only when the pipeline is asked for.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "VortexPipeline": "pipeline",
    "build_engine": "factory",
    "admit": "admission",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vortex.engine' has no attribute '{name}'")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
