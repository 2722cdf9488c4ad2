"""One slot in flight: its state, its events, and how its phases run in worker threads.

Phases run in a small thread pool (voice and actor at once, each on its own CUDA stream on a GPU)
and are awaited within the slot's deadline. Worker threads cannot be killed: on a deadline or a
cancel the slot's token is set, every model checks it between steps, and `drain` waits for the
threads to notice, so the next slot starts on idle workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from .cancel import CancelToken
from ..errors import DeadlineExceeded
from ..logs import phase_event
from ..phases import Phase
from ..recipe import Recipe
from .requests import EventFn, EventKind, SlotEvent

log = logging.getLogger("vortex.engine.pipeline")


@dataclass
class Slot:
    """The state of one slot in flight."""

    request_id: str
    recipe: Recipe
    slot_id: int
    seed: int
    budget_s: float
    on_event: Optional[EventFn] = None
    t0: float = field(default_factory=time.perf_counter)
    token: CancelToken = field(default_factory=CancelToken)
    phase: str = Phase.VALIDATE.value
    timings_ms: dict[str, float] = field(default_factory=dict)
    spans_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    inflight: set = field(default_factory=set)
    vram_peaks: dict[str, dict[str, int]] = field(default_factory=dict)
    first_frame_ms: Optional[float] = None
    warnings: list[str] = field(default_factory=list)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0

    def remaining_s(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def emit(self, kind: EventKind, phase: Optional[str] = None, **data: Any) -> None:
        """Tell the request's caller; a failing callback is logged, never allowed to fail the slot."""
        if self.on_event is None:
            return
        try:
            self.on_event(SlotEvent(self.request_id, kind, self.elapsed_ms(), phase, data))
        except Exception:  # noqa: BLE001 - the caller's bug must not cost the slot
            log.exception("event callback failed", extra={"event": "callback_error", "kind": kind})


class Scheduler:
    """The engine's worker threads and CUDA streams, shared by every slot (one slot at a time)."""

    def __init__(self, device: torch.device, workers: int = 2):
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vortex-worker")
        self.streams = (
            {name: torch.cuda.Stream(device) for name in ("voice", "actor")} if device.type == "cuda" else {}
        )

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True)

    def _timed(self, slot: Slot, phase: str, fn: Callable, *args: Any) -> Any:
        phase = str(phase)  # a Phase: its plain name in timings, spans and events
        slot.emit("phase_started", phase)
        start = time.perf_counter()
        stream = self.streams.get(phase)
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            out = fn(*args)
            if stream is not None:
                stream.synchronize()
        end = time.perf_counter()
        slot.timings_ms[phase] = (end - start) * 1000.0
        slot.spans_ms[phase] = ((start - slot.t0) * 1000.0, (end - slot.t0) * 1000.0)
        phase_event(log, slot.slot_id, phase, slot.timings_ms[phase])
        slot.emit("phase_done", phase, ms=round(slot.timings_ms[phase], 2))
        return out

    async def in_worker(self, slot: Slot, phase: str, fn: Callable, *args: Any) -> Any:
        slot.phase = str(phase)
        return (await self.concurrently(slot, (phase, fn, *args)))[0]

    async def concurrently(self, slot: Slot, *jobs: tuple) -> list[Any]:
        """Run each (phase, fn, *args) in a worker thread, all at once; wait within the deadline."""
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(self.executor, self._timed, slot, phase, fn, *args) for phase, fn, *args in jobs]
        slot.inflight.update(futures)
        pending = set(futures)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=max(slot.remaining_s(), 0), return_when=asyncio.FIRST_EXCEPTION)
            for fut in done:
                if fut.exception() is not None:
                    slot.phase = str(next(p for (p, *_), f in zip(jobs, futures) if f is fut))
                    raise fut.exception()
            if pending and slot.remaining_s() <= 0:
                running = [str(p) for (p, *_), f in zip(jobs, futures) if f in pending]
                slot.token.cancel("deadline exceeded")
                raise DeadlineExceeded("+".join(running), slot.budget_s)
        return [f.result() for f in futures]

    async def drain(self, slot: Slot) -> None:
        """Wait for worker threads to notice the cancel token, so the next slot starts clean."""
        live = [f for f in slot.inflight if not f.done()]
        if live:
            await asyncio.wait(live)
        for fut in slot.inflight:
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieve it, so asyncio does not warn about it
        slot.inflight.clear()


def as_recipe(recipe: Recipe | dict | str | Path) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    if isinstance(recipe, Path) or (isinstance(recipe, str) and not recipe.lstrip().startswith(("{", "slot_params", "recipe"))):
        return Recipe.from_file(recipe)
    return Recipe.from_text(recipe)


def is_device_fault(exc: BaseException) -> bool:
    """A CUDA error that poisons the process (an illegal address, a lost device), not an OOM."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and not isinstance(exc, torch.OutOfMemoryError) and (
        "CUDA error" in text or "device-side assert" in text or "cudaErrorLaunchFailure" in text
    )


def pick_seed(explicit: int | None, from_recipe: int | None) -> int:
    if explicit is not None:
        return explicit
    if from_recipe is not None:
        return from_recipe
    return secrets.randbits(63)  # a fresh seed, recorded in the result so the slot can be replayed
