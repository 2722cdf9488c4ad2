"""Streamed slots on the default profile (real Kokoro speech, the preview animator, the real checks):
the same media and proof however the stream falls, events as media appear, nothing published by a
cancelled or failing slot, and a channel's slot ahead of a running job."""

from __future__ import annotations

import json
import threading
from functools import partial

import numpy as np
from support.engines import engine_fixture, engine_of
from support.recipes import recipe as build_recipe

from vortex.contracts.requests import Priority, SlotEvent, SlotRequest
from vortex.engine.sinks import ArraySink
from vortex.media import probe_mp4

THREE_SENTENCES = "Good evening, and welcome to the news. Tonight the weather turns. Stay with us."


recipe = partial(build_recipe, slot_id=3, seed=21, duration=5.0, script=THREE_SENTENCES, voice="anchor",
                 prompt="portrait of a news anchor")
engine = engine_fixture()  # the embedded default: cpu-preview


def test_streamed_and_whole_phase_runs_give_the_same_media_and_proof(engine, tmp_path):
    """The whole speech before the first frame, and frames rendered 5 at a time instead of 8: the
    same frames, samples and proof as the streamed slot."""
    whole_cfg = engine.config.with_changes({"pipeline": {"streaming": False}, "buffers": {"video": {"ring_frames": 5}}})
    with engine_of(whole_cfg, registry=engine.registry) as whole:  # the same loaded models
        streamed_events: list[SlotEvent] = []
        a = engine.run(SlotRequest(recipe=recipe(), output=tmp_path / "a.mp4"), on_event=streamed_events.append)
        whole_events: list[SlotEvent] = []
        b = whole.run(SlotRequest(recipe=recipe(), output=tmp_path / "b.mp4"), on_event=whole_events.append)
    assert a.success and b.success, (a.error_msg, b.error_msg)
    assert a.proof == b.proof
    assert (a.n_frames, len(a.audio_waveform)) == (b.n_frames, len(b.audio_waveform)) == (120, 120_000)
    info = probe_mp4(tmp_path / "a.mp4")
    assert (info.n_frames, info.n_audio_samples) == (120, 120_000)

    def at(events: list[SlotEvent], kind: str, phase: str | None = None) -> float:
        return next(e.at_ms for e in events if e.kind == kind and (phase is None or e.phase == phase))

    # Streamed, the first frame comes before the last sentence is spoken; whole, after it.
    chunks = [e for e in streamed_events if e.kind == "chunk"]
    assert [c.data["sentence"] for c in chunks] == [0, 0, 1, 2]  # the first cut after its comma (bounded)
    assert at(streamed_events, "first_audio") <= at(streamed_events, "first_frame") < chunks[-1].at_ms
    assert at(whole_events, "first_frame") > at(whole_events, "phase_done", "voice")
    heard = [e.data for e in streamed_events if e.kind == "chunk_checked"]
    assert heard and all(h["passed"] for h in heard) and sorted(s for h in heard for s in h["sentences"]) == [0, 1, 2]
    assert a.first_audio_ms < a.first_frame_ms < a.generation_time_ms
    assert [c["sentence"] for c in a.chunks] == [0, 0, 1, 2]


def test_cancel_mid_stream_publishes_nothing_and_leaves_no_temporaries(engine, tmp_path):
    out = tmp_path / "cut.mp4"
    sink = ArraySink()
    request = SlotRequest(recipe=recipe(duration=8.0), id="cut-1", output=out, sinks=(sink,))

    def cancel_at_first_frame(event: SlotEvent) -> None:
        if event.kind == "first_frame":
            engine.cancel("cut-1")

    result = engine.run(request, on_event=cancel_at_first_frame)
    assert not result.success and result.error_kind == "cancelled"
    assert sink.frames is None  # the caller's sink was aborted too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.failed.json"]
    assert engine.run(SlotRequest(recipe=recipe(script="Good evening.", duration=1.5))).success  # the engine goes on


def test_speech_that_lost_a_sentence_fails_after_its_frames_streamed(engine, tmp_path, monkeypatch):
    """The middle sentence comes out silent: the slot's WER stays under 0.7, but that sentence's own
    WER is 1, so the slot fails its checks after its frames went into the sinks: no MP4."""
    voice = engine.components.voice
    speak = voice.speak

    def lose_sentence_one(plan, index, **call):  # seed, wide, handle: as the engine calls it
        chunk = speak(plan, index, **call)
        if chunk.sentence == 1:
            object.__setattr__(chunk, "audio", np.zeros_like(chunk.audio))
        return chunk

    monkeypatch.setattr(voice, "speak", lose_sentence_one)
    script = ("Good evening, and welcome back to the late news hour. Tonight the weather turns cold. "
              "Schools across the valley will stay open on Friday, the council said.")
    events: list[SlotEvent] = []
    sink = ArraySink()
    out = tmp_path / "lost.mp4"
    result = engine.run(SlotRequest(recipe=recipe(script=script, duration=10.0), output=out, sinks=(sink,)),
                        on_event=events.append)
    assert not result.success and result.error_kind == "verification" and result.failed_phase == "verify"
    speech = result.verification.speech
    assert speech.wer <= speech.max_wer  # the slot as a whole would have passed
    lost = [u for u in speech.sentences if not u["passed"]]
    assert [u["sentences"] for u in lost] == [[1]] and lost[0]["wer"] > speech.max_sentence_wer
    assert "sentence 1 has word error rate" in result.error_msg
    assert any(e.kind == "first_frame" for e in events)  # frames had streamed
    assert not out.exists() and sink.frames is None
    meta = json.loads(out.with_name("lost.failed.json").read_text())
    assert meta["error_kind"] == "verification"


