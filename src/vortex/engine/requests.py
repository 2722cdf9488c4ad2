"""What a caller hands the engine for one slot, and what the engine tells it while the slot runs.

Modelled on vLLM's v1 engine: a typed request in, a per-request stream of typed events out,
instead of loose arguments and one engine-wide callback. The engine holds no asyncio primitive
bound to a loop: `VortexPipeline.run(request, on_event)` blocks the calling thread (a service's
worker thread, the CLI's main thread), and `on_event` is called from the engine's threads, so a
caller that lives on an event loop hands events over with `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional

from ..recipe import Recipe

EventKind = Literal["phase_started", "phase_done", "phase_failed", "first_frame", "progress", "result"]


@dataclass(frozen=True)
class SlotRequest:
    recipe: Recipe
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    slot_id: Optional[int] = None  # default: the recipe's slot_params.slot_id
    seed: Optional[int] = None  # default: the recipe's seed, else a fresh one (recorded in the result)
    deadline_s: Optional[float] = None  # seconds from the start; default pipeline.generation_timeout_sec
    output: Optional[Path] = None  # the MP4 sink (and its sidecars); None: media stay in the result only


@dataclass(frozen=True)
class SlotEvent:
    request_id: str
    kind: EventKind
    at_ms: float  # since the slot began
    phase: Optional[str] = None
    data: dict[str, Any] = field(default_factory=dict)  # progress: {"frames", "total"}; result: the metadata

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "kind": self.kind, "at_ms": round(self.at_ms, 2),
                "phase": self.phase, "data": self.data}


EventFn = Callable[[SlotEvent], None]
