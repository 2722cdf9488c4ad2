"""One exception handler for every input error a route can let escape: 422 naming the field.

`vortex.inputs` raises `RecipeFileError` (a `RecipeError`) and `ConfigFileError` (a `ConfigError`)
for a body that is not UTF-8, JSON or YAML, nests too deep, repeats a key or expands too far
through YAML aliases; the recipe, config and channel validators raise `RecipeError`,
`ConfigFieldError` and `ChannelError` naming the field. The routes answer the ones they expect
themselves (with the field prefixed where the body wraps a recipe); this handler is the net under
them, so a parse error a route forgets to catch is a 422 in the API's error shape, never a 500
with a traceback (issue 23: a malformed live insert body was one).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..channel.definition import ChannelError
from ..errors import ConfigError, RecipeError
from .deps import error

INPUT_ERRORS = (RecipeError, ConfigError, ChannelError)


def _field(exc: Exception) -> str:
    return getattr(exc, "field", None) or "(body)"


async def _input_error(request: Request, exc: Exception) -> JSONResponse:
    return error(422, str(exc), field=_field(exc))


def install(app: FastAPI) -> None:
    """Register the handler for each input error type (Starlette matches a handler by the
    exception's class and its bases, so the subclasses are covered)."""
    for cls in INPUT_ERRORS:
        app.add_exception_handler(cls, _input_error)
