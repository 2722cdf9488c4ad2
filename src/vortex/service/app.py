"""`vortex serve`'s one wiring point: the application state (store, media, worker, channel host),
the FastAPI app built from the per-resource routers (routers/) over it, and the server's start-up
and shutdown. service/cli.py only parses the flags into `ServeSettings`.

All JSON unless stated. Every error is {"error": {"message", "field"?}}: HTTP errors, bad
parameters (422 naming the field) and the routes' own refusals alike.

Start-up: the data folder locked (one `vortex serve` per folder), the store opened (a shared
PostgreSQL `--db`, else this node's SQLite file) and its jobs recovered, the media folder checked
against the store, then the app; the worker and the channels start in the app's lifespan.
Shutdown (SIGTERM): the worker stops taking jobs at once, the channels stop, then the running slot
gets `grace_s` to finish before it goes back to the queue.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import input_errors
from ..config import VortexConfig
from ..errors import VortexError
from .admission import parse_channel
from .channels.host import ChannelHost
from .deps import ServiceState, error
from .events import EventHub
from .media import open_media
from .metrics import ServiceMetrics
from .routers import channels, health, live, portraits, program, slots, verify, web
from .security import ServeSetupError
from .store.channels import ChannelLeases
from .store.jobs import open_store
from .worker import Worker

# In matching order: /v1/... first, the web pages (/, /jobs/{id}, /channels/{name}, /static/...) last.
ROUTERS = (slots.router, portraits.router, health.router, channels.router, live.router, program.router, verify.router,
           web.router)


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


@dataclass(frozen=True)
class ServeSettings:
    """The flags of `vortex serve` (service/cli.py), checked."""

    host: str
    port: int
    data: Path  # this node's folder (resolved)
    media: Optional[Path]  # the shared media folder; None: `data`
    db: Optional[str]  # a postgresql://… URL; None: SQLite in `data`
    engine: str  # local | ray
    replicas: int
    ray_address: Optional[str]
    advertise_url: str
    channel_lease_s: float
    channel_renew_s: float
    grace_s: float


def serve(cfg: VortexConfig, settings: ServeSettings, token: Optional[str]) -> int:
    """Start the node, serve until SIGTERM, shut it down. Exit status as service/cli.py says."""
    import uvicorn

    from ..engine.process import cap_malloc_arenas

    err = sys.stderr
    cap_malloc_arenas()  # before uvicorn, the worker or the engine start a thread
    from .memtrace import start_from_env

    start_from_env()  # debug only: VORTEX_TRACEMALLOC=PATH (service/memtrace.py)
    data = settings.data
    data.mkdir(parents=True, exist_ok=True)
    lock = _lock_data(data)
    if lock is None:
        print(f"vortex: error: --data {data}: another `vortex serve` is using this folder "
              "(two workers on one job store would run jobs twice); stop it or pick another --data", file=err)
        return 2
    try:  # a shared PostgreSQL store (--db), else this node's own SQLite file
        store = open_store(settings.db) if settings.db else open_store(data / "jobs.sqlite3")
    except (VortexError, ValueError, RuntimeError, OSError) as exc:  # a bad URL, no psycopg, unreachable, a newer schema
        print(f"vortex: error: job store: {exc}", file=err)
        lock.close()
        return 2
    try:  # refused before anything is written there: not writable, or another store's folder
        media = open_media(settings.media if settings.media is not None else data, store.identity(), store.where,
                           flag="--media" if settings.media is not None else "--data")
    except ServeSetupError as exc:
        print(f"vortex: error: {exc}", file=err)
        store.close()
        lock.close()
        return 2
    requeued = store.recover()
    hub = EventHub()
    metrics = ServiceMetrics(store.counts)
    fatal: list[str] = []
    server = None

    def on_fatal(message: str) -> None:  # from the worker thread
        fatal.append(message)
        if server is not None:
            server.should_exit = True  # uvicorn's main loop polls it every 0.1 s

    def make_engine():
        if settings.engine == "ray":  # the replicas load the engines; this process only routes
            from ..serving import start_local

            return start_local(cfg, replicas=settings.replicas, address=settings.ray_address)
        from ..engine.factory import build_engine

        return build_engine(cfg)

    worker = Worker(make_engine, store, hub, metrics, media, on_fatal, concurrency=settings.replicas)
    state = ServiceState(config=cfg, store=store, hub=hub, worker=worker, metrics=metrics, data=data, token=token,
                         media=media)
    leases = ChannelLeases(store, url=settings.advertise_url, lease_s=settings.channel_lease_s)
    state.channels = ChannelHost(media, cfg, lambda: worker.engine, worker.engine_loaded, metrics,
                                 parse=lambda raw: parse_channel(raw, state), leases=leases,
                                 renew_s=settings.channel_renew_s,
                                 ready=lambda: worker.status.ready and not worker.status.dead)

    @asynccontextmanager
    async def lifespan(app):
        worker.start()
        waiting = state.channels.resume_all()
        if waiting:
            print(f"  channels to resume once the engine is loaded (unless another node has them first): "
                  f"{', '.join(waiting)}", file=err, flush=True)
        yield
        worker.drain()
        await asyncio.to_thread(state.channels.stop_all, settings.grace_s)  # before the engine closes
        await asyncio.to_thread(worker.stop, settings.grace_s)

    app = create_app(state)
    app.router.lifespan_context = lifespan
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=max(1, int(settings.grace_s)), lifespan="on")
    server = _server_class()(config, on_signal=worker.drain)
    print(f"vortex serve · profile {cfg.profile}: {cfg.description}", file=err)
    if cfg.uses_stand_ins:
        print("  ! this profile runs STAND-INS for: " + ", ".join(cfg.stand_ins), file=err)
    print(f"  data {data} · {len(requeued)} job(s) back in the queue after a restart"
          f" · auth {'bearer token' if token else 'none (loopback only)'}", file=err)
    engine = "local (one engine in this process)" if settings.engine == "local" else \
        f"ray: {settings.replicas} replica(s) on {settings.ray_address or 'a local Ray instance'}"
    print(f"  engine {engine}", file=err)
    shared = f"shared with every node of {store.where}" if store.shared else "this node's"
    print(f"  media {media.root} ({shared}) · channels leased for {settings.channel_lease_s:g} s, renewed every "
          f"{settings.channel_renew_s:g} s · this node is {store.owner} at {settings.advertise_url}", file=err)
    print(f"  listening on http://{settings.host}:{settings.port} (loading the engine: /readyz says when)",
          file=err, flush=True)
    server.run()
    store.close()
    lock.close()
    if fatal:
        print(f"vortex: error: {fatal[0]}; restart the process", file=err)
        return 1
    print("vortex serve: stopped", file=err)
    return 0


def _lock_data(data: Path):
    """An exclusive lock on the data folder, held for the process's life; the kernel drops it when
    the process dies, even by kill -9, so a restart after a crash is never refused."""
    import fcntl

    f = open(data / "serve.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, telling the worker to stop taking jobs the moment a signal arrives
        (uvicorn itself first waits for open connections)."""

        def __init__(self, config, on_signal):
            super().__init__(config)
            self._on_signal = on_signal

        def handle_exit(self, sig, frame) -> None:
            self._on_signal()
            super().handle_exit(sig, frame)
            # uvicorn re-raises captured signals after its shutdown, so the process would die of
            # SIGTERM (status -15); a drained shutdown is a clean exit (status 0).
            self._captured_signals.clear()

    return Server
