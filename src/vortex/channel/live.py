"""Breaking news: a live insert, made at live priority and aired while it is made.

`POST /v1/channels/{name}/live` (or `vortex channel live`) hands the channel's runner a recipe and
"at": "now" (cut in as soon as the delay line allows) or "next" (after the slot on air). The
insert gets an air frame on the channel's one timeline and starts at once on the engine at
`Priority.LIVE`, its media streaming into a delay line (delay.py) that releases each chunk of
speech once its checks are in. When the appender (appender.py) reaches the air frame it cuts the
slot on air ("now") and airs the insert from the delay line, a frame at a time, one part ahead of
the clock; a frame whose chunk is not judged by then airs as the stand-by card. If the insert's
first chunk is not judged by its air time it fails with a clear error and the slot on air goes
on. Afterwards the schedule resumes: the slots made ahead air later by the insert's length (less
the part of the cut slot that did not air), none is lost.

Latencies recorded per insert (``channel.json``, the status, the metrics): POST → air time (the
delay line), POST → ready (its first frame made and its first chunk judged: the shortest delay
line that would have worked), POST → its first part published, and per chunk the time from its
speech made to its verdicts.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Optional

from ..contracts.captions import Cue
from ..contracts.requests import Priority, SlotEvent, SlotRequest
from ..recipe import Recipe
from .delay import DelayLine
from .records import iso

At = Literal["now", "next"]
READY_FRAMES = 1  # the insert starts only once at least its first frame is judged


@dataclass
class InsertRecord:
    """What channel.json and the status say of one insert."""

    id: str
    at: str
    duration_sec: float
    n_frames: int
    requested_at: str
    state: str = "making"  # making | on_air | aired | failed
    air_time: Optional[str] = None  # planned at the POST; the truth once it airs
    first_frame: Optional[int] = None  # global frame index where it aired
    cut_slot: Optional[int] = None  # the slot it cut ("now")
    shift_sec: float = 0.0  # how much later the slots after it air
    ready_after_s: Optional[float] = None  # POST → its first frame made and its first chunk judged
    published_after_s: Optional[float] = None  # POST → its first part listed
    chunks: list[dict[str, Any]] = field(default_factory=list)  # per chunk of speech: state, WER, heard
    late_chunks: int = 0  # chunks that aired as the card because they were not judged in time
    replaced_chunks: int = 0  # chunks that failed their checks and aired as the card
    error: Optional[str] = None


class LiveInsert:
    """One insert: its record, its delay line, and its engine run (a thread)."""

    def __init__(self, recipe: Recipe, at: At, fps: int, standby_frame, *, requested: Optional[datetime] = None,
                 loudness: Any = None):
        if at not in ("now", "next"):
            raise ValueError(f"at must be 'now' or 'next', got {at!r}")
        self.recipe = recipe
        self.loudness = loudness  # the channel's target (vortex.config.LoudnessConfig); None: the engine's
        self.requested = requested or datetime.now(timezone.utc)
        self.requested_mono = time.monotonic()
        p = recipe.slot_params
        if p.fps != fps:
            raise ValueError(f"the insert is {p.fps} fps; the channel airs {fps} fps")
        self.record = InsertRecord(id=f"live-{secrets.token_hex(4)}", at=at, duration_sec=p.duration_sec,
                                   n_frames=p.n_frames, requested_at=iso(self.requested))
        self.line = DelayLine(standby_frame, origin=self.requested_mono)
        self.air_frame: Optional[int] = None  # the channel's global frame where it airs
        self.done = threading.Event()  # its engine run has ended
        self.result: Any = None
        self.cues: tuple[Cue, ...] = ()  # its captions, from the engine's "captions" event (insert time)
        self._thread: Optional[threading.Thread] = None
        self._engine: Any = None

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def n_frames(self) -> int:
        return self.record.n_frames

    # -- making ----------------------------------------------------------------------------------
    def start(self, engine: Any, deadline_s: float) -> None:
        """Make it on `engine` at live priority, its media into the delay line."""
        self._engine = engine
        request = SlotRequest(recipe=self.recipe, id=self.id, priority=Priority.LIVE, deadline_s=deadline_s,
                              sinks=(self.line,), loudness=self.loudness)

        def run() -> None:
            try:
                self.result = engine.run(request, on_event=self._on_event)
                if not self.result.success and self.line.failed is None:
                    self.line.failed = self.result.error_msg
            except Exception as exc:  # noqa: BLE001 - an engine that closed or died: the insert fails
                self.line.failed = f"{type(exc).__name__}: {exc}"
                self.line.abort()
            finally:
                self.done.set()

        self._thread = threading.Thread(target=run, name=f"live-{self.id}", daemon=True)
        self._thread.start()

    def _on_event(self, event: SlotEvent) -> None:
        if event.kind == "captions":
            self.cues = tuple(Cue.of(c) for c in event.data.get("cues", ()))
        self.line.on_event(event)

    def caption_verdict(self, cue: Cue) -> Optional[bool]:
        """Whether a cue airs: False if a chunk of its words aired as the card (failed, or judged too
        late), True once all of them passed, None while one is not judged."""
        line = self.line
        chunks = {c.index: c for c in line.chunks}
        verdicts = [chunks.get(k) for k in cue.chunks]
        if any(k in line.late or (v is not None and v.decided and not v.passed) for k, v in zip(cue.chunks, verdicts)):
            return False
        return True if all(v is not None and v.decided for v in verdicts) else None

    def cancel(self, why: str) -> None:
        self.record.error = self.record.error or why
        if self._engine is not None:
            self._engine.cancel(self.id)

    # -- airing ----------------------------------------------------------------------------------
    def ready(self) -> bool:
        """Its first frames are made and judged: it can take the air."""
        return self.line.decided_frames() >= READY_FRAMES

    def refresh(self) -> InsertRecord:
        """The record with the delay line's current chunk states."""
        r = self.record
        r.chunks = self.line.status()
        first = self.line.chunks[0] if self.line.chunks else None
        if r.ready_after_s is None and first is not None and first.judged_at and self.line.first_frame_at:
            r.ready_after_s = round(max(first.judged_at, self.line.first_frame_at) - self.requested_mono, 3)
        r.late_chunks = sum(1 for c in r.chunks if c.get("late"))
        r.replaced_chunks = sum(1 for c in r.chunks if c["state"] == "replaced")
        return r

    def summary(self) -> dict[str, Any]:
        return asdict(self.refresh())


def frames_for(seconds: float, fps: int) -> int:
    return int(math.ceil(seconds * fps - 1e-9))
