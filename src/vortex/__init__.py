"""Vortex: a recipe in, a verified talking-head video slot out, every model resident in a fixed VRAM budget."""

from .config import VortexConfig
from .errors import (
    ConfigError,
    MemoryPressureError,
    RecipeError,
    VortexError,
    VortexInitializationError,
    WeightsNotFoundError,
)
from .recipe import Recipe
from .result import GenerationResult, VerificationReport

__version__ = "0.1.0"


def __getattr__(name: str):
    # The pipeline pulls in torch, diffusers and transformers: import it only when asked for.
    if name == "VortexPipeline":
        from .engine.pipeline import VortexPipeline

        return VortexPipeline
    raise AttributeError(name)


__all__ = [
    "ConfigError", "GenerationResult", "MemoryPressureError", "Recipe", "RecipeError", "VerificationReport",
    "VortexConfig", "VortexError", "VortexInitializationError", "VortexPipeline", "WeightsNotFoundError",
]
