"""Forwarding a request to the node that runs a channel, for routes that only its runner can serve
(a live insert, `POST /v1/channels/{name}/live`, is the first): any node takes the request and
hands it to the owner named by the channel's lease (`owner_url`, each node's --advertise-url).

    answer = await forward_to_owner(state, row, request, body)
    if answer is not None:
        return answer          # the owner's answer (or 502/503 saying why there is none)
    ...                        # this node holds the lease: serve it here

A forwarded request carries `X-Vortex-Forwarded-By: <node>`; a node that gets one for a channel it
does not run answers 503 instead of forwarding again (the lease moved meanwhile), so a request
never loops between nodes. Standard library only (urllib in a thread): the service needs no HTTP
client package.
"""

from __future__ import annotations

import asyncio
import math
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Callable, Optional

from fastapi import Request
from fastapi.responses import Response

from ..deps import error

if TYPE_CHECKING:
    from ..deps import ServiceState
    from ..store.channels import ChannelRow

FORWARDED_BY = "X-Vortex-Forwarded-By"
ANSWERED_BY = "X-Vortex-Node"
KEPT_HEADERS = ("authorization", "content-type", "accept", "idempotency-key")
FORWARD_TIMEOUT_S = 30.0

# (method, url, body, headers, timeout) -> (status, content type, body); raises OSError when unreachable
Send = Callable[[str, str, bytes, dict, float], tuple[int, Optional[str], bytes]]


def _send(method: str, url: str, body: bytes, headers: dict, timeout: float) -> tuple[int, Optional[str], bytes]:
    req = urllib.request.Request(url, data=body if method not in ("GET", "HEAD") else None, method=method,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - the URL is a node's, from the store
            return r.status, r.headers.get("content-type"), r.read()
    except urllib.error.HTTPError as exc:  # 4xx/5xx: the owner's own answer, passed on as it is
        return exc.code, exc.headers.get("content-type"), exc.read()


async def forward_to_owner(state: ServiceState, row: ChannelRow, request: Request, body: bytes = b"",
                           send: Send = _send, timeout: float = FORWARD_TIMEOUT_S) -> Optional[Response]:
    """None when this node runs the channel (serve the request here); else the owner's answer, or
    503 (no node holds the channel now: its node died and the next takes it over within the
    lease) or 502 (the owner did not answer)."""
    me = state.channels.leases.owner
    if row.leased and row.owner == me:
        return None
    if request.headers.get(FORWARDED_BY) is not None:
        return error(503, f"channel '{row.name}' was forwarded here by {request.headers[FORWARDED_BY]}, but this node "
                          f"({me}) does not run it (its lease moved meanwhile): send the request again",
                     **{"Retry-After": "1"})
    if not row.leased or not row.owner_url:
        wait = math.ceil((row.lease_expires or row.now) - row.now) + 1 if row.owner else 1
        return error(503, f"no node runs channel '{row.name}' right now (its node stopped renewing the lease; another "
                          f"takes it over within {row.lease_s or 'the lease'} s): send the request again",
                     **{"Retry-After": str(max(1, wait))})
    url = row.owner_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    headers = {k: v for k, v in request.headers.items() if k.lower() in KEPT_HEADERS}
    headers[FORWARDED_BY] = me
    try:
        status, ctype, content = await asyncio.to_thread(send, request.method, url, body, headers, timeout)
    except OSError as exc:  # refused, unreachable, timed out
        return error(502, f"channel '{row.name}' runs on node {row.owner} at {row.owner_url}, which did not answer "
                          f"({exc}); if it died, another node takes the channel over within its lease")
    return Response(content, status_code=status, media_type=ctype, headers={ANSWERED_BY: row.owner or ""})

