"""The threads that drive the engine: one loads it, then `concurrency` loops (1 for the local
engine, which runs one slot at a time; one per replica for `--engine ray`) claim jobs in
submission order and run them until told to stop.

Stopping (SIGTERM): `drain()` stops taking jobs at once; `stop(grace_s)` lets the running slot
finish until the grace period (counted from the drain) ends, else cancels it and puts it back in
the queue, then closes the engine. A CUDA fault (`EngineDead`) re-queues the job and asks the
process to exit, so its supervisor starts a fresh one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..contracts.protocol import Engine
from ..contracts.requests import Priority, SlotEvent, SlotRequest
from ..errors import EngineClosed, EngineDead
from ..recipe import Recipe
from .events import END, EventHub
from .media import LocalMedia
from .metrics import ServiceMetrics
from .store.jobs import DEFAULT_LEASE_S, Job, JobStore
from .store.lease import LeaseKeeper

log = logging.getLogger("vortex.service")


@dataclass
class WorkerStatus:
    ready: bool = False  # the engine is loaded and the loop runs
    load_error: Optional[str] = None
    dead: Optional[str] = None  # EngineDead's message: the process must restart
    running: set[str] = field(default_factory=set)  # the job ids in flight
    stopped: bool = False
    loaded_s: Optional[float] = None
    extra: dict[str, Any] = field(default_factory=dict)


class Worker:
    def __init__(self, make_engine: Callable[[], Engine], store: JobStore, hub: EventHub, metrics: ServiceMetrics,
                 media: LocalMedia | Path, on_fatal: Callable[[str], None], concurrency: int = 1):
        self._make_engine = make_engine
        self.store, self.hub, self.metrics = store, hub, metrics
        self.media = media if isinstance(media, LocalMedia) else LocalMedia(Path(media))  # a Path: media in it
        self._on_fatal = on_fatal
        self.status = WorkerStatus()
        self._engine: Optional[Engine] = None
        self._wake = threading.Condition()
        self._draining = False
        self._drain_at: Optional[float] = None
        self._requeue_running = False  # set when shutdown (not a client) cancels the running slot
        # Job ids to stop: engine.cancel() finds a slot only once the engine has registered it, so
        # each event of a wanted job asks again (a DELETE right after the claim would be lost).
        self._cancel_wanted: set[str] = set()
        self._lost: set[str] = set()  # jobs whose lease another node took over: not recorded here
        self.engine_loaded = threading.Event()  # channels (channels.py) start their first slot after it
        self.concurrency = concurrency
        self._thread = threading.Thread(target=self._main, name="vortex-worker", daemon=True)
        self._loops: list[threading.Thread] = []  # the loops beyond the first (concurrency > 1)

    @property
    def engine(self) -> Optional[Engine]:
        """The loaded engine, shared with the service's channels (it runs one slot at a time)."""
        return self._engine

    # ---- control, from the API's threads ---------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """A job was queued."""
        with self._wake:
            self._wake.notify_all()

    def cancel_running(self, job_id: str) -> bool:
        """A client's DELETE of the running job: the engine stops it at its next step."""
        engine = self._engine
        if engine is None or job_id not in self.status.running:
            return False
        self._cancel_wanted.add(job_id)
        return engine.cancel(job_id)

    def drain(self) -> None:
        """Stop taking jobs (SIGTERM); the running one goes on."""
        with self._wake:
            if not self._draining:
                self._draining, self._drain_at = True, time.monotonic()
            self._wake.notify_all()

    def stop(self, grace_s: float) -> None:
        """Wait for the running slots until `grace_s` after the drain, else cancel and re-queue them."""
        self.drain()
        remaining = max(0.0, self._drain_at + grace_s - time.monotonic())
        self._thread.join(remaining)
        if self._thread.is_alive():
            running = sorted(self.status.running)
            log.warning("grace period over: cancelling the running slots", extra={"event": "grace_over", "job": running})
            self._requeue_running = True
            for job_id in running:
                if self._engine is not None:
                    self._cancel_wanted.add(job_id)
                    self._engine.cancel(job_id)
            self._thread.join(60)  # a cancelled slot stops at its next step: seconds on a CPU
        if self._engine is not None:
            self._engine.close()

    # ---- the thread ------------------------------------------------------------------------
    def _main(self) -> None:
        t0 = time.monotonic()
        try:
            self._engine = self._make_engine()
        except Exception as exc:  # a bad profile is caught before; this is a model that failed to load
            log.exception("engine failed to load")
            self.status.load_error = f"{type(exc).__name__}: {exc}"
            self._on_fatal(f"the engine failed to load: {self.status.load_error}")
            return
        self.status.loaded_s = time.monotonic() - t0
        self.status.ready = True
        self.engine_loaded.set()
        self.metrics.engine_ready.set(1)
        self._loops = [threading.Thread(target=self._loop, name=f"vortex-worker-{i}", daemon=True)
                       for i in range(1, self.concurrency)]
        for loop in self._loops:
            loop.start()
        if getattr(self.store, "shared", False):
            threading.Thread(target=self._reclaim, name="vortex-reclaim", daemon=True).start()
        try:
            self._loop()
            for loop in self._loops:
                loop.join()
        finally:
            self.status.ready = False
            self.status.stopped = True
            self.metrics.engine_ready.set(0)

    def _reclaim(self) -> None:
        """A shared store (PostgreSQL): hand back jobs whose node died (its lease ran out) every half
        lease, so that some node's loop claims them."""
        while not self.status.stopped:
            try:
                if self.store.reclaim_expired():
                    self.notify()
            except Exception:  # the store unreachable for a while: try again next round
                log.warning("reclaiming expired leases failed", exc_info=True, extra={"event": "reclaim_failed"})
            time.sleep(DEFAULT_LEASE_S / 2)

    def _loop(self) -> None:
        while True:
            claimed = self._next_job()
            if claimed is None:
                return
            self._run(*claimed)
            # A CUDA fault fails its slot (recorded as the engine said, so a job that faults the
            # device cannot loop) and leaves the engine dead: exit now, for a fresh process.
            dead = self._engine.dead
            if dead and not self.status.dead:
                self.status.dead = dead
                self._on_fatal(f"the engine is dead: {dead}")
            if self.status.dead:
                self.drain()  # the other loops stop too
                return

    def _next_job(self) -> Optional[tuple[Job, float]]:
        """The next job claimed, and the monotonic time before its claim was sent (its lease's start)."""
        with self._wake:
            while True:
                if self._draining or self.status.dead:
                    return None
                sent = time.monotonic()
                job = self.store.claim_next()
                if job is not None:
                    return job, sent
                self._wake.wait(timeout=5.0)  # notify() wakes it at once; the timeout is a safety net

    def _run(self, job: Job, claimed: float) -> None:
        self.status.running.add(job.id)
        # A DELETE between the claim and the line above saw no running job: honour it here (the API
        # marks the store before it reads `status.running`, this thread the other way round).
        if self.store.get(job.id).cancel_requested:
            self._cancel_wanted.add(job.id)
        self.metrics.queue_wait_seconds.observe(max(0.0, (job.started or time.time()) - job.created))
        self.hub.publish(job.id, "state", {"state": "running", "attempts": job.attempts})
        out = self.media.job_dir(job.id, job.attempts)  # this attempt's own folder: no other node writes it
        if job.attempts > 1:  # what earlier attempts left (a staging MP4, a late node's file) is not this one's
            for old in out.parent.iterdir() if out.parent.is_dir() else ():
                if old.is_dir() and old != out:
                    shutil.rmtree(old, ignore_errors=True)
                elif old.is_file():  # a job folder from before attempts had folders
                    old.unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        try:
            recipe = Recipe.from_dict(job.recipe, source=f"job {job.id}")
            request = SlotRequest(recipe=recipe, id=job.id, seed=job.seed, output=out / "video.mp4", priority=Priority.JOB)
            with self._lease(job, claimed):
                result = self._engine.run(request, on_event=lambda ev: self._on_event(job.id, ev))
        except EngineDead as exc:
            self.status.dead = str(exc)
            self.store.requeue(job.id)
            self._end(job.id)
            self._on_fatal(f"the engine is dead: {exc}")
            return
        except EngineClosed:
            self.store.requeue(job.id)
            self._end(job.id)
            return
        except Exception as exc:  # the recipe no longer validates (a portrait deleted): the job fails
            log.exception("job failed before the engine ran it", extra={"event": "job_error", "job": job.id})
            self.store.finish(job.id, "failed", error={"kind": "input", "phase": "validate",
                                                       "message": f"{type(exc).__name__}: {exc}"})
            self._end(job.id)
            return
        finally:
            self.status.running.discard(job.id)
            self._cancel_wanted.discard(job.id)
        self._record(job, result, time.monotonic() - t0)

    def _lease(self, job: Job, claimed: float):
        """A shared store: the job's lease renewed while it runs; lost (another node reclaimed it
        after this one stalled), the slot is stopped and not recorded here."""
        if not getattr(self.store, "shared", False):
            return contextlib.nullcontext()

        def lost() -> None:
            log.warning("lease lost: another node has the job", extra={"event": "lease_lost", "job": job.id})
            self._lost.add(job.id)
            self._engine.cancel(job.id)

        return LeaseKeeper(self.store, job.id, lease_s=DEFAULT_LEASE_S, on_lost=lost, sent=claimed)

    def _record(self, job: Job, result: Any, seconds: float) -> None:
        if job.id in self._lost:
            self._lost.discard(job.id)
            return
        meta = result.metadata()
        cancelled = result.error_kind == "cancelled"
        if cancelled and self._requeue_running and not self.store.get(job.id).cancel_requested:
            self.store.requeue(job.id)  # shutdown's cancel, not the client's: the next process runs it
            self._end(job.id)
            return
        replica = result.replica or {"id": "local", "host": socket.gethostname(), "pid": os.getpid()}
        self.store.set_replica(job.id, json.dumps(replica, separators=(",", ":"), default=str))
        state = "succeeded" if result.success else ("cancelled" if cancelled else "failed")
        error = None if result.success else {"kind": result.error_kind, "phase": result.failed_phase,
                                              "message": result.error_msg}
        owner = self.store.owner if getattr(self.store, "shared", False) else None  # not a job taken over meanwhile
        self.store.finish(job.id, state, timings=meta.get("timings_ms"), verification=meta.get("verification"),
                          error=error, proof=result.proof, owner=owner)
        self.metrics.observe_result(state, seconds, meta.get("timings_ms") or {}, result.failed_phase,
                                    result.error_kind, meta.get("verification"))
        if result.success:
            self.metrics.observe_loudness("job", meta.get("loudness"))
        self._end(job.id)

    def _end(self, job_id: str) -> None:
        job = self.store.get(job_id)
        self.hub.publish(job_id, END, {"state": job.state, "attempts": job.attempts})

    def _on_event(self, job_id: str, ev: SlotEvent) -> None:
        """From the engine's threads."""
        if job_id in self._cancel_wanted:
            self._engine.cancel(job_id)
        if ev.kind == "phase_started" and ev.phase:
            self.store.set_phase(job_id, ev.phase)
        data = ev.to_dict()
        data.pop("request_id", None)
        self.hub.publish(job_id, ev.kind, data)
