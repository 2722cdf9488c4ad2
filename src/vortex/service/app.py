"""The HTTP API of `vortex serve`: FastAPI routes over the job store, the worker and the event hub.

All JSON unless stated. The service's parts travel in one `ServiceState` on `app.state`, handed to
routes by dependency injection, so a test can build an app around any store and worker.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from starlette.datastructures import UploadFile  # what request.form() holds (fastapi.UploadFile subclasses it)
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import VortexConfig
from ..errors import RecipeError
from ..inputs import RecipeFileError, decode_text, open_image, parse_text
from ..recipe import Recipe
from .events import END, EventHub
from .metrics import CONTENT_TYPE, ServiceMetrics
from .security import (RECIPE_MAX_BYTES, UPLOAD_MAX_BYTES, bearer_ok, portrait_path, portrait_reference,
                       resolve_references)
from .store import STATES, TERMINAL, Job, JobStore
from .worker import Worker, job_dir

SSE_KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
MAX_LIST = 500


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

    @property
    def portraits(self) -> Path:
        return self.data / "portraits"


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


def require_token(request: Request, state: ServiceState = Depends(get_state)) -> None:
    if state.token is not None and not bearer_ok(request.headers.get("authorization"), state.token):
        raise HTTPException(status_code=401, detail="this server needs 'Authorization: Bearer <token>' to change things",
                            headers={"WWW-Authenticate": "Bearer"})


def _error(status: int, message: str, field: Optional[str] = None, **headers: str) -> JSONResponse:
    body: dict[str, Any] = {"error": {"message": message}}
    if field is not None:
        body["error"]["field"] = field
    return JSONResponse(body, status_code=status, headers=headers or None)


def job_json(job: Job, state: ServiceState) -> dict[str, Any]:
    base = f"/v1/slots/{job.id}"
    visual = job.recipe.get("visual_track", {})
    return {
        "id": job.id, "state": job.state, "phase": job.phase, "attempts": job.attempts,
        "created": job.created, "started": job.started, "finished": job.finished,
        "timings": job.timings, "verification": job.verification, "error": job.error, "seed": job.seed,
        "slot_id": job.recipe.get("slot_params", {}).get("slot_id"),
        "actor_image": portrait_reference(visual.get("actor_image"), state.portraits),
        "replica": _replica(job.replica),
        "node": job.lease_owner if job.state == "running" else None,  # host:pid holding the lease
        "proof": job.proof, "progress": state.hub.last_progress(job.id) if job.state == "running" else None,
        "links": {"self": base, "events": f"{base}/events", "video": f"{base}/video.mp4",
                  "result": f"{base}/result.json"},
    }


def _replica(text: Optional[str]) -> Optional[dict[str, Any]]:
    """The engine replica that ran the job ({"id", "host", "pid", ...}; id "local" for --engine local)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"id": text}


