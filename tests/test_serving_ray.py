"""vortex.serving on a private Ray instance: two CPU replicas of the default profile (cpu-preview).

Ray starts once for the module (a module fixture, from a thread as the service's worker starts
its engine) and is shut down at the end by the engine's close().
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import signal
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
import ray
import yaml
from ray.serve.schema import ServeDeploySchema
from support.recipes import recipe as build_recipe

from vortex.config import VortexConfig
from vortex.contracts.requests import SlotRequest
from vortex.errors import EngineClosed, EngineDead
from vortex.media import probe_mp4
from vortex.serving import AppArgs, RayEngine, RemoteResult, VortexReplica, build_app, connect, start_local
from vortex.serving.deployment import actor_options, resolve_config

ROOT = Path(__file__).resolve().parents[1]
SLOT_TIMEOUT_S = 240  # a CPU slot takes ~5-10 s; a re-run may wait for a replacement replica to load


recipe = partial(build_recipe, seed=7)  # recipe(slot_id, seed=, duration=)


@pytest.fixture(scope="module")
def engine(vortex_cache) -> RayEngine:  # after vortex_cache: the replicas inherit VORTEX_CACHE
    with ThreadPoolExecutor(1) as pool:  # not the main thread, as in `vortex serve`'s worker
        # Two requests per replica at most: four at once must then use both replicas (with the
        # profile's 4, Serve's router may put all four on one: CI saw it, stop 26).
        cfg = VortexConfig.load("cpu-preview").with_changes({"pipeline": {"max_in_flight": 2}})
        eng = pool.submit(start_local, cfg, replicas=2, health_check_period_s=1.0).result()
    yield eng
    eng.close()
    assert not ray.is_initialized()


def wait_for(predicate, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def healthy_ids(engine: RayEngine) -> set[str]:
    return {r["id"] for r in engine.replicas() if not r["closed"] and r["dead"] is None}


def test_four_concurrent_slots_run_on_two_replicas(engine, tmp_path):
    events: dict[str, list[str]] = {}

    def one(i: int):
        request = SlotRequest(recipe=recipe(100 + i, seed=10 + i), output=tmp_path / f"slot{i}.mp4")
        events[request.id] = []
        return engine.run(request, on_event=lambda ev: events[ev.request_id].append(ev.kind))

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4), timeout=SLOT_TIMEOUT_S))
    assert all(r.success for r in results), [r.error_msg for r in results]
    assert len({r.replica["id"] for r in results}) == 2
    assert len({r.replica["pid"] for r in results}) == 2
    for i, r in enumerate(results):
        assert r.seed == 10 + i and r.slot_id == 100 + i and r.proof and r.attempts == []
        assert r.output == tmp_path / f"slot{i}.mp4" and probe_mp4(r.output).n_frames == 36
        sidecar = json.loads((tmp_path / f"slot{i}.json").read_text())
        assert sidecar["replica"]["id"] == r.replica["id"] and sidecar["proof"] == r.proof
    for kinds in events.values():  # the result comes last, once the files are written here
        assert kinds[0] == "phase_started" and "first_frame" in kinds and kinds[-1] == "result"
        assert kinds.count("result") == 1


def test_kill9_mid_slot_reruns_on_another_replica_with_the_same_seed(engine, tmp_path):
    before = healthy_ids(engine)
    assert len(before) == 2
    request = SlotRequest(recipe=recipe(200, seed=4242, duration=2.0), output=tmp_path / "killed.mp4")
    rendering = threading.Event()

    def on_event(ev):
        if ev.kind == "first_frame":
            rendering.set()

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(engine.run, request, on_event)
        assert rendering.wait(SLOT_TIMEOUT_S)
        victim = engine.where(request.id)
        if not running.done():
            os.kill(victim["pid"], signal.SIGKILL)
        result = running.result(timeout=SLOT_TIMEOUT_S)
    assert result.success, result.error_msg
    assert [a["replica"]["id"] for a in result.attempts] == [victim["id"]]
    assert "Actor" in result.attempts[0]["error"] or "Replica" in result.attempts[0]["error"]
    assert result.replica["id"] != victim["id"] and result.seed == 4242
    assert json.loads((tmp_path / "killed.json").read_text())["attempts"][0]["replica"]["pid"] == victim["pid"]
    # Serve replaces the dead replica; the same request again makes the same slot, bit for bit.
    def replaced_ids():
        ids = healthy_ids(engine)
        return ids if len(ids) == 2 and victim["id"] not in ids else None

    replaced = wait_for(replaced_ids, 180, "Serve to replace the killed replica")
    assert len(replaced - before) == 1
    assert not list(Path(tempfile.gettempdir()).glob(f"vortex-replica-{victim['pid']}-*"))  # its scratch went
    again = engine.run(SlotRequest(recipe=recipe(200, seed=4242, duration=2.0), output=tmp_path / "again.mp4"))
    assert again.success and again.proof == result.proof


def test_cancel_reaches_the_replica_s_engine(engine, tmp_path):
    request = SlotRequest(recipe=recipe(300, duration=3.0), output=tmp_path / "cancelled.mp4")
    cancelled_before = sum(r["cancelled"] for r in engine.replicas())

    def on_event(ev):  # as the worker does: cancel from inside the event callback
        if ev.kind == "phase_started":
            engine.cancel(ev.request_id)

    t0 = time.monotonic()
    result = engine.run(request, on_event)
    assert result.error_kind == "cancelled" and not result.success and time.monotonic() - t0 < 30
    assert (tmp_path / "cancelled.failed.json").is_file() and not (tmp_path / "cancelled.mp4").exists()
    # The replica's handler got CancelledError and stopped its engine's slot: both replicas go idle.
    wait_for(lambda: sum(r["cancelled"] for r in engine.replicas()) == cancelled_before + 1
             and all(r["running"] == [] for r in engine.replicas()), 60, "the replica to stop the slot")
    assert not engine.cancel(request.id)  # nothing in flight any more


def test_connect_joins_the_deployed_application_and_leaves_it_running(engine):
    other = connect(name="vortex")  # Ray is up in this process: it joins it
    assert (other.profile, other.default_deadline_s) == ("cpu-preview", 120.0)
    assert len(other.replicas()) == 2
    assert other.signer is None  # it knows no identity: its channels' segments would go unsigned
    other.close()
    signing = connect(name="vortex", signing=VortexConfig.load("cpu-preview"))  # the one start_local's engine has
    assert signing.signer.identity.subject == engine.signer.identity.subject
    signing.close()
    assert len(healthy_ids(engine)) == 2


def test_a_remote_result_reads_like_a_generation_result():
    meta = {"success": True, "seed": 3, "slot_id": 1, "error_kind": None, "proof": {"frames": "ab"}}
    result = pickle.loads(pickle.dumps(RemoteResult(meta, replica={"id": "r1"})))
    assert result.success and result.seed == 3 and result.error_kind is None and result.proof == {"frames": "ab"}
    assert result.metadata() == meta and result.replica == {"id": "r1"}
    with pytest.raises(AttributeError):
        result.no_such_field


def test_health_check_reports_a_closed_or_dead_engine():
    replica = object.__new__(VortexReplica.func_or_class)
    replica.identity = {"id": "r1"}
    replica.engine = type("Engine", (), {"closed": False, "dead": None, "close": lambda self: None})()
    asyncio.run(replica.check_health())
    replica.engine.closed = True
    with pytest.raises(EngineClosed):
        asyncio.run(replica.check_health())
    replica.engine.closed, replica.engine.dead = False, "CUDA error: an illegal memory access"
    with pytest.raises(EngineDead):
        asyncio.run(replica.check_health())


def test_a_closed_engine_fails_its_health_check_and_serve_replaces_it(engine, tmp_path):
    before = healthy_ids(engine)
    assert len(before) == 2
    engine._handle.close_engine.remote().result(timeout_s=60)
    closed = {r["id"] for r in engine.replicas() if r["closed"]}
    assert len(closed) == 1
    # Slots still succeed meanwhile: the closed replica refuses them before accepting, so they go elsewhere.
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda i: engine.run(SlotRequest(recipe=recipe(400 + i))), range(2),
                                timeout=SLOT_TIMEOUT_S))
    assert all(r.success and r.replica["id"] not in closed and r.attempts == [] for r in results)
    wait_for(lambda: len(healthy_ids(engine)) == 2 and not closed & {r["id"] for r in engine.replicas()},
             180, "Serve to replace the replica whose engine is closed")


def test_the_serve_configs_validate_and_ask_for_the_right_resources():
    for name in ("serve.yaml", "serve-gpu.yaml"):
        config = ServeDeploySchema.parse_obj(yaml.safe_load((ROOT / "deploy" / name).read_text()))
        (app,) = config.applications
        assert app.import_path == "vortex.serving.app:build_app" and app.route_prefix is None
        build_app(app.args)  # the builder accepts the file's args
    cfg = VortexConfig.load("cpu-preview").with_changes({"pipeline": {"generation_timeout_sec": 30.0}})
    build_app(AppArgs(config=cfg.model_dump(mode="json"), replicas=2))  # start_local's path for a VortexConfig
    assert actor_options(cfg) == {"num_cpus": 1, "runtime_env": {"env_vars": {"MALLOC_ARENA_MAX": "2"}}}
    assert actor_options(cfg, {"VORTEX_CACHE": "/c"})["runtime_env"]["env_vars"] == {"MALLOC_ARENA_MAX": "2",
                                                                                    "VORTEX_CACHE": "/c"}
    assert actor_options(VortexConfig.load("h100"))["num_gpus"] == 1


def test_the_kubernetes_signing_secret_is_what_sign_dir_reads(tmp_path):
    """deploy/k8s: the Secret holds the files `--sign DIR` reads, the serve Deployment mounts it read-only where
    its --sign points, and a Serve app's `args.sign` gives every replica that identity (checked at build time)."""
    from vortex.provenance.keys import CHAIN_FILE, KEY_FILE, SigningKeyError, init_keys

    (secret,) = yaml.safe_load_all((ROOT / "deploy/k8s/signing-secret.yaml").read_text())
    assert secret["kind"] == "Secret" and set(secret["stringData"]) == {CHAIN_FILE, KEY_FILE, "ca.pem"}
    (deployment,) = yaml.safe_load_all((ROOT / "deploy/k8s/vortex-serve.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    sign_dir = args[args.index("--sign") + 1]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == sign_dir)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert mount["readOnly"] and volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume["secret"]["defaultMode"] == 0o400
    assert {i["path"] for i in volume["secret"]["items"]} == {CHAIN_FILE, KEY_FILE}
    assert not any("KEY" in str(e.get("value", "")) for e in container.get("env", []))  # never in the environment
    # the Secret as mounted: a folder of its files (what kubectl create secret generic --from-file makes)
    keys = tmp_path / "signing"
    init_keys(keys)
    cfg = resolve_config("cpu-preview", sign=str(keys))
    assert cfg.signing.cert_chain == str(keys / CHAIN_FILE) and cfg.signing.key == str(keys / KEY_FILE)
    build_app(AppArgs(profile="cpu-preview", replicas=2, sign=str(keys)))
    # the placeholders, applied as they are: the build stops, naming args.sign and the file, not the key
    placeholder = tmp_path / "placeholder"
    placeholder.mkdir()
    for name, text in secret["stringData"].items():
        (placeholder / name).write_text(text)
    with pytest.raises(SigningKeyError, match=r"args\.sign .*node\.pem' holds no PEM certificate chain"):
        build_app(AppArgs(profile="cpu-preview", sign=str(placeholder)))
    with pytest.raises(SigningKeyError, match="does not exist"):
        build_app(AppArgs(profile="cpu-preview", sign=str(tmp_path / "absent")))
