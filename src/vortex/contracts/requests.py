"""What a caller hands the engine for one slot, and what the engine tells it while the slot runs.

Modelled on vLLM's v1 engine: a typed request in, a per-request stream of typed events out. The
engine holds no asyncio primitive bound to a loop: `VortexPipeline.run(request, on_event)` blocks
the calling thread (a service's worker thread, a channel's thread, the CLI's main thread), and
`on_event` is called from the engine's threads, so a caller that lives on an event loop hands
events over with `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional

from ..recipe import Recipe

if TYPE_CHECKING:
    from ..config import LoudnessConfig
    from .sinks import FrameSink

EventKind = Literal[
    "phase_started", "phase_done", "phase_failed",
    "first_audio",  # the first chunk of speech exists: {"samples", "seconds"}
    "chunk",  # a chunk of speech was made: {"index", "of", "sentence", "text", "start", "samples" (in samples),
    #           "start_s", "seconds", "synth_ms"}
    "captions",  # the slot's caption cues, from its speech plan: {"cues": [Cue.as_dict(), ...]} (slot time)
    "chunk_checked",  # a sentence's speech was heard: {"sentences", "words", "errors", "wer", "passed", "heard"}
    "frame_checked",  # a live insert's chunk: its sampled frame's identity {"chunk", "frame", "distance", "passed"}
    "first_frame",
    "progress",  # once a second of video: {"frames", "total"}
    "result",  # the last event: the result's metadata
]


class Priority(IntEnum):
    """Who goes first when several requests are in flight: a lower value first (see scheduling.py)."""

    LIVE = 0  # a live insert on a channel, aired while it is made: each chunk is judged at once
    # (its sentences heard in their own window, one frame's identity) for the channel's delay line
    CHANNEL = 1  # a channel's next slot, made ahead of its air time
    JOB = 2  # a batch job (`vortex generate`, POST /v1/slots)

    @classmethod
    def parse(cls, value: "Priority | str | int") -> "Priority":
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"unknown priority {value!r}; allowed: live, channel, job") from None
        return cls(value)

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class SlotRequest:
    recipe: Recipe
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    slot_id: Optional[int] = None  # default: the recipe's slot_params.slot_id
    seed: Optional[int] = None  # default: the recipe's seed, else a fresh one (recorded in the result)
    deadline_s: Optional[float] = None  # seconds from the start; default pipeline.generation_timeout_sec
    output: Optional[Path] = None  # the MP4 (and its sidecars), published only for a slot that passed
    sinks: tuple["FrameSink", ...] = ()  # more places the media stream into as they are made (HLS, network)
    priority: Priority = Priority.JOB
    keep_frames: bool = False  # hold every frame in `result.video_frames` (tests, notebooks: 0.85 GB at 45 s)
    loudness: Optional["LoudnessConfig"] = None  # the audio's target; default the engine's config.loudness


@dataclass(frozen=True)
class SlotEvent:
    request_id: str
    kind: EventKind
    at_ms: float  # since the slot began
    phase: Optional[str] = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "kind": self.kind, "at_ms": round(self.at_ms, 2),
                "phase": self.phase, "data": self.data}


EventFn = Callable[[SlotEvent], None]
