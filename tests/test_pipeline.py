"""End to end on the cpu-miniature profile (the miniature LivePortrait path kept running): real Kokoro speech (int8 ONNX), miniature Flux and
CLIP through their real loaders, the still video track, MP4 output, deadlines and cancellation."""

import asyncio
import json
from functools import partial

import numpy as np
import pytest
from PIL import Image
from support.engines import engine_fixture, engine_of
from support.recipes import short_recipe

from vortex.config import VortexConfig
from vortex.errors import PlanOverBudgetError
from vortex.media import probe_mp4
from vortex.memory.plan import compute_plan


recipe = partial(short_recipe, slot_id=5, seed=7, script="Hello there.", prompt="portrait of a news anchor")
pipeline = engine_fixture("cpu-miniature", name="pipeline")


def test_slot_has_exact_counts_and_a_playable_mp4(pipeline, tmp_path):
    out = tmp_path / "slot.mp4"
    result = pipeline.generate_slot_sync(recipe(duration=1.5), output=out, keep_frames=True)
    assert result.success, result.error_msg
    assert result.video_frames.shape == (36, 512, 512, 3) and result.video_frames.dtype == np.uint8
    assert result.audio_waveform.shape == (36000,) and result.audio_waveform.dtype == np.float32
    assert result.animation == "liveportrait"
    assert result.clip_embedding.shape == (512,) and abs(np.linalg.norm(result.clip_embedding) - 1) < 1e-4
    assert set(result.timings_ms) == {"voice", "motion", "actor", "source", "video", "verify"}
    assert result.verification.identity is not None and result.first_frame_ms < result.generation_time_ms

    info = probe_mp4(out)
    assert (info.n_frames, info.n_audio_samples, info.width, info.height) == (36, 36000, 512, 512)
    assert info.video_codec == "h264" and info.pix_fmt == "yuv420p" and info.audio_codec == "aac" and info.faststart

    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["profile"] == "cpu-miniature" and set(meta["stand_ins"]) == {"flux", "clip_b", "clip_l", "liveportrait"}
    assert meta["verification"]["enforced"] is False and meta["proof"]["proof_sha256"] == result.proof["proof_sha256"]
    assert not list(tmp_path.glob(".*partial*"))  # nothing half-written left behind


def test_speech_is_real_and_fitted(pipeline):
    result = pipeline.generate_slot_sync(recipe(duration=2.0, script="Good evening, and welcome."))
    wave = result.audio_waveform
    speech = result.speech["speech_samples"]
    assert 0 < speech <= 48000 and result.speech["padding_samples"] == 48000 - speech
    rms = float(np.sqrt(np.mean(wave[:speech] ** 2)))
    assert rms > 0.02  # speech, not silence or a constant
    assert np.all(wave[speech:] == 0)  # short speech is padded with silence


def test_same_seed_same_proof_other_seed_other_frames(pipeline):
    a = pipeline.generate_slot_sync(recipe(seed=3))
    b = pipeline.generate_slot_sync(recipe(seed=3))
    c = pipeline.generate_slot_sync(recipe(seed=4))
    assert a.proof == b.proof
    assert c.proof["frames_sha256"] != a.proof["frames_sha256"]
    assert c.proof["proof_sha256"] != a.proof["proof_sha256"]


def test_voice_and_actor_really_overlap(pipeline):
    result = pipeline.generate_slot_sync(recipe(duration=2.0, script="We overlap the voice and the actor."))
    (v0, v1), (a0, a1) = result.spans_ms["voice"], result.spans_ms["actor"]
    assert v0 < a1 and a0 < v1, result.spans_ms  # both were running at once
    # Frames wait for the portrait and the first chunk; with the first chunk bounded ("We overlap"
    # is spoken alone) they start while the rest of the voice is still being made.
    assert result.spans_ms["video"][0] >= max(a1, result.first_audio_ms)


def test_missed_deadline_fails_with_its_phase_then_next_slot_runs(pipeline, tmp_path):
    out = tmp_path / "late.mp4"
    late = pipeline.generate_slot_sync(recipe(), deadline=0.05, output=out)
    assert not late.success and "deadline" in late.error_msg
    assert late.failed_phase in {"voice+actor", "voice", "actor"}
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert json.loads((tmp_path / "late.failed.json").read_text())["failed_phase"] == late.failed_phase
    assert pipeline.generate_slot_sync(recipe()).success


def test_outside_cancellation_raises_then_next_slot_runs(pipeline):
    async def scenario():
        task = asyncio.create_task(pipeline.generate_slot(recipe(duration=3.0, script="This will be cancelled soon.")))
        await asyncio.sleep(0.3)  # a real wait: let the slot get into its workers
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await pipeline.generate_slot(recipe())

    assert asyncio.run(scenario()).success


def test_speech_too_long_fails_cleanly(pipeline, tmp_path):
    out = tmp_path / "long.mp4"
    script = "This script is far too long to be spoken in half a second, even at twice the normal speed. " * 2
    result = pipeline.generate_slot_sync(recipe(duration=0.5, script=script), output=out)
    assert not result.success and result.failed_phase == "validate" and result.error_kind == "input"
    assert "audio_track.script" in result.error_msg and not out.exists()
    assert pipeline.generate_slot_sync(recipe()).success


