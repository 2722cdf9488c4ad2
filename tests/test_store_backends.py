"""The job store's contract on both backends: SQLite (one node) and PostgreSQL (shared by nodes).

Each test gets its own SQLite file or its own PostgreSQL schema. "Two nodes" are two stores on the
same target: two connections, as two processes would hold.
"""

from __future__ import annotations

import threading
import time

import pytest
from postgres_server import fresh_schema, pg_server, store_target  # noqa: F401  (fixtures: pg_server, target)

from vortex.service.store.jobs import JobStore, open_store
from vortex.service.store.postgres import PostgresBackend
from vortex.service.store.schema import MIGRATIONS, SCHEMA_VERSION, StoreVersionError
from vortex.service.store.sqlite import SqliteBackend

RECIPE = {"slot_params": {"slot_id": 1, "duration_sec": 1.0, "fps": 24, "seed": 5}}


@pytest.fixture
def opener(target):
    """open_(owner=…) → a new store (a new connection) on the test's target; all closed afterwards."""
    stores = []

    def open_(**kw) -> JobStore:
        stores.append(open_store(target, **kw))
        return stores[-1]

    yield open_
    for store in stores:
        store.close()


def _raw(target):
    return PostgresBackend(target) if isinstance(target, str) else SqliteBackend(target)


def test_claims_follow_submission_order_and_only_a_running_job_finishes(opener):
    store = opener(owner="a")
    ids = [store.submit(RECIPE, seed=i)[0].id for i in range(3)]
    first = store.claim_next()
    assert (first.id, first.state, first.attempts, first.lease_owner) == (ids[0], "running", 1, "a")
    assert first.lease_expires == pytest.approx(time.time() + 30, abs=5)
    assert not store.finish(ids[1], "succeeded")  # queued: not running, cannot finish
    assert store.finish(first.id, "succeeded", proof={"proof_sha256": "ab"})
    assert not store.finish(first.id, "failed")  # it cannot finish twice
    done = store.get(first.id)
    assert (done.state, done.proof, done.lease_expires) == ("succeeded", {"proof_sha256": "ab"}, None)
    assert [store.claim_next().id, store.claim_next().id, store.claim_next()] == [ids[1], ids[2], None]
    assert [j.id for j in store.list(limit=2)] == [ids[2], ids[1]]  # newest first
    assert [j.id for j in store.list("succeeded")] == [ids[0]]
    assert store.counts() == {"queued": 0, "running": 2, "succeeded": 1, "failed": 0, "cancelled": 0}
    assert store.set_replica(ids[1], "replica-0") and not store.set_replica("nope", "replica-0")
    assert store.get(ids[1]).replica == "replica-0"
    with pytest.raises(ValueError, match="finishes as one of"):
        store.finish(ids[1], "running")


def test_idempotency_key_and_cancel_rules(opener):
    store, other = opener(), opener()
    job, created = store.submit(RECIPE, seed=1, idem_key="k")
    same, created_again = other.submit(RECIPE, seed=99, idem_key="k")  # another node, the same key
    assert created and not created_again and same.id == job.id and same.seed == 1
    assert store.cancel(job.id) == "queued" and other.get(job.id).state == "cancelled"
    assert store.cancel(job.id) == "cancelled" and store.cancel("nope") is None
    assert store.claim_next() is None  # a cancelled job is never claimed
    running = store.submit(RECIPE, seed=2)[0]
    store.claim_next()
    assert other.cancel(running.id) == "running" and store.get(running.id).cancel_requested


def test_the_same_idempotency_key_from_many_nodes_at_once_makes_one_job(opener):
    stores = [opener() for _ in range(4)]
    start, got = threading.Barrier(len(stores)), []

    def submit(store):
        start.wait()
        got.append(store.submit(RECIPE, seed=1, idem_key="once"))

    _run_all([threading.Thread(target=submit, args=(s,)) for s in stores])
    assert len({job.id for job, _ in got}) == 1 and sum(created for _, created in got) == 1
    assert stores[0].counts()["queued"] == 1


def _run_all(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)


