"""Cooperative cancellation: worker threads cannot be killed, so each model checks a token
between steps (a denoising step, a speech chunk, a frame batch) and stops there."""

from __future__ import annotations

import threading


class SlotCancelled(Exception):
    """Raised inside a worker when its slot was cancelled or ran out of time."""


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str) -> None:
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise SlotCancelled(self.reason)
