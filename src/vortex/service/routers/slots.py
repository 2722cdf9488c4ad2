"""The slot jobs: submit a recipe, list, show and cancel jobs, follow one live (SSE), fetch its MP4
and result.

    POST   /v1/slots                      a recipe (JSON or YAML); Idempotency-Key returns the same job
    GET    /v1/slots?state=&limit=        the newest jobs
    GET    /v1/slots/{id}                 one job
    DELETE /v1/slots/{id}                 cancel a queued or running job
    GET    /v1/slots/{id}/events          its phases and progress as server-sent events
    GET    /v1/slots/{id}/video.mp4       the MP4 of a succeeded job (Range answered with 206)
    GET    /v1/slots/{id}/captions.vtt    its captions (WebVTT; the MP4 carries them as mov_text too)
    GET    /v1/slots/{id}/result.json     the result of a finished job
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any, Optional

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from ...errors import RecipeError
from ...inputs import RecipeFileError, decode_text, parse_text
from ...recipe import Recipe
from ..admission import admitted_recipe
from ..deps import ServiceState, error, get_state, read_limited, require_token
from ..api_models import RECIPE_SCHEMA, RESULT_SCHEMA, SSE_EVENT, Slot, SlotList, errors, media, ok, text_body
from ..events import END
from ..security import RECIPE_MAX_BYTES, portrait_reference
from ..store.jobs import STATES, TERMINAL, Job

SSE_KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
MAX_LIST = 500

router = APIRouter()


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
                  "captions": f"{base}/captions.vtt", "result": f"{base}/result.json"},
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


def parse_recipe(body: bytes, state: ServiceState) -> Recipe:
    """A recipe from a client's body (JSON or YAML, bare or wrapped). RecipeError names the field."""
    def fail(problem: str) -> None:
        raise RecipeFileError(None, problem)

    return admitted_recipe(parse_text(decode_text(body, fail), "recipe"), state)


@router.post("/v1/slots", status_code=202, dependencies=[Depends(require_token)],
             responses={**ok(Slot, 202, "the job, queued"), **ok(Slot, 200, "the job an Idempotency-Key named before"),
                        **errors(401, 413, 422)},
             openapi_extra=text_body("a recipe, JSON or YAML", RECIPE_SCHEMA))
async def submit(request: Request, idempotency_key: Optional[str] = Header(None, max_length=200),
                 state: ServiceState = Depends(get_state)):
    body = await read_limited(request, RECIPE_MAX_BYTES)
    try:
        recipe = parse_recipe(body, state)
    except RecipeError as exc:
        return error(422, str(exc), field=exc.field)
    seed = recipe.slot_params.seed
    if seed is None:  # fixed now, so a re-run after a crash gives the same proof
        seed = secrets.randbelow(2**63)
    stored = recipe.with_overrides(seed=seed).model_dump(mode="json")
    job, created = state.store.submit(stored, seed, idempotency_key)
    if created:
        state.worker.notify()
    return JSONResponse(job_json(job, state), status_code=202 if created else 200,
                        headers={"Location": f"/v1/slots/{job.id}"})


@router.get("/v1/slots", responses={**ok(SlotList), **errors(422)})
async def list_slots(state_: Optional[str] = Query(None, alias="state"),
                     limit: int = Query(50, ge=1, le=MAX_LIST), state: ServiceState = Depends(get_state)):
    if state_ is not None and state_ not in STATES:
        return error(422, f"state must be one of {', '.join(STATES)}, got {state_!r}", field="state")
    return {"slots": [job_json(j, state) for j in state.store.list(state_, limit)]}


@router.get("/v1/slots/{job_id}", responses={**ok(Slot), **errors(404, 422)})
async def get_slot(job_id: str, state: ServiceState = Depends(get_state)):
    return job_json(_job_or_404(state, job_id), state)


@router.delete("/v1/slots/{job_id}", status_code=202, dependencies=[Depends(require_token)],
               responses={**ok(Slot, 202, "the job, cancelled or stopping"), **errors(401, 404, 409, 422)})
async def cancel_slot(job_id: str, state: ServiceState = Depends(get_state)):
    was = state.store.cancel(job_id)
    if was is None:
        raise HTTPException(status_code=404, detail=f"no job '{job_id}'")
    if was in TERMINAL:
        return error(409, f"job '{job_id}' already {was}; only a queued or running job can be cancelled")
    if was == "queued":
        job = state.store.get(job_id)
        state.hub.publish(job_id, END, {"state": job.state, "attempts": job.attempts})
    else:
        state.worker.cancel_running(job_id)  # the worker records the outcome when the slot stops
    return JSONResponse(job_json(state.store.get(job_id), state), status_code=202)


@router.get("/v1/slots/{job_id}/events", responses={**media("text/event-stream", "its events, to the end", SSE_EVENT),
                                                   **errors(404, 422)})
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


@router.get("/v1/slots/{job_id}/video.mp4", responses={**media("video/mp4", "the MP4"), **errors(404, 422)})
async def video(job_id: str, state: ServiceState = Depends(get_state)):
    job = _job_or_404(state, job_id)
    path = state.media.job_file(job_id, job.attempts, "video.mp4")  # on any node when --media is shared
    if job.state != "succeeded" or path is None:
        raise HTTPException(status_code=404, detail=f"job '{job_id}' is {job.state}: no video")
    return FileResponse(path, media_type="video/mp4")  # Starlette answers Range with 206


@router.get("/v1/slots/{job_id}/captions.vtt", responses={**media("text/vtt", "the captions"), **errors(404, 422)})
async def captions(job_id: str, state: ServiceState = Depends(get_state)):
    job = _job_or_404(state, job_id)
    path = state.media.job_file(job_id, job.attempts, "video.vtt")
    if job.state != "succeeded" or path is None:
        raise HTTPException(status_code=404, detail=f"job '{job_id}' is {job.state}: no captions")
    return FileResponse(path, media_type="text/vtt")


@router.get("/v1/slots/{job_id}/result.json",
            responses={**media("application/json", "the result sidecar", RESULT_SCHEMA), **errors(404, 422)})
async def result_json(job_id: str, state: ServiceState = Depends(get_state)):
    job = _job_or_404(state, job_id)
    for name in ("video.json", "video.failed.json"):
        path = state.media.job_file(job_id, job.attempts, name) if job.terminal else None
        if path is not None:
            return FileResponse(path, media_type="application/json")
    raise HTTPException(status_code=404, detail=f"job '{job_id}' is {job.state}: no result yet")


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