def _job_or_404(state: ServiceState, job_id: str) -> Job:
    job = state.store.get(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no job '{job_id}'")
    return job


async def _read_limited(request: Request, limit: int) -> bytes:
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


def _parse_recipe(body: bytes, state: ServiceState) -> tuple[Recipe, dict[str, Any]]:
    def fail(problem: str) -> None:
        raise RecipeFileError(None, problem)

    data = parse_text(decode_text(body, fail), "recipe")
    data = resolve_references(data, state.portraits)
    recipe = Recipe.from_dict(data, source=None)
    from ..engine.admission import admit

    admit(state.config, recipe)
    return recipe, data


def create_app(state: ServiceState) -> FastAPI:
    app = FastAPI(title="Vortex", version="1", summary="recipe → verified talking-head MP4, as a service")
    app.state.service = state

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), **(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        return _error(422, f"{err['msg']} (got {err.get('input')!r})", field=".".join(str(p) for p in err["loc"][1:]))

    @app.middleware("http")
    async def _count(request: Request, call_next):
        response = await call_next(request)
        route = request.scope.get("route")
        state.metrics.requests.labels(method=request.method, route=getattr(route, "path", "unmatched"),
                                      status=str(response.status_code)).inc()
        return response

    # ---- slots -------------------------------------------------------------------------------
    @app.post("/v1/slots", status_code=202, dependencies=[Depends(require_token)])
    async def submit(request: Request, idempotency_key: Optional[str] = Header(None, max_length=200),
                     state: ServiceState = Depends(get_state)):
        body = await _read_limited(request, RECIPE_MAX_BYTES)
        try:
            recipe, _ = _parse_recipe(body, state)
        except RecipeError as exc:
            return _error(422, str(exc), field=exc.field)
        seed = recipe.slot_params.seed
        if seed is None:  # fixed now, so a re-run after a crash gives the same proof
            seed = secrets.randbelow(2**63)
        stored = recipe.with_overrides(seed=seed).model_dump(mode="json")
        job, created = state.store.submit(stored, seed, idempotency_key)
        if created:
            state.worker.notify()
        return JSONResponse(job_json(job, state), status_code=202 if created else 200,
                            headers={"Location": f"/v1/slots/{job.id}"})

    @app.get("/v1/slots")
    async def list_slots(state_: Optional[str] = Query(None, alias="state"),
                         limit: int = Query(50, ge=1, le=MAX_LIST), state: ServiceState = Depends(get_state)):
        if state_ is not None and state_ not in STATES:
            return _error(422, f"state must be one of {', '.join(STATES)}, got {state_!r}", field="state")
        return {"slots": [job_json(j, state) for j in state.store.list(state_, limit)]}

    @app.get("/v1/slots/{job_id}")
    async def get_slot(job_id: str, state: ServiceState = Depends(get_state)):
        return job_json(_job_or_404(state, job_id), state)

    @app.delete("/v1/slots/{job_id}", dependencies=[Depends(require_token)])
    async def cancel_slot(job_id: str, state: ServiceState = Depends(get_state)):
        was = state.store.cancel(job_id)
        if was is None:
            raise HTTPException(status_code=404, detail=f"no job '{job_id}'")
        if was in TERMINAL:
            return _error(409, f"job '{job_id}' already {was}; only a queued or running job can be cancelled")
        if was == "queued":
            job = state.store.get(job_id)
            state.hub.publish(job_id, END, {"state": job.state, "attempts": job.attempts})
        else:
            state.worker.cancel_running(job_id)  # the worker records the outcome when the slot stops
        return JSONResponse(job_json(state.store.get(job_id), state), status_code=202)

    @app.get("/v1/slots/{job_id}/events")
    async def events(job_id: str, request: Request, last_event_id: Optional[str] = Header(None),
                     state: ServiceState = Depends(get_state)):
        _job_or_404(state, job_id)
        history, queue, ended = state.hub.subscribe(job_id)
        job = state.store.get(job_id)
        if not history and job.terminal:  # finished before this process started: say how it ended
            state.hub.publish(job_id, END, {"state": job.state, "attempts": job.attempts})
        after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
        return StreamingResponse(_sse(state, job_id, history, queue, after, request),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/v1/slots/{job_id}/video.mp4")
    async def video(job_id: str, state: ServiceState = Depends(get_state)):
        job = _job_or_404(state, job_id)
        path = job_dir(state.data, job_id) / "video.mp4"
        if job.state != "succeeded" or not path.is_file():
            raise HTTPException(status_code=404, detail=f"job '{job_id}' is {job.state}: no video")
        return FileResponse(path, media_type="video/mp4")  # Starlette answers Range with 206

    @app.get("/v1/slots/{job_id}/result.json")
    async def result_json(job_id: str, state: ServiceState = Depends(get_state)):
        job = _job_or_404(state, job_id)
        folder = job_dir(state.data, job_id)
        for name in ("video.json", "video.failed.json"):
            if job.terminal and (folder / name).is_file():
                return FileResponse(folder / name, media_type="application/json")
        raise HTTPException(status_code=404, detail=f"job '{job_id}' is {job.state}: no result yet")

    # ---- portraits ---------------------------------------------------------------------------
    @app.post("/v1/portraits", status_code=201, dependencies=[Depends(require_token)])
    async def upload_portrait(request: Request, state: ServiceState = Depends(get_state)):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > UPLOAD_MAX_BYTES + 64 * 1024:
            raise HTTPException(status_code=413, detail=f"the upload is {declared} bytes; the limit is {UPLOAD_MAX_BYTES}")
        form = await request.form(max_files=1, max_fields=4)
        file = form.get("file")
        if not isinstance(file, UploadFile):
            return _error(422, "send the image as a multipart form field named 'file'", field="file")
        data = await file.read(UPLOAD_MAX_BYTES + 1)
        await form.close()
        if len(data) > UPLOAD_MAX_BYTES:
            raise HTTPException(status_code=413, detail=f"the image is over the limit of {UPLOAD_MAX_BYTES} bytes")
        return await asyncio.to_thread(_store_portrait, data, file.filename or "upload", state)

    # ---- health, metrics, web ----------------------------------------------------------------
    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(state: ServiceState = Depends(get_state)):
        s = state.worker.status
        body = {"ready": s.ready, "profile": state.config.profile, "engine_load_s": s.loaded_s,
                "load_error": s.load_error, "dead": s.dead}
        return JSONResponse(body, status_code=200 if s.ready else 503)

    @app.get("/metrics")
    async def metrics(state: ServiceState = Depends(get_state)):
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    from .channel_api import router as channel_router  # it imports this module's helpers

    app.include_router(channel_router)
    _include_web(app)
    return app


def _store_portrait(data: bytes, filename: str, state: ServiceState) -> JSONResponse:
    """Check the bytes with the CLI's image gate, then keep them as PNG under their content hash."""
    state.portraits.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=state.portraits, prefix=".upload-", delete=False) as tmp:
        tmp.write(data)
    tmp_path = Path(tmp.name)
    try:
        try:
            im = open_image(tmp_path, "file", ref=filename)
        except RecipeError as exc:
            return _error(422, str(exc), field="file")
        digest = hashlib.sha256(data).hexdigest()
        final = portrait_path(state.portraits, digest)
        if not final.exists():
            staged = tmp_path.with_suffix(".png")
            im.convert("RGB").save(staged, format="PNG")
            staged.replace(final)  # atomic: a recipe never sees half a portrait
        return JSONResponse({"ref": f"portrait:{digest}", "sha256": digest, "width": im.width, "height": im.height,
                             "format": im.format}, status_code=201)
    finally:
        tmp_path.unlink(missing_ok=True)


async def _sse(state: ServiceState, job_id: str, history: list, queue: asyncio.Queue, after: int, request: Request):
    try:
        for ev in history:
            if ev.id > after:
                yield _frame(ev)
            if ev.kind == END:
                return
        while True:
            try:
                ev = await asyncio.wait_for(queue.get(), timeout=SSE_KEEPALIVE_S)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    return
                yield b": keepalive\n\n"
                continue
            if ev.id > after:
                yield _frame(ev)
            if ev.kind == END:
                return
    finally:
        state.hub.unsubscribe(job_id, queue)


def _frame(ev) -> bytes:
    return f"id: {ev.id}\nevent: {ev.kind}\ndata: {json.dumps(ev.data, separators=(',', ':'))}\n\n".encode()


def _include_web(app: FastAPI) -> None:
    """The web view's pages, when that package is present (it is built separately)."""
    try:
        if importlib.util.find_spec("vortex.service.web.routes") is None:
            return
    except ModuleNotFoundError:  # no vortex.service.web package at all
        return
    from .web.routes import router

    app.include_router(router)
