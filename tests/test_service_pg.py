"""Two `vortex serve` nodes (real processes, real cpu-preview engines) on one PostgreSQL job store
(`--db postgresql://…`, a fresh schema): either node takes the queued jobs; kill -9 of the node
running a slot hands the job to the other once its lease runs out (30 s), as attempt 2, with the
proof the first attempt would have given.
"""

from __future__ import annotations

import pytest

from support.harness import Server, free_port, start_all
from support.recipes import short_recipe

from postgres_server import fresh_schema, pg_server  # noqa: F401 - the fixture


@pytest.fixture
def two_nodes(pg_server, tmp_path):  # noqa: F811
    with fresh_schema(pg_server) as url:
        nodes = [Server(data=tmp_path / f"node{i}", port=free_port(), args=["--db", url]) for i in (1, 2)]
        try:
            start_all(nodes)
            yield nodes
        finally:
            for n in nodes:
                n.stop()


def test_a_job_whose_node_died_is_finished_by_the_other(two_nodes):
    a, b = two_nodes
    reference = a.submit(short_recipe(slot_id=1, seed=42, duration=1.5)).json()
    done = a.wait_state(reference["id"], {"succeeded"}, timeout=120)
    assert b.job(reference["id"])["state"] == "succeeded"  # one store: both nodes see every job

    job = b.submit(short_recipe(slot_id=2, seed=42, duration=4.0)).json()
    running = a.wait_state(job["id"], {"running"}, timeout=60, phases={"video", "speech_check"})
    victim = next(n for n in two_nodes if running["node"].endswith(f":{n.proc.pid}"))
    survivor = b if victim is a else a
    victim.kill9()
    finished = survivor.wait_state(job["id"], {"succeeded"}, timeout=150)  # lease 30 s, reclaim every 15 s
    assert finished["attempts"] == 2
    assert finished["replica"]["pid"] == survivor.proc.pid
    assert finished["seed"] == done["seed"] == 42
