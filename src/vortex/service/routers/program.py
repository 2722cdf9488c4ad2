"""The program picture of a running channel: its ticker and lower third changed while it airs.

    PATCH /v1/channels/{name}/program   {"ticker"?: ["headline", ...], "lower_third"?: {name, title} | null}
        200 {"channel", "ticker", "lower_third", "from_frame"}: the picture has them from frame
        `from_frame` of the stream on (the next frame made); a key left out stays as it is

The channel's runner swaps the pre-rendered layers (vortex.program.compose.ProgramCompositor.update):
the ticker keeps crawling at its speed (its position is a function of the frame index), a slot
whose recipe has its own lower third keeps showing it. The change is kept in channel.json
(vortex.channel.program_text): a restart, or another node taking the channel over, airs it.

    422  a bad body, naming the field (ticker[2], lower_third.name: too long for the width, ...)
    409  the channel airs no program (its definition has no `program` block), or it is not on air
    401  no token (when the service has one)     404  no such channel
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ...channel.appender import InsertRefused
from ...inputs import RecipeFileError, decode_text, parse_text
from ...program.graphics import check_lower_third
from ...program.spec import ProgramError, ProgramSpec
from ..api_models import PROGRAM_PATCH_SCHEMA, ProgramText, errors, ok, text_body
from ..channels.forward import forward_to_owner
from ..deps import ServiceState, channel_host, channel_or_404, error, get_state, read_limited, require_token

router = APIRouter()
_KEYS = ("ticker", "lower_third")
MAX_BYTES = 64 * 1024  # 50 headlines of 200 characters, with room


def parse_patch(body: bytes, spec: ProgramSpec) -> dict[str, Any]:
    """The changes as ``ProgramSpec.with_text`` takes them, checked against ``spec`` (the text fits)."""
    def fail(problem: str) -> None:
        raise ProgramError("(body)", problem)

    try:
        data = parse_text(decode_text(body, fail), "config")
    except RecipeFileError as exc:
        raise ProgramError("(body)", exc.problem) from None
    if not isinstance(data, dict) or not data:
        raise ProgramError("(body)", 'must be a mapping with ticker and/or lower_third, e.g. {"ticker": ["..."]}')
    unknown = sorted(str(k) for k in data if k not in _KEYS)
    if unknown:
        raise ProgramError(unknown[0] or "(body)", f"is not a field a running program changes; allowed: {', '.join(_KEYS)}")
    changes = {k: data[k] for k in _KEYS if k in data}
    new = spec.with_text(**changes)  # types and lengths: ProgramError(ticker[1], lower_third.name, ...)
    check_lower_third(new, new.lower_third, "lower_third")  # fits the width, also beside BREAKING
    return changes


@router.patch("/v1/channels/{name}/program", dependencies=[Depends(require_token)],
              responses={**ok(ProgramText, description="the program's text, from the next frame"),
                         **errors(401, 404, 409, 413, 422, 503)},
              openapi_extra=text_body("the ticker and/or lower third, JSON or YAML", PROGRAM_PATCH_SCHEMA))
async def patch_program(name: str, request: Request, state: ServiceState = Depends(get_state)):
    host = channel_host(state)
    row = channel_or_404(state, name)
    body = await read_limited(request, MAX_BYTES)
    definition = host.definition_of(row)
    if definition is None or definition.program is None:
        return error(409, f"channel '{name}' airs no program picture: its definition has no `program` block")
    try:
        changes = await asyncio.to_thread(parse_patch, body, definition.program)
    except ProgramError as exc:
        return error(422, f"field '{exc.field}': {exc.problem}", field=exc.field)
    if row.state != "on":
        return error(409, f"channel '{name}' is {row.state}, not on air: its program changes while it runs")
    forwarded = await forward_to_owner(state, row, request, body)
    if forwarded is not None:
        return forwarded
    try:
        spec, frame = await asyncio.to_thread(host.update_program, name, changes)
    except InsertRefused as exc:
        return error(409, f"channel '{name}': {exc}")
    except ProgramError as exc:
        return error(422, f"field '{exc.field}': {exc.problem}", field=exc.field)
    lt = spec.lower_third
    return JSONResponse({"channel": f"/v1/channels/{name}", "ticker": list(spec.ticker),
                         "lower_third": None if lt is None else {"name": lt.name, "title": lt.title},
                         "from_frame": frame})
