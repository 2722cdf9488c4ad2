"""Live inserts into a running channel: breaking news on air within seconds (channel/live.py).

    POST /v1/channels/{name}/live   {"recipe": {...inline, as /v1/slots...}, "at": "now" | "next"}
        202 {"id", "air_time", "duration_sec", "state", "at", "channel"}; Location: the channel

"now" cuts the slot on air at the first frame the broadcast delay allows (the channel's
``live_delay_sec`` after the POST); "next" airs after the slot on air. An insert sent while another
is planned or on air airs after it (up to MAX_PENDING_INSERTS waiting; more answers 409). Any node
takes the request: the channel's owner runs it (forward.py). `GET /v1/channels/{name}` lists the
inserts with their state (making, on_air, aired, failed), air time and each chunk's checks.

    422  a bad body or recipe, naming the field (recipe.<field> for the recipe's own)
    401  no token (when the service has one)     404  no such channel
    409  the channel is not on air (not started, ended, stopped) or too many inserts wait
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ...channel.appender import InsertRefused
from ...errors import RecipeError
from ...inputs import RecipeFileError, decode_text, parse_text
from ...program.graphics import check_lower_third, slot_lower_third
from ...program.spec import ProgramError
from ...recipe import Recipe
from ..api_models import INSERT_SCHEMA, InsertAccepted, errors, ok, text_body
from ..admission import admitted_recipe
from ..channels.forward import forward_to_owner
from ..deps import ServiceState, channel_host, channel_or_404, error, get_state, read_limited, require_token
from ..security import RECIPE_MAX_BYTES

router = APIRouter()
_KEYS = ("recipe", "at")


def parse_insert(body: bytes, state: ServiceState, fps: int | None) -> tuple[Recipe, str]:
    """The request's recipe (portrait references resolved, admitted against the service's profile)
    and "at". RecipeError names the field; the recipe's own fields come as recipe.<field>."""
    def fail(problem: str) -> None:
        raise RecipeError("(body)", problem)

    try:
        data = parse_text(decode_text(body, fail), "recipe")
    except RecipeFileError as exc:  # the body is not JSON/YAML (or has a duplicate key): not a recipe field
        raise RecipeError("(body)" if exc.field == "recipe" else exc.field, exc.problem) from None
    if not isinstance(data, dict):
        raise RecipeError("(body)", f"must be a mapping {{\"recipe\": {{...}}, \"at\": \"now\" | \"next\"}}, "
                                    f"got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in _KEYS)
    if unknown:
        raise RecipeError(unknown[0] or "(body)", f"key {unknown[0]!r} is not a live insert field; allowed: {', '.join(_KEYS)}")
    at = data.get("at", "now")
    if at not in ("now", "next"):
        raise RecipeError("at", f"must be 'now' (cut in at once) or 'next' (after the slot on air), got {at!r}"[:200])
    raw = data.get("recipe")
    if not isinstance(raw, dict):
        raise RecipeError("recipe", "must be a recipe, inline (a mapping, as POST /v1/slots takes), "
                                    f"got {type(raw).__name__}")
    try:
        recipe = admitted_recipe(raw, state)
    except RecipeError as exc:
        raise RecipeError(f"recipe.{exc.field}", exc.problem) from None
    if fps is not None and recipe.slot_params.fps != fps:
        raise RecipeError("recipe.slot_params.fps", f"must be the channel's {fps} fps, got {recipe.slot_params.fps}")
    return recipe, at


@router.post("/v1/channels/{name}/live", status_code=202, dependencies=[Depends(require_token)],
             responses={**ok(InsertAccepted, 202, "the insert, being made"), **errors(401, 404, 409, 413, 422, 503)},
             openapi_extra=text_body("a live insert {recipe, at}, JSON or YAML", INSERT_SCHEMA))
async def go_live(name: str, request: Request, state: ServiceState = Depends(get_state)):
    host = channel_host(state)
    row = channel_or_404(state, name)
    body = await read_limited(request, RECIPE_MAX_BYTES)
    definition = host.definition_of(row)
    try:
        recipe, at = await asyncio.to_thread(parse_insert, body, state, definition.fps if definition else None)
    except RecipeError as exc:
        return error(422, f"field '{exc.field}': {exc.problem}", field=exc.field)
    if definition is not None and definition.program is not None:  # its lower third airs beside BREAKING
        try:
            check_lower_third(definition.program, slot_lower_third(recipe), "recipe.visual_track.lower_third")
        except ProgramError as exc:
            return error(422, f"field '{exc.field}': {exc.problem}", field=exc.field)
    if row.state != "on":
        return error(409, f"channel '{name}' is {row.state}, not on air: a live insert needs a running channel "
                          f"(POST /v1/channels starts one)")
    forwarded = await forward_to_owner(state, row, request, body)
    if forwarded is not None:
        return forwarded
    try:
        insert = await asyncio.to_thread(host.insert, name, recipe, at)
    except InsertRefused as exc:
        return error(409, f"channel '{name}': {exc}")
    return JSONResponse(_accepted(name, insert.summary()), status_code=202,
                        headers={"Location": f"/v1/channels/{name}"})


def _accepted(name: str, s: dict[str, Any]) -> dict[str, Any]:
    return {"id": s["id"], "air_time": s["air_time"], "duration_sec": s["duration_sec"], "state": s["state"],
            "at": s["at"], "channel": f"/v1/channels/{name}"}
