"""Liveness, readiness and metrics, for load balancers and Prometheus.

    GET /healthz    200 while the process answers
    GET /readyz     200 once the engine is loaded, 503 before (or when it failed: load_error, dead)
    GET /metrics    Prometheus text format
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from ..api_models import Health, Ready, media, ok
from ..deps import ServiceState, get_state
from ..metrics import CONTENT_TYPE

router = APIRouter()


@router.get("/healthz", responses=ok(Health))
async def healthz():
    return {"status": "ok"}


@router.get("/readyz", responses={**ok(Ready), 503: {"model": Ready, "description": "not ready (yet)"}})
async def readyz(state: ServiceState = Depends(get_state)):
    s = state.worker.status
    body = {"ready": s.ready, "profile": state.config.profile, "engine_load_s": s.loaded_s,
            "load_error": s.load_error, "dead": s.dead}
    return JSONResponse(body, status_code=200 if s.ready else 503)


@router.get("/metrics", responses=media("text/plain", "Prometheus text format"))
async def metrics(state: ServiceState = Depends(get_state)):
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
