"""The job store's transitions and the event hub's bounds, in-process (milliseconds; no engine)."""

from __future__ import annotations

import asyncio
import sqlite3

from vortex.service.events import END, EventHub
from vortex.service.store.jobs import JobStore

RECIPE = {"slot_params": {"slot_id": 1, "duration_sec": 1.0, "fps": 24, "seed": 5}}


def test_jobs_run_in_submission_order_and_finish_once(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    ids = [store.submit(RECIPE, seed=i)[0].id for i in range(3)]
    first = store.claim_next()
    assert (first.id, first.state, first.attempts) == (ids[0], "running", 1)
    assert store.finish(first.id, "succeeded", proof={"proof_sha256": "ab"})
    assert not store.finish(first.id, "failed")  # a finished job cannot finish again
    assert store.get(first.id).state == "succeeded"
    assert [store.claim_next().id, store.claim_next().id, store.claim_next()] == [ids[1], ids[2], None]
    assert [j.id for j in store.list(limit=2)] == [ids[2], ids[1]]  # newest first
    assert store.counts() == {"queued": 0, "running": 2, "succeeded": 1, "failed": 0, "cancelled": 0}
    assert sqlite3.connect(tmp_path / "jobs.sqlite3").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_recover_requeues_the_running_job_as_a_second_attempt(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    a = store.submit(RECIPE, seed=1)[0]
    b = store.submit(RECIPE, seed=2)[0]
    store.claim_next(), store.claim_next()
    assert store.cancel(b.id) == "running"  # a cancel asked for before the crash is honoured after it
    store.close()

    store = JobStore(tmp_path / "jobs.sqlite3")  # the next process
    assert store.recover() == [a.id]
    assert (store.get(b.id).state, store.get(b.id).error["kind"]) == ("cancelled", "cancelled")
    again = store.claim_next()
    assert (again.id, again.attempts, again.seed) == (a.id, 2, 1)


def test_idempotency_key_and_cancel_rules(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    job, created = store.submit(RECIPE, seed=1, idem_key="k")
    same, created_again = store.submit(RECIPE, seed=99, idem_key="k")
    assert created and not created_again and same.id == job.id and same.seed == 1
    assert store.cancel(job.id) == "queued" and store.get(job.id).state == "cancelled"
    assert store.cancel(job.id) == "cancelled" and store.cancel("nope") is None
    assert store.claim_next() is None  # a cancelled job is never claimed


def test_event_history_is_bounded_and_replayed_to_late_subscribers():
    hub = EventHub(keep_finished=2)

    async def scenario():
        for f in range(100):  # a slot's progress events collapse to the last one
            hub.publish("a", "progress", {"frames": f})
        hub.publish("a", END, {"state": "succeeded"})
        history, _queue, ended = hub.subscribe("a")
        assert ended and [e.kind for e in history] == ["progress", END] and history[0].data == {"frames": 99}
        _, queue, ended = hub.subscribe("b")
        assert not ended
        hub.publish("b", "phase_started", {"phase": "voice"})
        got = await asyncio.wait_for(queue.get(), 1)
        assert (got.id, got.kind) == (1, "phase_started")
        hub.unsubscribe("a", _queue)

    asyncio.run(scenario())
    for job in ("c", "d", "e"):
        hub.publish(job, END, {})
    assert hub.last_progress("a") is None  # only the last 2 finished jobs keep their history