def test_concurrent_claimers_never_get_the_same_job(opener):
    """Four nodes (own connections) and two threads sharing one node's store, all claiming and
    finishing at once: every job is claimed exactly once and finishes exactly once."""
    ids = [opener().submit(RECIPE, seed=i)[0].id for i in range(60)]
    nodes = [opener(owner=f"node{i}") for i in range(4)]
    claimers = [(n, n.owner) for n in nodes] + [(nodes[0], "node0-b")]
    start, claimed, errors = threading.Barrier(len(claimers)), [], []

    def claim(store, owner):
        try:
            start.wait()
            while (job := store.claim_next(owner=owner)) is not None:
                claimed.append(job.id)
                assert job.attempts == 1 and job.lease_owner == owner
                assert store.finish(job.id, "succeeded", owner=owner)
        except BaseException as exc:  # an assertion in a thread: report it in the test
            errors.append(exc)

    _run_all([threading.Thread(target=claim, args=c) for c in claimers])
    assert not errors, errors
    assert sorted(claimed) == sorted(ids)  # each once, none lost
    assert nodes[1].counts()["succeeded"] == 60


def test_an_expired_lease_is_reclaimed_and_claimed_by_another_node_as_attempt_2(opener):
    a, b = opener(owner="a"), opener(owner="b")
    job = a.submit(RECIPE, seed=7)[0]
    claimed = a.claim_next(lease_s=30)
    assert a.renew_lease(job.id, lease_s=60)  # a live holder keeps its job
    renewed = a.get(job.id).lease_expires
    assert renewed == pytest.approx(time.time() + 60, abs=5) and not b.renew_lease(job.id)  # not b's lease
    assert b.reclaim_expired(now=renewed - 1) == []  # not yet expired: never another live node's job
    assert b.claim_next() is None
    assert b.reclaim_expired(now=renewed + 1) == [job.id]  # a died: its lease ran out
    assert a.get(job.id).state == "queued"
    again = b.claim_next()
    assert (again.id, again.attempts, again.lease_owner, again.seed) == (job.id, 2, "b", claimed.seed)
    assert not a.renew_lease(job.id)  # a's lease is lost: it must stop, and cannot finish the job
    assert not a.finish(job.id, "succeeded", owner="a") and not a.requeue(job.id, owner="a")
    assert b.renew_lease(job.id) and b.finish(job.id, "succeeded", owner="b")
    assert not b.renew_lease(job.id)  # finished: nothing to hold
    with pytest.raises(ValueError, match="lease_s must be a positive"):
        b.claim_next(lease_s=0)


def test_a_dead_holders_cancelled_job_is_cancelled_not_requeued(opener):
    store = opener(owner="a")
    job = store.submit(RECIPE, seed=1)[0]
    store.claim_next(lease_s=5)
    store.cancel(job.id)
    assert store.reclaim_expired(now=time.time() + 10) == []
    assert (store.get(job.id).state, store.get(job.id).error["kind"]) == ("cancelled", "cancelled")


def test_recover_on_start_takes_back_only_what_no_live_node_holds(opener):
    """SQLite: one process per file, so every running job was the dead process's. Shared store:
    the restarting node's own jobs and expired ones; another live node's job stays running."""
    a, b = opener(owner="a"), opener(owner="b")
    mine, theirs, stale = (a.submit(RECIPE, seed=i)[0].id for i in range(3))
    a.claim_next(), b.claim_next(lease_s=600), b.claim_next(owner="dead", lease_s=0.01)
    time.sleep(0.05)
    restarted = opener(owner="a")  # node a, started again under its own name
    if restarted.shared:
        assert restarted.recover("a") == [mine, stale]
        assert restarted.get(theirs).state == "running" and b.renew_lease(theirs)
    else:
        assert restarted.recover() == [mine, theirs, stale]


def test_the_schema_version_is_recorded_and_a_newer_store_is_refused(target, opener):
    store = opener()
    assert store.schema_version == SCHEMA_VERSION == 3
    store.close()
    assert opener().schema_version == SCHEMA_VERSION  # reopening migrates nothing
    raw = _raw(target)
    with raw.transaction() as tx:
        assert [r["version"] for r in tx.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2, 3]
        tx.execute("INSERT INTO schema_version (version, applied) VALUES (?, ?)", (SCHEMA_VERSION + 1, time.time()))
    raw.close()
    with pytest.raises(StoreVersionError, match=r"schema version 4, newer than this Vortex reads \(versions 1 to 3\)"):
        opener()


