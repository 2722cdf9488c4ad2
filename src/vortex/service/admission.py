"""What a client sends, admitted before anything is stored or run: a slot's recipe (POST /v1/slots,
a live insert's recipe) and a channel definition (POST /v1/channels, and a stored channel's
definition read again when a node resumes or takes it over). Portrait and job references are
resolved, and every recipe is checked against the service's profile; the error names the field."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..channel.definition import ChannelDefinition, ChannelError
from ..engine.admission import admit
from ..errors import RecipeError
from ..recipe import Recipe
from .security import PORTRAIT_REF, portrait_path, resolve_references

if TYPE_CHECKING:
    from .deps import ServiceState

_JOB_REF = re.compile(r"^job:([A-Za-z0-9_-]{1,64})$")


def admitted_recipe(data: Any, state: "ServiceState") -> Recipe:
    """A recipe sent over HTTP: portrait references resolved, admitted against the service's profile
    (durations, voices, sizes, presets). RecipeError names the field."""
    recipe = Recipe.from_dict(resolve_references(data, state.portraits), source=None)
    admit(state.config, recipe)
    return recipe


def parse_channel(data: Any, state: "ServiceState") -> ChannelDefinition:
    """A channel definition from a client: job references and portrait references resolved, each
    recipe checked against the service's profile. ChannelError names the field."""
    if not isinstance(data, dict):
        raise ChannelError(None, "(top level)", f"must be a mapping (a channel definition), got {type(data).__name__}")
    if "slate" in data:
        raise ChannelError(None, "slate", _NO_SLATE)
    slots = data.get("slots")
    if isinstance(slots, list):
        data = {**data, "slots": [_resolve_slot(i, entry, state) for i, entry in enumerate(slots)]}
    if isinstance(data.get("program"), dict):
        data = {**data, "program": _resolve_program(data["program"], state)}
    definition = ChannelDefinition.from_dict(data, base_dir=None, source=None)
    definition.check(state.config)
    return definition


_NO_SLATE = "over HTTP a break airs the stand-by card: a slate is a server path, and server paths are not accepted"


def _resolve_program(block: dict, state: "ServiceState") -> dict:
    """Over HTTP the program's background and logo are `portrait:<sha256>` references to images
    uploaded with POST /v1/portraits (the background may be a colour): never a server path."""
    block = dict(block)
    for key in ("background", "logo"):
        ref = block.get(key)
        if ref is None or (key == "background" and isinstance(ref, str) and ref.startswith("#")):
            continue
        match = PORTRAIT_REF.match(ref) if isinstance(ref, str) else None
        if match is None:
            raise ChannelError(None, f"program.{key}", f"over HTTP it must be a 'portrait:<sha256>' reference returned "
                                                       f"by POST /v1/portraits{' or a colour #RRGGBB' if key == 'background' else ''}"
                                                       f"; server paths are not accepted, got {ref!r}"[:300])
        path = portrait_path(state.portraits, match.group(1))
        if not path.is_file():
            raise ChannelError(None, f"program.{key}", f"no image {ref!r} on this server; upload it with POST "
                                                       "/v1/portraits first")
        block[key] = str(path)
    return block


def _resolve_slot(i: int, entry: Any, state: "ServiceState") -> Any:
    if isinstance(entry, dict) and "break" in entry and "slate" in entry:
        raise ChannelError(None, f"slots[{i}].slate", _NO_SLATE)
    if not isinstance(entry, dict) or "recipe" not in entry:
        return entry  # from_dict says what a slot must be
    ref, field = entry["recipe"], f"slots[{i}].recipe"
    if isinstance(ref, str):
        match = _JOB_REF.match(ref)
        if match is None:
            raise ChannelError(None, field, "over HTTP a recipe is inline (a mapping) or 'job:<id>' naming a "
                                            f"submitted job; server paths are not accepted, got {ref!r}"[:300])
        job = state.store.get(match.group(1))
        if job is None:
            raise ChannelError(None, field, f"no job '{match.group(1)}' on this server (GET /v1/slots lists them)")
        return {**entry, "recipe": job.recipe}
    if isinstance(ref, dict):
        try:
            return {**entry, "recipe": resolve_references(ref, state.portraits)}
        except RecipeError as exc:
            raise ChannelError(None, f"{field}.{exc.field}", exc.problem) from None
    return entry
