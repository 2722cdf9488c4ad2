"""The one lease rule (service/store/lease.py), for jobs and channels, on both backends: this node
counts a lease from the monotonic time taken before the renewal was sent, so however late the
store's answer comes back, this node's lease ends no later than the store's expiry."""

from __future__ import annotations

import time

import pytest
from postgres_server import pg_server, store_target  # noqa: F401  (fixtures: pg_server, target)

from vortex.service.channels.lease import ChannelKeeper
from vortex.service.store.channels import ChannelLeases
from vortex.service.store.jobs import JobStore
from vortex.service.store.lease import LeaseKeeper

RECIPE = {"slot_params": {"slot_id": 1, "duration_sec": 1.0, "fps": 24, "seed": 5}}
LATE_S = 0.6  # each answer comes back this late: more than the 0.05 s the comparison allows


def store_left(expires: float, store_now: float) -> float:
    """Seconds of a lease the store still grants, on the same host's clock as `time.time()`."""
    return expires - store_now


class LateJobStore(JobStore):
    """A store whose answers to renewals arrive LATE_S after it has stamped them (a slow network)."""

    def renew_lease(self, *args, **kwargs) -> bool:
        held = super().renew_lease(*args, **kwargs)
        time.sleep(LATE_S)
        return held


class LateChannelLeases(ChannelLeases):
    def renew_all(self):
        renewed = super().renew_all()
        time.sleep(LATE_S)
        return renewed


def test_a_job_lease_ends_here_no_later_than_in_the_store(target):
    store = LateJobStore(target, owner="a")
    try:
        job = store.submit(RECIPE, seed=1)[0]
        sent = time.monotonic()
        store.claim_next(lease_s=1.5)
        with LeaseKeeper(store, job.id, lease_s=1.5, sent=sent) as keeper:
            time.sleep(1.2)  # renewals sent at ~0.5 s and ~1.6 s (each answered 0.6 s late)
        # The keeper has stopped: its last renewal has come back, and nothing renews any more.
        assert not keeper.lost.is_set() and keeper.lease.valid_until > sent + 1.5  # renewed at least once
        local, stored = keeper.lease.left(), store_left(store.get(job.id).lease_expires, time.time())
        assert local <= stored + 0.05, f"this node counts {local:.2f} s left, the store {stored:.2f} s"
    finally:
        store.close()


def test_a_channel_lease_ends_here_no_later_than_in_the_store(target):
    store = JobStore(target, owner="a")
    try:
        leases = LateChannelLeases(store, "http://a", lease_s=2.0)
        keeper = ChannelKeeper(leases, 0.5, on_lost=lambda name, lease: None, on_stop=lambda name: None,
                               take=lambda row, how, sent: None, may_take=lambda: False, busy=set)
        sent = time.monotonic()
        lease = keeper.hold(leases.start("ch", {"name": "ch"}, "realtime", None), sent)
        time.sleep(0.2)
        keeper.tick()  # one renewal, answered 0.6 s late
        assert not lease.lost.is_set() and lease.valid_until > sent + 2.0
        row = leases.get("ch")
        local, stored = lease.left(), store_left(row.lease_expires, row.now)
        assert local <= stored + 0.05, f"this node counts {local:.2f} s left, the store {stored:.2f} s"
    finally:
        store.close()


def test_a_job_lease_out_of_reach_is_lost_by_the_local_clock(target):
    """The store unreachable: the keeper lets the job go once the lease, counted from before the last
    renewal that got through was sent, has run out, not a full lease after its answer."""

    class Unreachable(JobStore):
        down = False

        def renew_lease(self, *args, **kwargs) -> bool:
            if self.down:
                raise ConnectionError("store out of reach")
            return super().renew_lease(*args, **kwargs)

    store = Unreachable(target, owner="a")
    try:
        job = store.submit(RECIPE, seed=1)[0]
        sent = time.monotonic()
        store.claim_next(lease_s=1.5)
        store.down = True
        with LeaseKeeper(store, job.id, lease_s=1.5, sent=sent) as keeper:
            assert keeper.lost.wait(5)
            lost_after = time.monotonic() - sent
        assert isinstance(keeper.error, ConnectionError)
        assert 1.5 <= lost_after < 1.5 + 0.5 + 0.3, lost_after  # the first renewal round past the expiry
    finally:
        store.close()


@pytest.mark.parametrize("sent_late", [False, True])
def test_a_renewal_never_shortens_a_lease(sent_late):
    """`renewed(sent)` keeps the later of the two ends: an old renewal's answer changes nothing."""
    from vortex.service.store.lease import Lease

    now = time.monotonic()
    lease = Lease(2.0, now)
    lease.renewed(now + (1.0 if sent_late else -1.0))
    assert lease.valid_until == pytest.approx(now + (3.0 if sent_late else 2.0))
