"""One slot in flight: its request, deadline, events, phase spans and timings.

Several threads work for one slot at once (its caller's thread, the voice, the actor, the checks,
the render queue), so the slot's records are written under a lock and its events are emitted one
whole event at a time.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from ..contracts.cancel import CancelToken
from ..contracts.requests import EventFn, EventKind, SlotEvent, SlotRequest
from ..logs import phase_event
from ..phases import Phase
from ..recipe import Recipe
from .cpu import CpuLedger
from .scheduling import Flight

log = logging.getLogger("vortex.engine")


@dataclass
class Slot:
    request: SlotRequest
    recipe: Recipe
    slot_id: int
    seed: int
    budget_s: float
    token: CancelToken
    on_event: Optional[EventFn] = None
    t0: float = field(default_factory=time.perf_counter)
    flight: Optional[Flight] = None
    phase: str = Phase.VALIDATE.value  # the phase a failure is attributed to
    running: set[str] = field(default_factory=set)  # the phases in progress
    timings_ms: dict[str, float] = field(default_factory=dict)
    spans_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    vram_peaks: dict[str, dict[str, int]] = field(default_factory=dict)
    first_frame_ms: Optional[float] = None
    first_audio_ms: Optional[float] = None
    chunks: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    wake: threading.Event = field(default_factory=threading.Event)  # the slot's thread: something arrived
    cpu: CpuLedger = field(default_factory=CpuLedger)  # CPU seconds per stage, from the threads that did them
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0

    def remaining_s(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def emit(self, kind: EventKind, phase: Optional[str] = None, **data: Any) -> None:
        """Tell the request's caller; a failing callback is logged, never allowed to fail the slot."""
        if self.on_event is None:
            return
        with self._lock:  # one whole event at a time, in the order they happened
            try:
                self.on_event(SlotEvent(self.request.id, kind, self.elapsed_ms(), phase, data))
            except Exception:  # noqa: BLE001 - the caller's bug must not cost the slot
                log.exception("event callback failed", extra={"event": "callback_error", "kind": kind})

    def begin(self, phase: Phase) -> None:
        name = str(phase)
        with self._lock:
            if name in self.running or name in self.spans_ms:
                return
            self.running.add(name)
            self.phase = name
            self.spans_ms[name] = (self.elapsed_ms(), float("nan"))
        self.emit("phase_started", name)

    def end(self, phase: Phase) -> None:
        name = str(phase)
        with self._lock:
            if name not in self.running:
                return
            self.running.discard(name)
            start = self.spans_ms[name][0]
            end = self.elapsed_ms()
            self.spans_ms[name] = (start, end)
            self.timings_ms[name] = end - start
        phase_event(log, self.slot_id, name, self.timings_ms[name])
        self.emit("phase_done", name, ms=round(self.timings_ms[name], 2))

    def record(self, name: str, ms: float) -> None:
        """A timing that is not a phase (the motion plan, the animator's source, the pauses)."""
        with self._lock:
            self.timings_ms[name] = self.timings_ms.get(name, 0.0) + ms

    def running_phases(self) -> str:
        with self._lock:
            return "+".join(sorted(self.running)) or self.phase


def is_device_fault(exc: BaseException) -> bool:
    """A CUDA error that poisons the process (an illegal address, a lost device), not an OOM."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and not isinstance(exc, torch.OutOfMemoryError) and (
        "CUDA error" in text or "device-side assert" in text or "cudaErrorLaunchFailure" in text
    )


def as_recipe(recipe: Recipe | dict | str | Path) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    if isinstance(recipe, Path) or (isinstance(recipe, str) and not recipe.lstrip().startswith(("{", "slot_params", "recipe"))):
        return Recipe.from_file(recipe)
    return Recipe.from_text(recipe)


def pick_seed(explicit: int | None, from_recipe: int | None) -> int:
    if explicit is not None:
        return explicit
    if from_recipe is not None:
        return from_recipe
    return secrets.randbits(63)  # a fresh seed, recorded in the result so the slot can be replayed
