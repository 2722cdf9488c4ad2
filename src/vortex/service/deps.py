"""What the routes of `vortex serve` depend on, and what every router shares.

The service's parts travel in one `ServiceState` on `app.state`, handed to routes by dependency
injection (`Depends(get_state)`), so a test can build an app around any store and worker; the
token check is a dependency too (`dependencies=[Depends(require_token)]` on every POST and DELETE).
Bodies are read by `read_limited` inside the route, not as a dependency: FastAPI solves every
dependency before it validates the query and headers, so a body dependency would answer 413
where the API answers 422 (or 503) first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from ..config import VortexConfig
from .events import EventHub
from .media import LocalMedia
from .metrics import ServiceMetrics
from .security import bearer_ok
from .store.jobs import JobStore
from .worker import Worker

if TYPE_CHECKING:
    from .channels.host import ChannelHost
    from .store.channels import ChannelRow


@dataclass
class ServiceState:
    config: VortexConfig
    store: JobStore
    hub: EventHub
    worker: Worker
    metrics: ServiceMetrics
    data: Path
    token: Optional[str] = None
    channels: Any = None  # a ChannelHost (channels.py); None: this server runs no channels
    media: Optional[LocalMedia] = None  # where media live (--media, shared by nodes); None: in `data`

    def __post_init__(self) -> None:
        if self.media is None:
            self.media = LocalMedia(self.data)

    @property
    def portraits(self) -> Path:
        return self.media.portraits


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


def require_token(request: Request, state: ServiceState = Depends(get_state)) -> None:
    if state.token is not None and not bearer_ok(request.headers.get("authorization"), state.token):
        raise HTTPException(status_code=401, detail="this server needs 'Authorization: Bearer <token>' to change things",
                            headers={"WWW-Authenticate": "Bearer"})


def error(status: int, message: str, field: Optional[str] = None, **headers: str) -> JSONResponse:
    """The API's one error shape: {"error": {"message", "field"?}}."""
    body: dict[str, Any] = {"error": {"message": message}}
    if field is not None:
        body["error"]["field"] = field
    return JSONResponse(body, status_code=status, headers=headers or None)


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past `limit` bytes, whether or not it says its length."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status_code=413, detail=f"the body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status_code=413, detail=f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def channel_host(state: ServiceState) -> ChannelHost:
    """The channel host; 503 on a server that runs no channels."""
    if state.channels is None:
        raise HTTPException(status_code=503, detail="this server runs no channels")
    return state.channels


def channel_or_404(state: ServiceState, name: str) -> ChannelRow:
    """The channel's row in the store, whichever node runs it."""
    row = channel_host(state).get(name)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no channel '{name}' (GET /v1/channels lists them)")
    return row
