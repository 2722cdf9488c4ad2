"""`RayEngine`: the `vortex.contracts.protocol.Engine` protocol (run / cancel / close / closed / dead) on a Ray
Serve deployment.

`run(request, on_event)` blocks the calling thread like `VortexPipeline.run`, and is thread-safe:
N threads calling it at once use N replicas (each replica takes one slot at a time; a request
beyond that waits in Serve's router). Events stream back from the replica and reach `on_event` in
the calling thread; the "result" event comes last, once OUT.mp4 and its sidecar are written here.

A replica that dies mid-slot (kill -9, OOM, its node lost) costs that attempt, not the slot: the
same request, with the same seed, is sent again (Serve routes it to a live replica, or to the
replacement it starts) while the deadline leaves time, up to `max_attempts` accepted attempts, so
a request that kills every replica it touches does not loop. A replica that refuses a slot before
accepting it (its engine closed, or the router picked a replica that just died) is retried after
a short pause without counting. The deadline counts from `run()`: queue waits and lost attempts
included.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ray.exceptions import NodeDiedError, ObjectLostError, RayActorError, TaskCancelledError, WorkerCrashedError
from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError

from ..contracts.captions import Cue
from ..contracts.requests import EventFn, SlotEvent, SlotRequest
from ..engine.outputs import OutputError, SlotOutput, describe_os_error
from ..engine.slot import pick_seed
from ..errors import EngineClosed, EngineDead
from ..phases import Phase
from ..result import GenerationResult
from .result import RemoteResult
from .wire import encode_request

log = logging.getLogger("vortex.serving")

# RayActorError covers ActorDiedError (the process exited) and ActorUnavailableError (unreachable).
REPLICA_LOST = (RayActorError, ReplicaUnavailableError, WorkerCrashedError, NodeDiedError, ObjectLostError)
MIN_ATTEMPT_S = 1.0  # less left than this: report the deadline rather than start an attempt
REFUSED_PAUSE_S = 0.5  # after a refusal: the router learns of a dead replica within ~1 s


@dataclass
class _Flight:
    request_id: str
    cancelled: bool = False
    response: Any = None  # the DeploymentResponseGenerator of the attempt in flight
    replica: Optional[dict[str, Any]] = None  # who accepted the attempt in flight
    phase: Optional[str] = None  # the last phase started (a cancelled result names it)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel_response(self) -> None:
        with self.lock:
            if self.response is not None:
                self.response.cancel()


class _Lost(Exception):
    def __init__(self, replica: Optional[dict[str, Any]], error: BaseException | str):
        super().__init__(str(error))
        self.accepted = replica is not None
        self.record = {"replica": replica, "error": f"{type(error).__name__}: {error}"
                       if isinstance(error, BaseException) else error}


class _Cancelled(Exception):
    pass


class RayEngine:
    """The caller's side of the Serve application `handle` points at (`start_local`, `connect`)."""

    def __init__(self, handle: Any, *, profile: str = "", default_deadline_s: float = 120.0, max_attempts: int = 3,
                 on_close: Optional[Callable[[], None]] = None, signer: Any = None):
        self._handle = handle
        # The node's SlotSigner (vortex.provenance.signing), as VortexPipeline.signer: the replicas sign
        # the MP4s, and a channel on this engine signs its segments with `signer.identity` (None: off).
        self.signer = signer
        self._stream = handle.options(stream=True)  # `slot` streams its events
        self.profile = profile
        self.default_deadline_s = default_deadline_s  # a request without deadline_s gets the profile's timeout
        self.max_attempts = max_attempts
        self._on_close = on_close
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._dead: Optional[str] = None

    @property
    def dead(self) -> Optional[str]:
        """Set when the Serve application is gone: restart the process (the worker reads it)."""
        return self._dead

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- the Engine protocol ----------------------------------------------------------------------
    def run(self, request: SlotRequest, on_event: Optional[EventFn] = None) -> RemoteResult:
        if self._closed:
            raise EngineClosed("the Ray engine is closed")
        started = time.monotonic()
        recipe = request.recipe
        slot_id = recipe.slot_params.slot_id if request.slot_id is None else request.slot_id
        seed = pick_seed(request.seed, recipe.slot_params.seed)  # fixed here: every attempt makes the same slot
        budget = self.default_deadline_s if request.deadline_s is None else float(request.deadline_s)
        flight = _Flight(request.id)
        with self._lock:
            self._flights[request.id] = flight
        fail = _Failer(self, request, slot_id, seed, started, on_event)
        try:
            try:
                target = None if request.output is None else SlotOutput.prepare(request.output)
            except OutputError as exc:
                return fail(str(exc), Phase.VALIDATE.value, "input", None)
            attempts: list[dict[str, Any]] = []
            while True:
                left = budget - (time.monotonic() - started)
                if flight.cancelled:
                    return fail("cancelled: cancelled by the caller", flight.phase, "cancelled", target, attempts)
                if left < MIN_ATTEMPT_S:
                    return fail(f"deadline: {budget:g} s passed after {len(attempts)} lost attempt(s)",
                                flight.phase or Phase.VALIDATE.value, "deadline", target, attempts)
                payload = encode_request(request, slot_id=slot_id, seed=seed, deadline_s=left)
                try:
                    answer = self._attempt(flight, payload, on_event, left)
                except _Cancelled:
                    return fail("cancelled: cancelled by the caller", flight.phase, "cancelled", target, attempts)
                except _Lost as lost:
                    if not lost.accepted:
                        log.info("no replica took the slot; sending it again", extra={
                            "event": "replica_refused", "request": request.id, "error": lost.record["error"]})
                        time.sleep(REFUSED_PAUSE_S)
                        continue
                    attempts.append(lost.record)
                    log.warning("replica %s lost mid-slot (%s); re-running the request",
                                (lost.record["replica"] or {}).get("id"), lost.record["error"],
                                extra={"event": "replica_lost", "request": request.id, **lost.record})
                    if len(attempts) >= self.max_attempts:
                        return fail(f"{len(attempts)} replicas were lost running this slot; the last: "
                                    f"{lost.record['error']}", flight.phase, "model", target, attempts)
                    continue
                return self._finish(request, answer, target, attempts, started, on_event)
        finally:
            with self._lock:
                self._flights.pop(request.id, None)

    def cancel(self, request_id: str) -> bool:
        """Cancel a request in flight: the replica's handler gets CancelledError and cancels its engine;
        `run` returns at once with error_kind "cancelled"."""
        with self._lock:
            flight = self._flights.get(request_id)
        if flight is None:
            return False
        flight.cancelled = True
        flight.cancel_response()
        return True

    def close(self) -> None:
        """Cancel what is in flight; later requests raise EngineClosed. A Ray instance and app that
        `start_local` made are shut down too."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            flights = list(self._flights.values())
        for flight in flights:
            flight.cancelled = True
            flight.cancel_response()
        if self._on_close is not None:
            self._on_close()

    # ---- beyond the protocol ------------------------------------------------------------------------
    def where(self, request_id: str) -> Optional[dict[str, Any]]:
        """The replica running `request_id` now (id, host, pid, node_id), or None."""
        with self._lock:
            flight = self._flights.get(request_id)
        return None if flight is None else flight.replica

    def replicas(self, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Every live replica's identity and state (`VortexReplica.identify`), busy ones included; a
        replica that does not answer (dead, not yet known to be) is left out."""
        answers = self._handle.broadcast("identify").results(timeout_s=timeout_s, return_exceptions=True)
        return [a for a in answers if isinstance(a, dict)]

    # ---- one attempt --------------------------------------------------------------------------------
    def _attempt(self, flight: _Flight, payload: dict[str, Any], on_event: Optional[EventFn],
                 left: float) -> dict[str, Any]:
        """Stream one attempt to its result, or raise _Lost / _Cancelled."""
        with flight.lock:
            flight.replica, flight.response = None, self._stream.slot.remote(payload)
        # A router that holds the request past the deadline (every replica gone for good) gives it up.
        timer = threading.Timer(left, lambda: flight.replica is None and flight.cancel_response())
        timer.daemon = True
        timer.start()
        if flight.cancelled:
            flight.cancel_response()
        answer = None
        try:
            for kind, item in flight.response:
                if kind == "replica":
                    flight.replica = item
                elif kind == "event":
                    if item.kind == "phase_started":
                        flight.phase = item.phase
                    if item.kind != "result" and on_event is not None:  # ours comes once the files are written
                        on_event(item)
                elif kind == "result":
                    answer = item
        except (TaskCancelledError, concurrent.futures.CancelledError) as exc:  # Serve's RequestCancelledError is one
            if flight.cancelled:
                raise _Cancelled() from None
            raise _Lost(flight.replica, exc if flight.replica is not None else "no replica took it in time") from None
        except REPLICA_LOST as exc:
            raise _Lost(flight.replica, exc) from None
        except (EngineClosed, EngineDead) as exc:  # the replica's engine is going away: Serve replaces it
            raise _Lost(flight.replica, exc) from None
        except DeploymentUnavailableError as exc:
            self._dead = f"the Ray Serve application is unavailable: {exc}"
            raise EngineDead(self._dead) from None
        except BaseException:  # on_event raised, or a bug: the replica must not go on for nobody
            flight.cancel_response()
            raise
        finally:
            timer.cancel()
            with flight.lock:
                flight.response = None
        if answer is None:
            raise _Lost(flight.replica, "the replica's stream ended without a result")
        return answer

    def _finish(self, request: SlotRequest, answer: dict[str, Any], target: Optional[SlotOutput],
                attempts: list[dict[str, Any]], started: float, on_event: Optional[EventFn]) -> RemoteResult:
        meta = dict(answer["metadata"], replica=answer["replica"], attempts=attempts)
        result = RemoteResult(meta, replica=answer["replica"], attempts=attempts)
        if target is not None:
            _write_outputs(result, target, answer.get("mp4"))
        _emit_result(request.id, result, started, on_event)
        return result