def test_a_script_with_more_phonemes_than_the_slot_has_25ms_units_is_refused_before_synthesis(pipeline):
    script = "Good evening and welcome to the news at nine. " * 6  # 54 words: within the words bound
    result = pipeline.generate_slot_sync(recipe(duration=3.0, script=script))
    assert not result.success and result.failed_phase == "voice" and result.error_kind == "input"
    assert "phonemes last at least" in result.error_msg and "audio_track.script" in result.error_msg
    assert result.timings_ms.get("voice") is None and result.generation_time_ms < 5000  # nothing synthesised


def test_bad_input_is_a_failed_result_not_an_exception(pipeline):
    bad = recipe()
    bad["audio_track"]["voice_id"] = "nobody"
    result = pipeline.generate_slot_sync(bad)
    assert not result.success and "audio_track.voice_id" in result.error_msg
    broken = pipeline.generate_slot_sync({"slot_params": {"slot_id": 1}})
    assert not broken.success and broken.failed_phase == "validate"


def test_the_actor_talks_frames_change_over_time(pipeline):
    result = pipeline.generate_slot_sync(recipe(duration=2.0, script="Open wide, say aah and ooh."), keep_frames=True)
    frames = result.video_frames.astype(np.int16)
    change = [float(np.abs(frames[i] - frames[0]).mean()) for i in range(1, len(frames))]
    assert max(change) > 0  # not a frozen video
    assert len({f.tobytes() for f in result.video_frames[::6]}) > 1


still_pipeline = engine_fixture("cpu-miniature", changes={"pipeline": {"animation": "still"}}, name="still_pipeline")


def test_still_animation_holds_the_portrait_and_skips_liveportrait(still_pipeline, tmp_path):
    assert "liveportrait" not in still_pipeline.registry.names
    portrait = np.zeros((600, 400, 3), np.uint8)
    portrait[:, :, 0] = np.linspace(0, 255, 400, dtype=np.uint8)[None, :]
    Image.fromarray(portrait).save(tmp_path / "host.png")
    result = still_pipeline.generate_slot_sync(recipe(actor_image=str(tmp_path / "host.png"), expression_preset="smile"),
                                               keep_frames=True)
    assert result.success and result.animation == "still"
    frame = result.video_frames[0]
    assert frame.shape == (512, 512, 3) and frame[:, :, 1].max() == 0  # the given portrait, not a Flux image
    assert frame[0, 0, 0] < frame[0, -1, 0]
    assert all(np.array_equal(f, frame) for f in result.video_frames)
    assert any("pipeline.animation is 'still'" in w for w in result.warnings)


def test_actor_image_is_animated_instead_of_a_generated_portrait(pipeline, tmp_path):
    portrait = np.random.default_rng(1).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(portrait).save(tmp_path / "host.png")
    given = pipeline.generate_slot_sync(recipe(actor_image=str(tmp_path / "host.png")))
    generated = pipeline.generate_slot_sync(recipe())
    assert given.success and generated.success
    assert given.proof["frames_sha256"] != generated.proof["frames_sha256"]


def test_unknown_expression_fails_before_any_model_runs(pipeline):
    result = pipeline.generate_slot_sync(recipe(expression_preset="smirk"))
    assert not result.success and result.failed_phase == "validate"
    assert "visual_track.expression_preset" in result.error_msg and "voice" not in result.timings_ms


def test_no_buffer_growth_across_five_slots(pipeline):
    ptrs, nbytes = pipeline.buffers.data_ptrs(), pipeline.buffers.nbytes
    for seed in range(5):
        assert pipeline.generate_slot_sync(recipe(duration=1.0, seed=seed)).success
        assert pipeline.buffers.data_ptrs() == ptrs and pipeline.buffers.nbytes == nbytes


def test_enforced_verification_failure_writes_no_video(tmp_path):
    cfg = VortexConfig.load(profile="cpu-miniature")
    cfg = cfg.model_copy(update={"verification": cfg.verification.model_copy(update={"enforce": True})})
    with engine_of(cfg) as pipe:
        out = tmp_path / "v.mp4"
        strict = recipe()
        strict["semantic_constraints"] = {"clip_threshold": 0.99}
        result = pipe.generate_slot_sync(strict, output=out)
        assert not result.success and result.failed_phase == "verify"
        assert "verification failed" in result.error_msg and result.verification.threshold == 0.99
        assert not out.exists()


def test_plan_over_the_hard_limit_refuses_to_start(tmp_path):
    path = tmp_path / "tight.yaml"
    path.write_text("extends: rtx3060-12gb\nprofile: tight\nvram: {soft_limit_gb: 4, hard_limit_gb: 4}\n")
    plan = compute_plan(VortexConfig.load(path=path))
    with pytest.raises(PlanOverBudgetError, match=r"does not fit: .* over the hard limit of 4.00 GiB"):
        plan.raise_if_over()
    compute_plan(VortexConfig.load(profile="rtx3060-12gb")).raise_if_over()
