"""One admission check for a recipe, shared by the CLI, the service, the channel and the engine:
everything that can be refused before a model works on it (exit 2 / HTTP 422, naming the field)."""

from __future__ import annotations

from ..config import VortexConfig
from ..recipe import Recipe


def admit(cfg: VortexConfig, recipe: Recipe) -> None:
    """Raise RecipeError (naming the field and what is allowed) for a recipe `cfg`'s engine cannot
    run: more frames or samples than its buffers hold, a script no allowed speed can fit, a voice it
    does not map, an unknown expression."""
    from ..motion.expressions import check_expressions

    cfg.check_recipe(recipe)
    check_expressions(recipe.visual_track.expression_preset, recipe.visual_track.expression_sequence)
