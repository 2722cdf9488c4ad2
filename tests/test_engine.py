"""The engine's seams for a service: typed requests, a stream of events per request, callers on
any thread or event loop, cancel by request id, and a lifecycle (closed engines refuse work)."""

import asyncio
import threading
import time
from functools import partial

import pytest
from support.engines import engine_fixture, engine_of
from support.recipes import recipe as build_recipe

from vortex.config import VortexConfig
from vortex.contracts.requests import SlotEvent, SlotRequest
from vortex.errors import EngineClosed


recipe = partial(build_recipe, slot_id=4, seed=1, script="Hello there.", fps=None, voice=None,
                 prompt="portrait of a presenter")
engine = engine_fixture("cpu-miniature")  # the miniature LivePortrait path: video events, no face checks


def test_a_request_streams_typed_events_in_order(engine, tmp_path):
    events: list[SlotEvent] = []
    request = SlotRequest(recipe=recipe(), id="job-1", output=tmp_path / "a.mp4")
    result = engine.run(request, on_event=events.append)
    assert result.success, result.error_msg
    assert {e.request_id for e in events} == {"job-1"}
    kinds = [(e.kind, e.phase) for e in events]
    for phase in ("voice", "actor", "video", "verify"):
        assert ("phase_started", phase) in kinds and ("phase_done", phase) in kinds
        assert kinds.index(("phase_started", phase)) < kinds.index(("phase_done", phase))
    assert kinds.index(("phase_done", "voice")) < kinds.index(("phase_started", "video"))
    assert ("first_frame", "video") in kinds
    progress = [e.data for e in events if e.kind == "progress"]
    assert progress[-1] == {"frames": 36, "total": 36} and len(progress) == 2  # one a second of video
    assert events[-1].kind == "result" and events[-1].data["success"] is True
    assert [e.at_ms for e in events] == sorted(e.at_ms for e in events)
    assert (tmp_path / "a.mp4").exists() and result.report_path == tmp_path / "a.json"


def test_callers_on_several_threads_and_loops_are_served_one_at_a_time(engine):
    results, errors = {}, []

    def call(seed):
        try:
            results[seed] = engine.run(SlotRequest(recipe=recipe(seed=seed)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    async def on_a_loop():
        return await engine.generate_slot(recipe(seed=3))

    threads = [threading.Thread(target=call, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    from_loop = asyncio.run(on_a_loop())
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert all(r.success for r in results.values()) and from_loop.success
    spans = sorted((r.generation_time_ms, r) for r in results.values())
    assert len(spans) == 2


def test_cancel_by_request_id_stops_the_running_slot(engine):
    events: list[SlotEvent] = []

    def cancel_when_voice_starts(event: SlotEvent) -> None:
        events.append(event)
        if event.kind == "phase_started" and event.phase == "voice":
            threading.Timer(0.2, engine.cancel, args=("job-c",)).start()

    started = time.perf_counter()
    result = engine.run(SlotRequest(recipe=recipe(script="Good evening. " * 4, duration=6.0), id="job-c"),
                        on_event=cancel_when_voice_starts)
    assert not result.success and result.error_kind == "cancelled" and "cancelled" in result.error_msg
    assert time.perf_counter() - started < 20
    assert any(e.kind == "phase_failed" for e in events) and events[-1].kind == "result"
    assert engine.cancel("no-such-job") is False
    assert engine.run(SlotRequest(recipe=recipe())).success  # the next slot runs normally


def test_a_closed_engine_refuses_requests():
    cfg = VortexConfig.load(profile="cpu-miniature")
    with engine_of(cfg.with_changes({"pipeline": {"animation": "still"}})) as pipe:
        pass
    with pytest.raises(EngineClosed):
        pipe.run(SlotRequest(recipe=recipe()))
    assert pipe.dead is None


def test_a_cuda_fault_marks_the_engine_dead_so_its_owner_restarts(tmp_path):
    """A CUDA error poisons the process's context: the slot fails, and every later request is
    refused with EngineDead (an ordinary model error leaves the engine alive)."""
    from vortex.errors import EngineDead

    cfg = VortexConfig.load(profile="cpu-miniature").with_changes({"pipeline": {"animation": "still"}})
    with engine_of(cfg) as pipe:
        flux = pipe.registry.get_model("flux")
        real_generate = flux.generate

        def broken(*args, **kwargs):
            raise RuntimeError("boom")

        flux.generate = broken
        ordinary = pipe.run(SlotRequest(recipe=recipe()))
        assert not ordinary.success and ordinary.error_kind == "model" and pipe.dead is None

        def device_fault(*args, **kwargs):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

        flux.generate = device_fault
        fault = pipe.run(SlotRequest(recipe=recipe()))
        assert not fault.success and fault.error_kind == "model" and "illegal memory access" in pipe.dead
        flux.generate = real_generate
        with pytest.raises(EngineDead, match="restart the process"):
            pipe.run(SlotRequest(recipe=recipe()))
