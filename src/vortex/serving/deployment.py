"""The Ray Serve deployment: one replica holds one `VortexPipeline` (one GPU on a GPU profile).

`max_ongoing_requests` is the profile's `pipeline.max_in_flight` (`build_app` sets it): a replica
streams several slots at once and serves them by priority (live, channel, job: a channel slot that
lands on a replica busy with a job goes first, chunk by chunk), and frames of concurrent slots
share the animator's batches. Requests beyond that wait in Serve's router. Handlers are async (one
event loop per replica) and run the blocking `engine.run` in a thread, so the loop stays free for
health checks and for the cancellation of the slots in flight.

A replica whose engine is closed or dead (a CUDA fault) fails `check_health`; Serve then replaces
it with a fresh process. Until it does, such a replica refuses slots before accepting them, so the
caller sends them elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator, Optional

from ray import serve

from ..config import VortexConfig
from ..errors import EngineClosed, EngineDead
from .wire import decode_request, encode_result, replica_identity

log = logging.getLogger("vortex.serving")

_DONE = object()
_WORKDIR = re.compile(r"^vortex-replica-(\d+)-")  # the pid that owns the folder


def _fresh_workdir() -> Path:
    """This replica's scratch folder (its slots' MP4s before they travel); the folders of replicas
    that died without cleaning up (kill -9, the OOM killer) go first."""
    root = Path(tempfile.gettempdir())
    for old in root.glob("vortex-replica-*"):
        m = _WORKDIR.match(old.name)
        if m and not _alive(int(m.group(1))):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"vortex-replica-{os.getpid()}-"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def resolve_config(profile: Optional[str] = None, config: Optional[dict[str, Any]] = None,
                   config_path: Optional[str] = None, sign: Optional[str] = None) -> VortexConfig:
    """A shipped profile by name, a config dict (`VortexConfig.model_dump()`), or a config file; with
    `sign` (a folder, as `--sign DIR`), that identity, checked now (a SigningKeyError names `sign`)."""
    cfg = VortexConfig.model_validate(config) if config is not None else VortexConfig.load(profile, config_path)
    if sign is None:
        return cfg
    from ..provenance.signing import identity_for, with_signing_flags

    cfg = with_signing_flags(cfg, sign=Path(sign))
    identity_for(cfg, where=f"the application's args.sign '{sign}'")  # an error names the path, never the key
    return cfg


def actor_options(cfg: VortexConfig, env: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """One GPU per replica on a GPU profile (Ray sets CUDA_VISIBLE_DEVICES, so `cuda:0` is that
    GPU); one logical CPU on a CPU profile, so N replicas need N CPUs from Ray."""
    options: dict[str, Any] = {"num_cpus": 1}
    if cfg.device.is_cuda:
        options["num_gpus"] = 1
    # glibc reads MALLOC_ARENA_MAX at its first malloc, before any thread: the engine's own
    # mallopt (engine/process.py) comes after Ray's core worker has made its threads and their
    # arenas, and the slot threads then spread over those. Measured (bench_ray_channels, 1 replica,
    # 1 channel, 2.5 min, a loaded 2-core machine): RssAnon 703 -> 1218 MiB without it, 692 -> 1119
    # with it (+5391 -> +2222 MB/h, warm-up included); the same wire path in one process stays at
    # ~1030 MiB after 12 slots (--wire 10: heap flat, +2.5 MiB a slot). Not yet shown flat.
    options["runtime_env"] = {"env_vars": {"MALLOC_ARENA_MAX": "2", **dict(env or {})}}
    return options


@serve.deployment(
    name="VortexReplica",
    max_ongoing_requests=1,  # build_app sets the profile's pipeline.max_in_flight
    health_check_period_s=5.0,  # the check reads two flags: cheap
    health_check_timeout_s=30.0,
    graceful_shutdown_timeout_s=60.0,  # a redeploy or scale-down lets the running slot finish first
)
class VortexReplica:
    def __init__(self, profile: Optional[str] = None, config: Optional[dict[str, Any]] = None,
                 config_path: Optional[str] = None, sign: Optional[str] = None):
        from ..engine.factory import build_engine

        cfg = resolve_config(profile, config, config_path, sign)
        self.engine = build_engine(cfg)  # this process owns its engine: malloc arenas, TF32
        self.identity = replica_identity(serve.get_replica_context().replica_id.unique_id)
        self.identity.update(profile=cfg.profile, generation_timeout_sec=cfg.pipeline.generation_timeout_sec)
        self.running: list[str] = []  # the request ids in flight
        self.served = 0
        self.cancelled = 0
        self._workdir = _fresh_workdir()
        log.info("replica ready", extra={"event": "replica_ready", **self.identity})

    # ---- the slot -------------------------------------------------------------------------------
    async def slot(self, payload: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
        """Streams ("replica", identity), then ("event", SlotEvent)..., then ("result", dict)
        (`wire.encode_result`). Cancelling the stream cancels the slot in the engine."""
        self._refuse_if_unhealthy()  # before the hello: the caller counts a refusal as "not accepted"
        yield ("replica", dict(self.identity))
        workdir = Path(tempfile.mkdtemp(prefix="slot-", dir=self._workdir))
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        job: Optional[asyncio.Future] = None
        request = None
        try:
            request = decode_request(payload, workdir)
            self.running.append(request.id)
            job = loop.run_in_executor(None, self.engine.run, request,
                                       lambda ev: loop.call_soon_threadsafe(queue.put_nowait, ev))
            # Queued after every event: the engine emits them all before run() returns.
            job.add_done_callback(lambda _: queue.put_nowait(_DONE))
            while (item := await queue.get()) is not _DONE:
                yield ("event", item)
            result = job.result()
            if result.error_kind == "cancelled" and self.engine.closed:  # closed under it, not the caller's cancel
                raise EngineClosed(f"replica {self.identity['id']}: the engine closed during the slot")
            self.served += 1
            yield ("result", encode_result(result, request.output, dict(self.identity)))
        except asyncio.CancelledError:  # the caller cancelled the response, or went away
            self.cancelled += 1
            if job is not None:
                await self._stop(request.id, job)
            raise
        finally:
            if request is not None and request.id in self.running:
                self.running.remove(request.id)
            shutil.rmtree(workdir, ignore_errors=True)

    async def _stop(self, request_id: str, job: asyncio.Future) -> None:
        """Cancel the slot and wait until the engine has let go of it (the replica's next slot must
        not queue behind it). cancel() finds a slot only once the engine has registered it: ask
        again until the run ends."""
        while not job.done():
            self.engine.cancel(request_id)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait({job}, timeout=0.2)

    # ---- control --------------------------------------------------------------------------------
    async def identify(self) -> dict[str, Any]:
        """Who this replica is and what it is doing (the tests, and an operator's `replicas()`)."""
        return {**self.identity, "running": list(self.running), "served": self.served, "cancelled": self.cancelled,
                "closed": self.engine.closed, "dead": self.engine.dead}

    async def close_engine(self) -> None:
        """Close this replica's engine (a drain, or a test): its health check fails from now on and
        Serve replaces the replica."""
        await asyncio.get_running_loop().run_in_executor(None, self.engine.close)

    async def check_health(self) -> None:
        """Serve calls this every health_check_period_s; raising marks the replica unhealthy."""
        self._refuse_if_unhealthy()

    def _refuse_if_unhealthy(self) -> None:
        if self.engine.dead is not None:
            raise EngineDead(f"replica {self.identity['id']}: the engine is dead ({self.engine.dead})")
        if self.engine.closed:
            raise EngineClosed(f"replica {self.identity['id']}: the engine is closed")

    def __del__(self) -> None:  # Serve calls it when it stops the replica
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()
        workdir = getattr(self, "_workdir", None)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
