"""Channel leases in the store, on both backends (SQLite for one node, PostgreSQL shared by nodes):
one owner at a time, renewals by term, takeover only after the lease ran out, every term recorded,
a stop asked on any node, and the store's identity for the --media marker. "Nodes" are stores
opened on one target: two connections, as two processes would hold."""

from __future__ import annotations

import threading
import time

import pytest
from postgres_server import pg_server, store_target  # noqa: F401  (fixtures: pg_server, target)

from vortex.service.store.channels import ChannelBusy, ChannelLeases
from vortex.service.store.jobs import open_store

DEF = {"name": "ch", "slots": []}


@pytest.fixture
def node(target):
    """node(name, lease_s) → the ChannelLeases of a node on the test's target."""
    stores = []

    def make(name: str, lease_s: float = 1.0) -> ChannelLeases:
        stores.append(open_store(target, owner=name))
        return ChannelLeases(stores[-1], url=f"http://{name}:8321", lease_s=lease_s)

    yield make
    for s in stores:
        s.close()


def test_one_owner_renewed_by_term_and_taken_over_only_once_its_lease_ran_out(node):
    a, b = node("a"), node("b")
    row = a.start("ch", DEF, "realtime", None)
    assert (row.owner, row.owner_url, row.term, row.state, row.leased) == ("a", "http://a:8321", 1, "on", True)
    with pytest.raises(ChannelBusy, match="running on node a"):
        b.start("ch", DEF, "realtime", None)
    assert b.take_orphan() is None  # held: nothing to take
    assert a.renew_all() == {"ch": (1, False)} and b.renew_all() == {}
    time.sleep(1.1)  # a stops renewing (dead, or stalled past its lease)
    assert a.renew_all() == {}  # a lease that ran out is never renewed back
    taken, how = b.take_orphan()
    assert (taken.owner, taken.term, how) == ("b", 2, "takeover")
    assert not a.release("ch", 1)  # a's old term matches nothing
    assert b.renew_all() == {"ch": (2, False)}
    terms = a.terms("ch")
    assert [(t.term, t.owner, t.how, t.previous_owner) for t in terms] == [(1, "a", "start", None),
                                                                           (2, "b", "takeover", "a")]
    assert terms[1].previous_expired <= terms[1].acquired and a.takeovers("ch") == 1


def test_a_release_hands_over_at_once_and_states_stick(node):
    a, b = node("a", lease_s=30), node("b", lease_s=30)
    a.start("ch", DEF, "asap", 5)
    assert a.release("ch", 1)  # a shutdown: still on, no owner
    taken, how = b.take_orphan()
    assert (taken.owner, how, taken.max_slots, taken.pace) == ("b", "resume", 5, "asap")
    assert b.release("ch", 2, state="ended")
    assert b.take_orphan() is None and a.get("ch").state == "ended"
    again = a.start("ch", DEF, "realtime", None)  # a POST continues an ended or stopped channel
    assert (again.state, again.term, again.owner) == ("on", 3, "a")


def test_a_stop_asked_on_any_node(node):
    a, b = node("a", lease_s=30), node("b", lease_s=30)
    a.start("ch", DEF, "realtime", None)
    assert b.request_stop("ch").stop_requested  # held by a: a does it at its next renewal
    assert a.renew_all() == {"ch": (1, True)}
    assert a.release("ch", 1, state="stopped")
    row = b.get("ch")
    assert (row.state, row.owner, row.stop_requested) == ("stopped", None, False)
    b.start("orphan", DEF, "realtime", None)
    b.release("orphan", 1)
    assert a.request_stop("orphan").state == "stopped"  # nobody holds it: stopped at once
    assert a.request_stop("nope") is None


def test_nodes_scanning_at_once_take_different_channels(node):
    nodes = [node(f"n{i}", lease_s=30) for i in range(4)]
    for i in range(6):
        nodes[0].adopt(f"c{i}", DEF, "realtime", None, "on")  # on, nobody holds them
    got: list[tuple[str, str]] = []
    barrier = threading.Barrier(len(nodes))

    def scan(n):
        barrier.wait()
        while (taken := n.take_orphan()) is not None:
            got.append((taken[0].name, n.owner))

    threads = [threading.Thread(target=scan, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(name for name, _ in got) == [f"c{i}" for i in range(6)]  # each exactly once
    assert {r.name: r.owner for r in nodes[0].list()} == dict(got)


def test_two_nodes_starting_one_name_at_once_get_one_owner(node):
    a, b = node("a", lease_s=30), node("b", lease_s=30)
    results: list = []
    barrier = threading.Barrier(2)

    def start(n):
        barrier.wait()
        try:
            results.append(n.start("same", DEF, "realtime", None).owner)
        except ChannelBusy as exc:
            results.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    owners = [r for r in results if isinstance(r, str)]
    assert len(owners) == 1 and len([r for r in results if isinstance(r, ChannelBusy)]) == 1
    assert a.get("same").owner == owners[0]


def test_sqlite_frees_the_dead_process_leases_and_the_identity_is_stable(target, node):
    a = node("a", lease_s=30)
    a.start("ch", DEF, "realtime", None)
    ident = a.store.identity()
    assert len(ident) == 32 and node("b").store.identity() == ident
    if a.shared:
        with pytest.raises(RuntimeError, match="one-node store"):
            a.free_all()
        return
    assert a.free_all() == ["ch"]
    assert node("restarted").take_orphan()[1] == "resume"