class _Failer:
    """A failure decided on this side (cancelled, deadline, replicas lost, bad output path), shaped
    like the engine's own: the same metadata keys, OUT.failed.json, a "result" event."""

    def __init__(self, engine: RayEngine, request: SlotRequest, slot_id: int, seed: int, started: float,
                 on_event: Optional[EventFn]):
        self.engine, self.request, self.slot_id, self.seed = engine, request, slot_id, seed
        self.started, self.on_event = started, on_event

    def __call__(self, message: str, phase: Optional[str], kind: str, target: Optional[SlotOutput],
                 attempts: Optional[list[dict[str, Any]]] = None) -> RemoteResult:
        recipe = self.request.recipe.with_overrides(slot_id=self.slot_id, seed=self.seed)
        base = GenerationResult(slot_id=self.slot_id, seed=self.seed, success=False, error_msg=message,
                                failed_phase=phase or Phase.VALIDATE.value, error_kind=kind,
                                profile=self.engine.profile, recipe_sha256=recipe.sha256(),
                                generation_time_ms=(time.monotonic() - self.started) * 1000.0)
        attempts = list(attempts or [])
        result = RemoteResult(dict(base.metadata(), replica=None, attempts=attempts), attempts=attempts)
        if target is not None:
            _write_outputs(result, target, None)
        _emit_result(self.request.id, result, self.started, self.on_event)
        return result