def test_a_channel_slot_goes_ahead_of_a_running_job_which_pauses_and_succeeds(engine):
    job_events: list[SlotEvent] = []
    job_script = " ".join(["The long report goes on about the harbour and the boats."] * 3)
    job = SlotRequest(recipe=recipe(script=job_script, duration=14.0), id="job-long", priority=Priority.JOB)
    results: dict[str, object] = {}
    started = threading.Event()

    def on_job(event: SlotEvent) -> None:
        job_events.append(event)
        if event.kind == "first_frame":
            started.set()

    runner = threading.Thread(target=lambda: results.__setitem__("job", engine.run(job, on_event=on_job)))
    runner.start()
    assert started.wait(120), "the job never made its first frame"
    channel = SlotRequest(recipe=recipe(script="Breaking news from the harbour.", duration=3.0, seed=5),
                          id="channel-slot", priority=Priority.CHANNEL, deadline_s=60.0)
    channel_result = engine.run(channel)
    job_still_running = runner.is_alive()
    runner.join(300)
    job_result = results["job"]
    assert channel_result.success, channel_result.error_msg
    assert job_still_running  # the channel's slot did not wait for the job's whole slot
    assert job_result.success, job_result.error_msg
    assert job_result.timings_ms.get("paused", 0.0) > 0  # the job waited between chunks; it was not failed
    assert job_result.priority == "job" and channel_result.priority == "channel"


def test_a_channel_fills_a_slot_whose_speech_check_fails_after_it_streamed(engine, tmp_path):
    """A sentence of made-up words: its frames stream, then its own WER (1.0) fails the slot although
    the slot's WER is under 0.7. No MP4 is published, and the channel airs its filler instead."""
    from vortex.channel.definition import ChannelDefinition
    from vortex.channel.scheduler import ChannelRunner, RunOptions

    made_up = {"slot_params": {"slot_id": 1, "duration_sec": 6.0, "fps": 24, "seed": 3},
               "audio_track": {"script": "Good evening and welcome to the show. Zorblax quindrel fesh mordok plith wugga.",
                               "voice_id": "anchor"},
               "visual_track": {"prompt": "portrait of a news anchor"}}
    definition = ChannelDefinition.from_dict({"name": "checked", "loop": False, "lookahead": 1, "max_attempts": 1,
                                              "filler": {"policy": "standby"}, "slots": [{"recipe": made_up}]},
                                             source="test")
    v = engine.config.buffers.video
    out = tmp_path / "channel"
    runner = ChannelRunner(definition, engine, RunOptions(out=out, width=v.width, height=v.height, sample_rate=24000,
                                                          pace="asap", max_slots=1),
                           engine.config.pipeline.generation_timeout_sec, say=lambda line: None)
    state = runner.run()
    record = state.slots[0]
    assert record.decision == "filler:standby"
    assert [a.outcome for a in record.attempts] == ["failed"] and record.attempts[0].error_kind == "verification"
    assert "sentence 1 has word error rate" in record.attempts[0].error
    assert not any(out.glob("slots/*.mp4"))


def test_a_live_request_judges_each_chunk_while_the_next_is_made(engine):
    """At live priority every sentence is heard in its own window (4 words at least) and one frame of
    each chunk is identity-checked as it passes: a delay line knows each chunk's verdict before the
    slot ends, and the made-up sentence's chunk airs as the stand-by card."""
    from vortex.channel.delay import DelayLine

    card = np.zeros((512, 512, 3), np.uint8)
    line = DelayLine(card)
    events: list[SlotEvent] = []

    def on_event(event: SlotEvent) -> None:
        events.append(event)
        line.on_event(event)

    script = "Breaking news from the harbour tonight. Zorblax quindrel fesh mordok plith wugga. The ferry is safe."
    result = engine.run(SlotRequest(recipe=recipe(script=script, duration=9.0), priority=Priority.LIVE, sinks=(line,)),
                        on_event=on_event)
    kinds = [e.kind for e in events]
    checked = [e.data for e in events if e.kind == "chunk_checked"]
    assert [c["sentences"] for c in checked] == [[0], [1], [2]]
    assert kinds.count("frame_checked") == 4  # one per chunk: the first sentence is spoken in two (bounded)
    first_verdict = kinds.index("chunk_checked")
    assert first_verdict < len(kinds) - 1 - kinds[::-1].index("progress")  # before the last frame
    assert not result.success and result.error_kind == "verification"  # the made-up sentence fails the slot
    released = line.take(10_000)
    assert len(released.frames) == result.n_frames and released.replaced == [2]
    assert [c["state"] for c in line.status()] == ["aired", "aired", "replaced", "aired"]
