"""The one lease rule of `vortex serve`, for jobs and channels alike.

A lease is a hold the store grants until an expiry. This node counts it by its own monotonic clock
from the moment *before* the statement that acquired or renewed it was sent (`Lease`): the store
stamps its expiry while or after it runs the statement, so the store's expiry can only come later
than this node's, and a node that believes it still holds a lease does (a slow answer, a paused
process or a store out of reach shortens the local lease, never lengthens it).

    job:      with LeaseKeeper(store, job.id, sent=before_claim, on_lost=cancel_the_slot) as lease:
                  ... run the slot ...
              if not lease.lost.is_set(): store.finish(job.id, state, owner=owner, ...)
    channel:  ChannelLease, renewed by service/channels/lease.py's keeper; the runner asks its fence
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from ...channel.fencing import ChannelFenced
from .jobs import DEFAULT_LEASE_S, JobStore


class Lease:
    """A hold for `lease_s`, valid by this node's monotonic clock until `valid_until`."""

    def __init__(self, lease_s: float, sent: float):
        self.lease_s = lease_s
        self.valid_until = sent + lease_s  # `sent`: time.monotonic() before the acquiring statement
        self.lost = threading.Event()
        self.why: Optional[str] = None

    def renewed(self, sent: float) -> None:
        """The store extended the lease by a statement sent at `sent` (monotonic, taken before sending)."""
        self.valid_until = max(self.valid_until, sent + self.lease_s)

    def left(self) -> float:
        return self.valid_until - time.monotonic()

    def lose(self, why: str) -> bool:
        """Mark the lease lost (True the first time)."""
        if self.lost.is_set():
            return False
        self.why = why
        self.lost.set()
        return True


class ChannelLease(Lease):
    """This node's hold on one channel: the term it acquired, and the fence its runner asks.

    The fence (`fence`, passed to `ChannelRunner`): before each append, each frame handed to the
    writer and each write of the channel's state, the runner asks it (channel/fencing.py); it raises
    `ChannelFenced` once the lease is lost, or when less than `guard_s` (one renewal period) of it is
    left. A node that passed the fence so has at least `guard_s` before another node can take the
    channel: two owners never append to one playlist. What the fence cannot stop is the one frame's
    encode and part publish already under way when the process is frozen (SIGSTOP, a VM pause) for
    longer than the lease: milliseconds of work, finished after the pause. A shared file system
    gives no storage-side token to close that window (media.py: S3's conditional writes would)."""

    def __init__(self, name: str, term: int, lease_s: float, guard_s: float, sent: float):
        super().__init__(lease_s, sent)
        self.name, self.term, self.guard_s = name, term, guard_s
        self.reported = False  # the keeper told the host (once)

    def fence(self) -> None:
        """Raise ChannelFenced unless this node may still write the channel's folder."""
        if not self.lost.is_set() and self.left() < self.guard_s:
            self.lose(f"{self.left():.1f} s of the lease left by this node's monotonic clock, under the "
                      f"{self.guard_s:g} s a write needs: no renewal got through (the process was paused, or the "
                      "store out of reach)")
        if self.lost.is_set():
            raise ChannelFenced(f"channel '{self.name}': this node no longer holds its lease (term {self.term}): "
                                f"{self.why}")


class LeaseKeeper:
    """Keeps a claimed job's lease alive while it runs, for the worker of a shared store.

    Renews the lease every lease_s / 3 on a daemon thread, so two renewals in a row may fail (a
    store restart, a network blip) before the lease runs out. The lease is lost when a renewal
    answers False (another node has the job) or, the store out of reach, once no renewal got
    through in time by the rule above; then `lost` is set and `on_lost()` called once: stop the
    slot, and do not finish it."""

    def __init__(self, store: JobStore, job_id: str, owner: Optional[str] = None,
                 lease_s: float = DEFAULT_LEASE_S, on_lost: Optional[Callable[[], None]] = None,
                 sent: Optional[float] = None):
        self.store, self.job_id, self.owner = store, job_id, owner or store.owner
        # `sent`: time.monotonic() before the claim (default: now, which the claim can only precede)
        self.lease = Lease(lease_s, time.monotonic() if sent is None else sent)
        self.on_lost = on_lost
        self.error: Optional[BaseException] = None  # the last failed renewal's exception, if any
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    @property
    def lost(self) -> threading.Event:
        return self.lease.lost

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        lease = self.lease
        while not self._stop.wait(lease.lease_s / 3):
            sent = time.monotonic()
            try:
                held = self.store.renew_lease(self.job_id, self.owner, lease.lease_s)
            except Exception as exc:  # the store unreachable: keep trying until the lease has run out
                self.error, held = exc, lease.left() > 0
            else:
                if held:
                    lease.renewed(sent)
            if not held:
                lease.lose("the store refused the renewal (another node has the job)" if self.error is None
                           else f"no renewal got through before the lease ran out ({self.error})")
                if self.on_lost is not None:
                    self.on_lost()
                return