def _write_outputs(result: RemoteResult, target: SlotOutput, mp4: Optional[bytes]) -> None:
    """OUT.mp4 (success) and OUT.json, or OUT.failed.json, as the local engine writes them."""
    try:
        if result.success:
            if not mp4:
                raise OutputError(f"the replica returned no MP4 for '{target.mp4}'")
            staging = target.staging_mp4()
            try:
                staging.write_bytes(mp4)
            except OSError as exc:
                staging.unlink(missing_ok=True)
                raise OutputError(describe_os_error(target.mp4, exc)) from None
            target.publish(staging)
            target.publish_captions([Cue.of(c) for c in result.meta.get("captions") or ()])  # OUT.vtt
            result.output = target.mp4
        result.report_path = target.write_report(result.metadata(), success=result.success)
    except OutputError as exc:
        if result.success:  # the slot did not complete here: no MP4 without its sidecar
            target.mp4.unlink(missing_ok=True)
            target.captions.unlink(missing_ok=True)
            result.output = None
            result.meta.update(success=False, failed_phase=Phase.FINALIZE.value, error_kind="output")
        prior = result.meta.get("error_msg")
        result.meta["error_msg"] = str(exc) if prior is None else f"{prior}; and {exc}"
        try:
            result.report_path = target.write_report(result.metadata(), success=False)
        except OutputError:
            pass


def _emit_result(request_id: str, result: RemoteResult, started: float, on_event: Optional[EventFn]) -> None:
    if on_event is not None:
        on_event(SlotEvent(request_id, "result", (time.monotonic() - started) * 1000.0,
                           result.meta.get("failed_phase"), result.metadata()))