def test_a_version_1_store_is_migrated_with_its_jobs(target, opener):
    """Version 1: the store before schema_version and leases (the SQLite files already in use)."""
    raw = _raw(target)
    with raw.transaction() as tx:
        for statement in MIGRATIONS[1]:
            tx.execute(statement.format(**raw.types))
        tx.execute("INSERT INTO jobs (id, state, created, recipe, seed) VALUES ('old', 'queued', ?, '{}', 3)",
                   (time.time(),))
    raw.close()
    store = opener(owner="a")
    assert store.schema_version == SCHEMA_VERSION  # migrated through 2 and 3
    old = store.get("old")
    assert (old.state, old.seed, old.lease_owner, old.replica) == ("queued", 3, None, None)
    claimed = store.claim_next()
    assert (claimed.id, claimed.lease_owner) == ("old", "a")


def test_nodes_starting_at_once_create_the_schema_once(opener):
    start, stores, errors = threading.Barrier(4), [], []

    def open_():
        start.wait()
        try:
            stores.append(opener())
        except BaseException as exc:
            errors.append(exc)

    _run_all([threading.Thread(target=open_) for _ in range(4)])
    assert not errors, errors
    assert {s.schema_version for s in stores} == {SCHEMA_VERSION}


def test_postgres_claim_skips_a_row_another_node_has_locked(pg_server):  # noqa: F811
    """FOR UPDATE SKIP LOCKED: a node mid-claim on the oldest job neither blocks another node nor
    hands it the same job."""
    import psycopg

    with fresh_schema(pg_server) as url:
        store = open_store(url, owner="b")
        with store.backend.transaction() as tx:  # a claim that waited on the lock would fail, not hang
            tx.execute("SET lock_timeout = '2s'")
        first, second = (store.submit(RECIPE, seed=i)[0].id for i in range(2))
        with psycopg.connect(url) as other:  # a transaction left open, holding the first job's row
            other.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (first,))
            began = time.monotonic()
            assert store.claim_next().id == second
            assert time.monotonic() - began < 2  # passed over, not waited on
            other.rollback()
        assert store.claim_next().id == first
        store.close()


def test_open_store_takes_a_file_path_and_refuses_other_urls(tmp_path):
    sqlite = open_store(str(tmp_path / "a" / "jobs.sqlite3"))
    assert (sqlite.backend.name, sqlite.shared, sqlite.path) == ("sqlite", False, tmp_path / "a" / "jobs.sqlite3")
    sqlite.close()
    with pytest.raises(ValueError, match=r"'mysql://u:\*\*\*@h/db': not a store this Vortex opens; give a postgres"):
        open_store("mysql://u:secret@h/db")
    with pytest.raises(ConnectionError, match=r"cannot reach the job store at postgresql://u:\*\*\*@127.0.0.1:1/x"):
        open_store("postgresql://u:secret@127.0.0.1:1/x")


def test_open_store_takes_postgres_urls(pg_server):  # noqa: F811
    with fresh_schema(pg_server) as url:
        for scheme in ("postgresql://", "postgres://"):
            pg = open_store(scheme + url.split("://", 1)[1])
            assert (pg.backend.name, pg.shared, pg.path) == ("postgresql", True, None)
            pg.close()


def test_the_lease_keeper_holds_a_long_job_and_notices_its_loss(opener):
    from vortex.service.store.lease import LeaseKeeper

    a, b = opener(owner="a"), opener(owner="b")
    job = a.submit(RECIPE, seed=1)[0]
    a.claim_next(lease_s=1.5)  # renewed every 0.5 s: a busy CI machine would have to stall 1.5 s to lose it
    lost = threading.Event()
    with LeaseKeeper(a, job.id, lease_s=1.5, on_lost=lost.set) as lease:
        time.sleep(2)  # longer than the lease: only the renewals keep it
        assert b.reclaim_expired() == [] and not lease.lost.is_set()
        assert b.reclaim_expired(now=time.time() + 5) == [job.id]  # as if a had stalled for 5 s
        assert lost.wait(5) and lease.lost.is_set()
    assert b.claim_next().lease_owner == "b" and not a.finish(job.id, "succeeded", owner="a")
