"""Cooperative cancellation: worker threads cannot be killed, so each model checks a token
between steps (a denoising step, a speech chunk, a frame batch) and stops there. A token may
carry the slot's deadline: past it, the token counts as cancelled ("deadline exceeded")."""

from __future__ import annotations

import threading
import time
from typing import Optional

DEADLINE_EXCEEDED = "deadline exceeded"


class SlotCancelled(Exception):
    """Raised inside a worker when its slot was cancelled or ran out of time."""


class VoiceCallStopped(Exception):
    """A Kokoro call stopped before its end (its handle's `stop()`: a higher priority took the
    voice); its chunk is spoken again later, whole (vortex.engine.voice_calls)."""


class CancelToken:
    def __init__(self, deadline: Optional[float] = None) -> None:
        self._event = threading.Event()
        self.reason = ""
        self.deadline = deadline  # time.monotonic() past which the slot is out of time

    def cancel(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
        self._event.set()

    @property
    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline and not self._event.is_set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or self.expired

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise SlotCancelled(self.reason)
        if self.expired:
            raise SlotCancelled(DEADLINE_EXCEEDED)

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` s, less if cancelled or out of time; True when it was."""
        if self.deadline is not None:
            timeout = min(timeout, max(0.0, self.deadline - time.monotonic()))
        self._event.wait(timeout)
        return self.cancelled
