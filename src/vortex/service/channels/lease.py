"""The keeper thread that renews this node's channel leases and takes over channels whose node died.

The keeper, every `renew_s`: renews every lease this node holds in one statement; a channel
missing from the answer is lost (another node took it over after this one stalled past its lease),
and a channel whose DELETE came to another node is stopped here. Then, once the engine is loaded,
it takes every channel that should be on air and that no node holds (`take_orphan`).

The leases are `ChannelLease`s (service/store/lease.py: the one lease rule, and the fence the runner
asks), counted from before each renewal was sent.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from ..store.channels import ChannelLeases, ChannelRow
from ..store.lease import ChannelLease

log = logging.getLogger("vortex.service.channels")


class ChannelKeeper:
    """The thread that renews this node's leases and takes over orphaned channels.

    `on_lost(name, lease)`, `on_stop(name)` and `take(row, how, sent)` are the host's; `may_take()`
    says whether this node should take channels now (engine loaded, not shutting down) and
    `busy()` which channels still have a runner here (not taken again until it has ended)."""

    def __init__(self, leases: ChannelLeases, renew_s: float, *, on_lost: Callable[[str, ChannelLease], None],
                 on_stop: Callable[[str], None], take: Callable[[ChannelRow, str, float], None],
                 may_take: Callable[[], bool], busy: Callable[[], set[str]]):
        if not 0 < renew_s <= leases.lease_s / 2:
            raise ValueError(f"renew_s must be above 0 and at most half the lease ({leases.lease_s:g} s), got {renew_s!r}")
        self.leases, self.renew_s = leases, renew_s
        self._on_lost, self._on_stop, self._take, self._may_take, self._busy = on_lost, on_stop, take, may_take, busy
        self._held: dict[str, ChannelLease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="channel-keeper", daemon=True)
        self.error: Optional[str] = None  # the last failed round's reason (the store unreachable)
        self._strays: set[tuple[str, int]] = set()

    def hold(self, row: ChannelRow, sent: float) -> ChannelLease:
        """Register a lease this node just acquired (`sent`: monotonic time before the acquiring statement)."""
        lease = ChannelLease(row.name, row.term, self.leases.lease_s, self.renew_s, sent)
        with self._lock:
            self._held[row.name] = lease
        return lease

    def drop(self, name: str, lease: ChannelLease) -> None:
        with self._lock:
            if self._held.get(name) is lease:
                del self._held[name]

    def held(self) -> dict[str, ChannelLease]:
        with self._lock:
            return dict(self._held)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Run a round now (the engine just loaded)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # never let the keeper die: the leases would all run out
                log.exception("channel keeper round failed")
                self.error = f"{type(exc).__name__}: {exc}"
            self._wake.wait(self.renew_s)
            self._wake.clear()

    def _let_go_of_strays(self, renewed: dict[str, tuple[int, bool]]) -> None:
        """A lease the store gives this node but no runner here holds (its release failed while the
        store was out of reach) would be renewed forever with nobody on air: released once it has
        been a stray two rounds running (one round may be a POST between acquiring and holding)."""
        held = self.held()
        strays = {(name, term) for name, (term, _) in renewed.items()
                  if name not in held or held[name].term != term}
        for name, term in strays & self._strays:
            log.warning("channel %s: releasing term %d, which no runner here holds", name, term)
            self.leases.release(name, term)
        self._strays = strays

    def tick(self) -> None:
        """One round: renew, notice losses and stop requests, take orphans."""
        sent = time.monotonic()
        try:
            renewed: Optional[dict[str, tuple[int, bool]]] = self.leases.renew_all()
            self.error = None
        except Exception as exc:  # the store unreachable: the local clock decides (the fence)
            renewed, self.error = None, f"{type(exc).__name__}: {exc}"
            log.warning("renewing channel leases failed: %s", self.error)
        for name, lease in self.held().items():
            got = None if renewed is None else renewed.get(name)
            if got is not None and got[0] == lease.term:
                lease.renewed(sent)
                if got[1]:
                    self._on_stop(name)
            elif renewed is not None:
                lease.lose("the store no longer lists this node as its owner: the lease ran out (and another "
                           "node may have taken the channel over) or it was released")
            elif lease.left() < lease.guard_s:
                lease.lose(f"the store unreachable ({self.error}) and under {lease.guard_s:g} s of the lease left")
            if lease.lost.is_set() and not lease.reported:  # lost here, or by the runner's own fence
                lease.reported = True
                self._on_lost(name, lease)
        if renewed is not None:
            self._let_go_of_strays(renewed)
        while renewed is not None and not self._stop.is_set() and self._may_take():
            sent = time.monotonic()
            got = self.leases.take_orphan(exclude=self._busy())
            if got is None:
                break
            self._take(got[0], got[1], sent)
