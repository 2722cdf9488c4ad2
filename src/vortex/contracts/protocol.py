"""The one interface every engine offers: the local `VortexPipeline` and the Ray Serve `RayEngine`.

The service's worker, the channel runner and the bench hold an `Engine` and nothing more specific.
"""

from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

from ..result import GenerationResult
from .requests import EventFn, SlotRequest


@runtime_checkable
class Engine(Protocol):
    def run(self, request: SlotRequest, on_event: Optional[EventFn] = None) -> GenerationResult:
        """One slot, blocking the calling thread. Never raises for a failed slot (the result says
        why); raises EngineClosed after close() and EngineDead after a device fault."""

    def cancel(self, request_id: str) -> bool:
        """Stop a request in flight at its next step; False when it is not (or no longer) running."""

    def close(self) -> None:
        """Stop taking requests; the ones in flight are cancelled."""

    @property
    def closed(self) -> bool: ...

    @property
    def dead(self) -> Optional[str]:
        """Why the engine can no longer run slots (a CUDA fault: restart the process), else None."""
