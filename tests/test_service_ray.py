"""`vortex serve --engine ray --replicas 2`: the same HTTP API over a local Ray Serve deployment of
two cpu-preview engines. Four slots land on two distinct replicas (each job's JSON names its
replica); kill -9 of a replica mid-slot costs no slot and Serve replaces the replica; two channels
at once play gaplessly, their slots spread over both replicas.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import httpx
import numpy as np
import pytest

from support.harness import Server, free_port
from support.recipes import short_recipe

from streams import FPS, SR, TS, decode, fetch_stream, post, wait_for

pytest.importorskip("ray", reason="needs Ray Serve (the test extra installs ray[serve])")
REPLICA_TITLE = "ray::ServeReplica:vortex:VortexReplica"  # the replica processes' title


def replica_pids() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines() if REPLICA_TITLE in line]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    from vortex.provenance.keys import init_keys

    folder = tmp_path_factory.mktemp("serve-ray-keys")
    init_keys(folder)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, keys):
    # Two requests per replica at most: with cpu-preview's 4, Serve's router may put every slot on one
    # replica (CI saw it), and the tests check that both replicas work.
    config = tmp_path_factory.mktemp("serve-ray-config") / "two-per-replica.yaml"
    config.write_text("extends: cpu-preview\nprofile: cpu-preview\npipeline: {max_in_flight: 2}\n")
    s = Server(data=tmp_path_factory.mktemp("serve-ray") / "data", port=free_port(),
               args=["--engine", "ray", "--replicas", "2", "--config", str(config), "--sign", str(keys)])
    s.data.mkdir()
    s.start()
    yield s
    code = s.terminate(timeout=120)
    assert code == 0, s.log()[-3000:]  # SIGTERM drains and shuts the deployment down
    deadline = time.monotonic() + 30
    while replica_pids() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not replica_pids(), "replicas outlived the service"


def submit_all(server: Server, n: int, duration: float, seed0: int) -> list[str]:
    ids = []
    for i in range(n):
        r = server.submit(short_recipe(slot_id=i + 1, seed=seed0 + i, duration=duration))
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    return ids


def test_four_slots_run_on_two_distinct_replicas(server):
    ids = submit_all(server, 4, 1.5, 100)
    jobs = [server.wait_state(i, {"succeeded", "failed"}, timeout=240) for i in ids]
    assert [j["state"] for j in jobs] == ["succeeded"] * 4, jobs
    replicas = {j["replica"]["id"] for j in jobs}
    assert len(replicas) == 2, [j["replica"] for j in jobs]
    assert all(j["replica"]["pid"] in replica_pids() for j in jobs)
    assert all(j["attempts"] == 1 for j in jobs)
    # the replicas signed the MP4s with the node's key (--sign reaches them in the config)
    r = httpx.post(server.url + "/v1/verify", files={"job": (None, ids[0])}, timeout=120)
    assert r.status_code == 200 and r.json()["verdict"] == "verified", r.text


def test_kill9_of_a_replica_mid_slot_costs_no_slot(server):
    before = sorted(replica_pids())
    assert len(before) == 2
    ids = submit_all(server, 2, 5.0, 200)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # both replicas busy, neither near its end (verify)
        jobs = [server.job(i) for i in ids]
        if all(j["state"] == "running" for j in jobs) and any(j["phase"] in ("video", "speech_check") for j in jobs):
            break
        time.sleep(0.1)
    assert all(j["state"] == "running" and j["phase"] != "verify" for j in jobs), jobs
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    jobs = [server.wait_state(i, {"succeeded", "failed"}, timeout=240) for i in ids]
    assert [j["state"] for j in jobs] == ["succeeded"] * 2, jobs
    assert all(j["replica"]["pid"] != victim for j in jobs), jobs  # the lost attempt ran again elsewhere
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (len(replica_pids()) < 2 or victim in replica_pids()):
        time.sleep(0.5)
    after = replica_pids()
    assert len(after) == 2 and victim not in after, (before, after)  # Serve replaced it
    (job,) = [server.wait_state(i, {"succeeded"}, timeout=240) for i in submit_all(server, 1, 1.5, 300)]
    assert job["replica"]["pid"] in after


def both_replicas_serving(server: Server, timeout: float = 180.0) -> None:
    """Two jobs at once until they run on two replicas: the replica Serve made after the kill above
    loads its models before it takes requests, and until then the router sends everything to the other
    (CI at f6273f3: both channels' slots on one replica, the test right after the kill)."""
    deadline, seed = time.monotonic() + timeout, 400
    while time.monotonic() < deadline:
        jobs = [server.wait_state(i, {"succeeded"}, timeout=240) for i in submit_all(server, 2, 1.5, seed)]
        if len({j["replica"]["id"] for j in jobs}) == 2:
            return
        seed += 2
    raise AssertionError(f"two jobs at once never ran on two replicas within {timeout:.0f} s")


def test_two_channels_on_two_replicas_play_gaplessly(server, tmp_path, keys):
    from vortex.provenance.verify import VerifyOptions, verify_target

    both_replicas_serving(server)
    for name, seed in (("ray-a", 10), ("ray-b", 20)):
        # two slots in flight a channel: four requests against two a replica, so both replicas must take
        # some (with the default of one in flight two requests fit one replica: CI saw it at 031de5e)
        body = {"name": name, "loop": True, "lookahead": 2, "slots_in_flight": 2,
                "slots": [{"recipe": short_recipe(slot_id=1, seed=seed, duration=1.5, script="Good evening.")},
                          {"recipe": short_recipe(slot_id=2, seed=seed + 1, duration=1.7, script="Sunny today.")}]}
        assert post(server, body, pace="asap", max_slots=3).status_code == 201
    replicas = set()
    for name in ("ray-a", "ray-b"):
        done = wait_for(server, name, lambda s: s["status"] == "ended", timeout=300)
        assert done["counts"]["aired"] == 3, done
        replicas |= {a["replica"] for s in done["recent"] for a in s["attempts"]}
        text, _ = fetch_stream(server, name, tmp_path / name)
        assert text.rstrip().endswith("#EXT-X-ENDLIST")
        # every aired segment carries its signed manifest, though the slots were made on the replicas
        report = verify_target(f"{server.url}/v1/channels/{name}/index.m3u8", VerifyOptions(trust=keys / "ca.pem"))
        assert report["verdict"] == "verified" and report["credentials"]["segments"] >= 2, report["reasons"]
        vpts, apts, pcm, priming, _ = decode(tmp_path / name)
        total = 36 + 41 + 36
        assert len(vpts) == total
        assert set(np.diff(vpts)) == {TS // FPS} and set(np.diff(apts)) == {1024 * TS // SR}
        assert priming == 1024 and total * SR // FPS <= pcm.size - priming < total * SR // FPS + 1024
    assert len(replicas - {None}) == 2, replicas  # the two channels' slots ran on both replicas
    metrics = httpx.get(server.url + "/metrics", timeout=30).text
    assert "PRIVATE KEY" not in metrics and "PRIVATE KEY" not in server.log()  # the key reaches no log or metric
    assert 'vortex_channel_slots_total{channel="ray-b",decision="aired"} 3.0' in metrics
    assert json.loads(httpx.get(server.url + "/readyz", timeout=30).text)["ready"]
