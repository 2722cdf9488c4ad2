"""The channel routes of `vortex serve`: start, show and stop channels, and serve their live HLS.

    POST   /v1/channels?pace=realtime|asap&max_slots=N   a channel definition (JSON or YAML)
    GET    /v1/channels                                  every channel's status
    GET    /v1/channels/{name}                           on air now, the next slots, lead time, owner node, takeovers
    DELETE /v1/channels/{name}                           stop it (a restart of the service leaves it off)
    GET    /v1/channels/{name}/index.m3u8                the live LL-HLS playlist; blocking reload with
                                                         ?_HLS_msn=M&_HLS_part=N (channels/hls_serving.py)
    GET    /v1/channels/{name}/{init,part,segment}       its init segment, parts and segments (immutable)

Every route works on every node that shares the store and the media folder: the channel's row is
in the store, its stream in MEDIA/channels/NAME/; the node holding the channel's lease runs it.

Over HTTP a slot's recipe is inline (a mapping, its actor image a `portrait:<sha256>` reference)
or `job:<id>`, the recipe of a job submitted before: a definition sent to the server never names
a server file.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Literal, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from ...channel.definition import ChannelError
from ...channel.hls.playlist import PLAYLIST_NAME
from ...errors import VortexError
from ...inputs import decode_text, json_compatible, parse_text
from ..admission import parse_channel
from ..api_models import CHANNEL_SCHEMA, Channel, ChannelList, errors, media, ok, text_body
from ..channels.hls_serving import media_response, playlist_response
from ..channels.host import ChannelConflict
from ..deps import ServiceState, channel_host, channel_or_404, error, get_state, read_limited, require_token
from ..security import RECIPE_MAX_BYTES

CHANNEL_MAX_BYTES = 16 * RECIPE_MAX_BYTES  # a list of inline recipes
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # channel/definition.py's: a folder name, never a path

router = APIRouter()


@router.post("/v1/channels", status_code=201, dependencies=[Depends(require_token)],
             responses={**ok(Channel, 201, "the channel, starting"), **errors(401, 409, 413, 422, 503)},
             openapi_extra=text_body("a channel definition, JSON or YAML", CHANNEL_SCHEMA))
async def start_channel(request: Request, pace: Literal["realtime", "asap"] = Query("realtime"),
                        max_slots: Optional[int] = Query(None, ge=1, le=1_000_000),
                        state: ServiceState = Depends(get_state)):
    host = channel_host(state)
    body = await read_limited(request, CHANNEL_MAX_BYTES)
    try:
        data = json_compatible(parse_text(decode_text(body, _body_failer), "config"), "config")  # stored as JSON
        definition = await asyncio.to_thread(parse_channel, data, state)
    except ChannelError as exc:
        return error(422, str(exc), field=exc.field)
    except VortexError as exc:  # the body is not UTF-8 text, JSON or YAML
        return error(422, f"the channel definition: {exc}", field=getattr(exc, "field", None))
    try:
        row = await asyncio.to_thread(host.start, data, definition, pace, max_slots)
    except ChannelConflict as exc:
        return error(409, str(exc), field="name")
    return JSONResponse(host.describe(row), status_code=201, headers={"Location": f"/v1/channels/{row.name}"})


def _body_failer(problem: str):
    raise ChannelError(None, "(body)", problem)


@router.get("/v1/channels", responses={**ok(ChannelList), **errors(503)})
async def list_channels(state: ServiceState = Depends(get_state)):
    host = channel_host(state)
    return {"channels": [host.describe(row) for row in await asyncio.to_thread(host.all)]}


@router.get("/v1/channels/{name}", responses={**ok(Channel), **errors(404, 422, 503)})
async def get_channel(name: str, state: ServiceState = Depends(get_state)):
    return channel_host(state).describe(channel_or_404(state, name))


@router.delete("/v1/channels/{name}", dependencies=[Depends(require_token)],
               responses={**ok(Channel, description="the channel, stopped"), **errors(401, 404, 422, 503)})
async def stop_channel(name: str, state: ServiceState = Depends(get_state)):
    channel_or_404(state, name)
    row = await asyncio.to_thread(channel_host(state).stop, name)  # here, or by its owner node
    return channel_host(state).describe(row)


def _stream_folder(state: ServiceState, name: str) -> Path:
    """The channel's folder in the media, without a store query: viewers poll the playlist every
    part and fetch every part, so serving them costs the store nothing. The name is a channel
    name (a folder name, never a path) and the folder exists once the channel started."""
    folder = channel_host(state).folder(name)
    if not _NAME.match(name) or not folder.is_dir():
        raise HTTPException(status_code=404, detail=f"no channel '{name}' (GET /v1/channels lists them)")
    return folder


@router.get("/v1/channels/{name}/" + PLAYLIST_NAME,
            responses={**media("application/vnd.apple.mpegurl", "the LL-HLS playlist"), **errors(400, 404, 422, 503)})
async def playlist(name: str, request: Request, state: ServiceState = Depends(get_state),
                   # Declared for the schema; hls_serving reads and checks them (400, as RFC 8216bis says).
                   _HLS_msn: Optional[str] = Query(None, description="blocking reload: wait for this media sequence number"),
                   _HLS_part: Optional[str] = Query(None, description="blocking reload: and this part of it (needs _HLS_msn)")):
    folder = _stream_folder(state, name)  # on any node: the folder is shared (--media)
    return await playlist_response(folder, request.query_params, f"channel '{name}' has published no segment yet; "
                                                                 "try again in a few seconds")


def _with_json(responses: dict) -> dict:
    """The segment route also answers a segment's provenance manifest as JSON (vortex.provenance.stream)."""
    responses[200]["content"]["application/json"] = {"schema": {"type": "object"}}
    return responses


@router.get("/v1/channels/{name}/{segment}",
            responses={**_with_json(media("video/mp4", "an init segment, part or segment (video/mp2t for .ts), or a "
                                                       "segment's signed manifest (SEG.m4s.prov.json)")),
                       **errors(404, 422, 503)})
async def channel_segment(name: str, segment: str, state: ServiceState = Depends(get_state)):
    folder = _stream_folder(state, name)
    # Only the writer's names (channel/publish.py); a listed file is never rewritten, so it may be cached.
    return await media_response(folder, segment, f"channel '{name}' has no segment or part {segment!r}")
