"""Keeping a claimed job's lease alive while it runs, for the worker of a shared store.

    with LeaseKeeper(store, job.id, owner, lease_s, on_lost=cancel_the_slot) as lease:
        ... run the slot ...
    if not lease.lost: store.finish(job.id, state, owner=owner, ...)
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from .store import DEFAULT_LEASE_S, JobStore


class LeaseKeeper:
    """Renews the lease every lease_s / 3 on a daemon thread, so two renewals in a row may fail (a
    store restart, a network blip) before the lease runs out. The lease is lost when a renewal
    answers False (another node has the job) or no renewal succeeded for lease_s; then `lost` is
    set and `on_lost()` called once: stop the slot, and do not finish it."""

    def __init__(self, store: JobStore, job_id: str, owner: Optional[str] = None,
                 lease_s: float = DEFAULT_LEASE_S, on_lost: Optional[Callable[[], None]] = None):
        self.store, self.job_id, self.owner, self.lease_s = store, job_id, owner or store.owner, lease_s
        self.on_lost = on_lost
        self.lost = threading.Event()
        self.error: Optional[BaseException] = None  # the last failed renewal's exception, if any
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        renewed = time.monotonic()
        while not self._stop.wait(self.lease_s / 3):
            try:
                held = self.store.renew_lease(self.job_id, self.owner, self.lease_s)
                renewed = time.monotonic()
            except Exception as exc:  # the store unreachable: keep trying until the lease has run out
                self.error, held = exc, time.monotonic() - renewed < self.lease_s
            if not held:
                self.lost.set()
                if self.on_lost is not None:
                    self.on_lost()
                return
