"""The HTTP API of `vortex serve`: the FastAPI app, built from the per-resource routers (routers/)
over the job store, the worker, the event hub and the channels (deps.py: `ServiceState`).

All JSON unless stated. Every error is {"error": {"message", "field"?}}: HTTP errors, bad
parameters (422 naming the field) and the routes' own refusals alike.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import input_errors
from .deps import ServiceState, error
from .routers import channels, health, live, portraits, slots, web

__all__ = ["ServiceState", "create_app"]

# In matching order: /v1/... first, the web pages (/, /jobs/{id}, /channels/{name}, /static/...) last.
ROUTERS = (slots.router, portraits.router, health.router, channels.router, live.router, web.router)


def create_app(state: ServiceState) -> FastAPI:
    app = FastAPI(title="Vortex", version="1", summary="recipe → verified talking-head MP4, as a service")
    app.state.service = state
    input_errors.install(app)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), **(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        return error(422, f"{err['msg']} (got {err.get('input')!r})", field=".".join(str(p) for p in err["loc"][1:]))

    @app.middleware("http")
    async def _count(request: Request, call_next):
        response = await call_next(request)
        route = request.scope.get("route")
        state.metrics.requests.labels(method=request.method, route=getattr(route, "path", "unmatched"),
                                      status=str(response.status_code)).inc()
        return response

    for router in ROUTERS:
        app.include_router(router)
    return app
