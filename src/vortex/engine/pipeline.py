"""VortexPipeline: one recipe in, one verified slot out, with every model resident.

    recipe ─┬─ voice (Kokoro → speech-driven motion) ──────────┐
            └─ actor (Flux | actor_image → LivePortrait source) ┴─ video (LivePortrait W+G → ring → encoder)
                                                                    ─ verify (CLIP B+L, identity) ─ MP4 + sidecar

Voice and actor run at the same time in worker threads (each on its own CUDA stream on a GPU).
A slot never raises for a failed generation: it returns a `GenerationResult` with `success=False`,
the phase it stopped in and why. Only an outside cancellation raises (`CancelledError`), and a
closed or dead engine (`EngineClosed`, `EngineDead`).

Two ways in, one slot at a time: `run(SlotRequest, on_event)` blocks the calling thread (any
thread: the engine holds no asyncio primitive bound to a loop) and reports typed `SlotEvent`s;
`await generate_slot(...)` is the same slot on the caller's event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .cancel import SlotCancelled
from . import checks
from ..config import MINIATURE, VortexConfig
from ..errors import (DeadlineExceeded, EngineClosed, EngineDead, RecipeError, SpeechTooLongError, VortexError,
                     VortexInitializationError)
from ..memory.buffers import SlotBuffers
from ..memory.monitor import VRAMMonitor
from ..memory.plan import VRAMPlan, compute_plan
from ..memory.stats import reset_peak, vram_stats
from .outputs import OutputError, SlotOutput, describe_os_error
from ..models.registry import ModelRegistry
from ..phases import Phase
from .portrait import ActorPortrait, make_portrait
from ..recipe import Recipe
from .requests import EventFn, SlotEvent, SlotRequest
from .sinks import ArraySink, FrameSink, MediaShape, Mp4Sink
from .slot import Scheduler, Slot, as_recipe, is_device_fault, pick_seed
from ..result import GenerationResult, determinism_proof
from ..motion import DrivingSequence
from ..motion.driver import MotionDriver
from ..motion.expressions import check_expressions
from .render import FramedTrack, StillTrack, VideoTrack, render_into_sinks

log = logging.getLogger("vortex.engine.pipeline")

class VortexPipeline:
    """Loads every component once (static residency) and generates slots one at a time."""

    def __init__(
        self,
        config: VortexConfig | None = None,
        *,
        registry: ModelRegistry | None = None,
    ):
        self.config = cfg = config or VortexConfig.load()
        self.device = torch.device(cfg.device.name)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise VortexInitializationError(
                f"profile '{cfg.profile}' runs on {cfg.device.name}, but this torch build sees no CUDA GPU "
                f"(torch {torch.__version__}). Run a CPU profile (`vortex profiles` lists them; with --config, "
                "set `device: {name: cpu}` or extend a CPU profile), or install a CUDA build of torch."
            )
        # Only a GPU engine has a budget to keep; building every full-size architecture on meta to
        # count it costs seconds of start-up, so a CPU engine skips it (`vortex plan` still shows it).
        self.plan: Optional[VRAMPlan] = None
        if self.device.type == "cuda":
            self.plan = compute_plan(cfg)
            self.plan.raise_if_over()
        self.monitor = VRAMMonitor(cfg.vram.soft_limit_gb, cfg.vram.hard_limit_gb, cfg.device.name)
        self.animation = cfg.pipeline.animation  # "liveportrait" | "preview" | "still"
        self.animated = self.animation != "still"
        self.driver = MotionDriver(cfg.motion)
        self.registry = registry or ModelRegistry.load(cfg)
        self.buffers = SlotBuffers.allocate(cfg.buffers, self.device)
        self.monitor.check("startup")
        self.scheduler = Scheduler(self.device)
        self._lock = threading.Lock()  # the models are shared: one slot at a time, whichever thread asks
        self._gate = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vortex-gate")  # waits for _lock
        self._running: dict[str, Slot] = {}  # request id -> the slot in flight (for cancel)
        self._closed = False
        self._dead: Optional[str] = None

    @property
    def stand_ins(self) -> list[str]:
        return self.config.stand_ins

    def close(self) -> None:
        """Stop the engine: the slot in flight is cancelled, later requests raise EngineClosed."""
        self._closed = True
        for slot in list(self._running.values()):
            slot.token.cancel("the engine is closing")
        with self._lock:
            self.scheduler.shutdown()
        self._gate.shutdown(wait=False)

    @property
    def _faces(self) -> Any:
        """The face analyzer, loaded only where faces are framed (faces.framing)."""
        return self.registry.get_model("faces") if "faces" in self.registry.names else None

    @property
    def closed(self) -> bool:
        """close() was called: later requests raise EngineClosed."""
        return self._closed

    @property
    def dead(self) -> Optional[str]:
        """Why the engine can no longer run slots (a CUDA fault), or None while it is healthy."""
        return self._dead

    def cancel(self, request_id: str) -> bool:
        """Cancel a running request: it stops at its next step and fails with error_kind "cancelled"."""
        slot = self._running.get(request_id)
        if slot is None:
            return False
        slot.token.cancel("cancelled by the caller")
        return True

    def run(self, request: SlotRequest, on_event: Optional[EventFn] = None) -> GenerationResult:
        """One slot, blocking the calling thread; `on_event` receives its SlotEvents (from engine threads)."""
        return asyncio.run(self._generate_request(request, on_event))

    # ---- the slot ---------------------------------------------------------------------------
    async def generate_slot(
        self,
        recipe: Recipe | dict | str | Path,
        slot_id: int | None = None,
        seed: int | None = None,
        deadline: float | datetime | None = None,
        output: str | Path | None = None,
    ) -> GenerationResult:
        """Generate one slot. `deadline`: seconds from now, or a wall-clock datetime; default the
        profile's pipeline.generation_timeout_sec. With `output` (a path, or a `SlotOutput` already
        checked), the MP4 is written there with its `.json` sidecar only when the slot succeeds; a
        failed slot writes `OUT.failed.json` instead and leaves an existing OUT.mp4/OUT.json as they were."""
        return await self._generate(recipe, slot_id, seed, deadline, output, None, secrets.token_hex(8))

    def generate_slot_sync(self, *args: Any, **kwargs: Any) -> GenerationResult:
        return asyncio.run(self.generate_slot(*args, **kwargs))

    async def _generate_request(self, request: SlotRequest, on_event: Optional[EventFn]) -> GenerationResult:
        return await self._generate(request.recipe, request.slot_id, request.seed, request.deadline_s,
                                    request.output, on_event, request.id)

    async def _generate(self, recipe, slot_id, seed, deadline, output, on_event, request_id) -> GenerationResult:
        self._check_alive()
        loop = asyncio.get_running_loop()
        # The thread lock is waited on by the engine's own gate thread, not the loop's default
        # executor (each asyncio.run makes a new one: new threads, and new malloc arenas, per slot).
        acquired = loop.run_in_executor(self._gate, self._lock.acquire)
        try:
            await asyncio.shield(acquired)
        except asyncio.CancelledError:  # the caller gave up while queued: release once the gate gets it
            acquired.add_done_callback(lambda _: self._lock.release())
            raise
        try:
            self._check_alive()
            return await self._generate_locked(recipe, slot_id, seed, deadline, output, on_event, request_id)
        finally:
            self._lock.release()

    def _check_alive(self) -> None:
        if self._closed:
            raise EngineClosed("the engine is closed: start a new VortexPipeline")
        if self._dead is not None:
            raise EngineDead(f"the engine is dead ({self._dead}): restart the process")

    async def _generate_locked(self, recipe, slot_id, seed, deadline, output, on_event, request_id) -> GenerationResult:
        started = time.perf_counter()
        try:
            recipe = as_recipe(recipe)
            budget_s = self._budget(deadline)
            target = output if isinstance(output, SlotOutput) or output is None else SlotOutput.prepare(output)
        except VortexError as exc:
            result = GenerationResult(slot_id=slot_id or 0, seed=seed or 0, success=False, error_msg=str(exc),
                                      failed_phase=Phase.VALIDATE.value, error_kind="input", profile=self.config.profile,
                                      stand_ins=self.stand_ins)
            if on_event is not None:
                on_event(SlotEvent(request_id, "result", 0.0, None, result.metadata()))
            return result
        slot_id = recipe.slot_params.slot_id if slot_id is None else slot_id
        seed = pick_seed(seed, recipe.slot_params.seed)
        recipe = recipe.with_overrides(slot_id=slot_id, seed=seed)
        slot = Slot(request_id=request_id, recipe=recipe, slot_id=slot_id, seed=seed, budget_s=budget_s,
                    on_event=on_event)
        slot.t0 = started
        self._running[request_id] = slot
        result = GenerationResult(
            slot_id=slot_id, seed=seed, success=False, profile=self.config.profile, stand_ins=self.stand_ins,
            fps=recipe.slot_params.fps, sample_rate=self.config.buffers.audio.sample_rate,
            recipe_sha256=recipe.sha256(),
        )
        staging = target.staging_mp4() if target is not None else None
        try:
            await self._run(slot, result, staging)
            if target is not None and result.success:
                target.publish(staging)
        except asyncio.CancelledError:
            slot.token.cancel("slot cancelled by the caller")
            await self.scheduler.drain(slot)
            self._running.pop(request_id, None)
            raise
        except DeadlineExceeded as exc:
            self._fail(slot, result, str(exc), exc.phase, "deadline")
        except SlotCancelled as exc:
            self._fail(slot, result, f"cancelled: {exc}", slot.phase, "cancelled")
        except (RecipeError, SpeechTooLongError) as exc:  # found only now (no face, a script too long): the input
            self._fail(slot, result, str(exc), slot.phase, "input")
        except _VerificationFailed as exc:
            self._fail(slot, result, str(exc), slot.phase, "verification")
        except OutputError as exc:
            self._fail(slot, result, str(exc), slot.phase, "output")
        except VortexError as exc:
            self._fail(slot, result, str(exc), slot.phase, "model")
        except OSError as exc:  # the disk filled up, the folder went away: name the file
            self._fail(slot, result, describe_os_error(target.mp4 if target else exc.filename, exc), slot.phase, "output")
        except Exception as exc:  # a bug or a library failure: the slot fails, the engine lives on
            log.exception("slot failed", extra={"event": "slot_error", "slot_id": slot_id, "phase": slot.phase})
            if is_device_fault(exc):  # CUDA's context is gone: no later slot can run in this process
                self._dead = f"{type(exc).__name__}: {exc}"
            self._fail(slot, result, f"{type(exc).__name__}: {exc}", slot.phase, "model")
        finally:
            if not result.success:
                slot.token.cancel("slot failed")
                await self.scheduler.drain(slot)
            self._running.pop(request_id, None)
            if staging is not None:
                staging.unlink(missing_ok=True)
        result.timings_ms = dict(slot.timings_ms)
        result.spans_ms = dict(slot.spans_ms)
        result.vram_peaks = dict(slot.vram_peaks)
        result.first_frame_ms = slot.first_frame_ms
        result.warnings = slot.warnings
        result.generation_time_ms = slot.elapsed_ms()
        if target is not None:
            try:
                result.report_path = target.write_report(result.metadata(), success=result.success)
            except OutputError as exc:
                if result.success:  # the MP4 is out, its sidecar is not: the slot did not complete
                    target.mp4.unlink(missing_ok=True)
                    result.success, result.failed_phase, result.error_kind = False, Phase.FINALIZE.value, "output"
                result.error_msg = str(exc) if result.error_msg is None else f"{result.error_msg}; and {exc}"
        log.info("slot finished", extra={"event": "slot", "slot_id": slot_id, "success": result.success,
                                         "ms": round(result.generation_time_ms, 1), "phase": result.failed_phase})
        slot.emit("result", result.failed_phase, **result.metadata())
        return result

    async def _run(self, slot: Slot, result: GenerationResult, staging: Path | None) -> None:
        recipe, reg = slot.recipe, self.registry
        voice, verifier = reg.get_model("kokoro"), reg.get_model("clip")
        self.config.check_recipe(recipe)
        recipe.check_voice(voice.voice_ids)
        check_expressions(recipe.visual_track.expression_preset, recipe.visual_track.expression_sequence)
        self._note_unused_fields(slot)
        reset_peak(self.device)
        self.monitor.check("slot start")

        slot.phase = Phase.VOICE_ACTOR.value
        jobs = ((Phase.VOICE, self._voice, slot), (Phase.ACTOR, self._actor, slot))
        if self.config.pipeline.parallel_audio_actor:
            (speech, driving), (portrait, source) = await self.scheduler.concurrently(slot, *jobs)
        else:  # lower peak memory: the plan counts the two phases apart
            (speech, driving), (portrait, source) = [await self.scheduler.in_worker(slot, *job) for job in jobs]
            slot.phase = Phase.VOICE_ACTOR.value
        result.audio_waveform = speech.waveform
        result.speech = {
            "speed": round(speech.speed, 4), "emotion": speech.emotion, "resynthesised": speech.resynthesised,
            "speech_samples": int(speech.speech_samples), "padding_samples": int(len(speech.waveform) - speech.speech_samples),
            "phonemes": speech.phonemes,
        }
        result.actor = portrait.summary()
        slot.warnings.extend(portrait.notes)
        self._checkpoint(slot, Phase.VOICE_ACTOR.value)

        # The speech check needs only the audio: it runs while the video renders.
        track = self._track(portrait, source, driving)
        slot.phase = Phase.VIDEO.value
        jobs = [(Phase.VIDEO, self._video, slot, track, speech.waveform, staging)]
        if "whisper" in reg.names:
            jobs.append((Phase.SPEECH_CHECK, checks.speech_report, reg.get_model("whisper"), self.config, speech.waveform,
                         recipe.audio_track.script))
        frames, *heard = await self.scheduler.concurrently(slot, *jobs)
        speech_check = heard[0] if heard else checks.speech_report(None, self.config, speech.waveform, "")
        result.video_frames, result.animation = frames, track.name
        self._checkpoint(slot, Phase.VIDEO.value)

        threshold = recipe.semantic_constraints.clip_threshold
        report = await self.scheduler.in_worker(slot, Phase.VERIFY, self._verify, slot, verifier, frames, threshold, portrait,
                                       speech.waveform)
        report = dataclasses.replace(report[0], speech=speech_check), report[1]
        result.verification, result.clip_embedding = report
        self._checkpoint(slot, Phase.VERIFY.value)
        if result.verification.fails_slot:
            raise _VerificationFailed("verification failed: " + "; ".join(result.verification.failure_reasons()))
        slot.phase = Phase.FINALIZE.value
        result.proof = determinism_proof(result.recipe_sha256, slot.seed, frames, speech.waveform)
        result.success = True

    def _verify(self, slot: Slot, verifier: Any, frames: np.ndarray, threshold: Optional[float],
                portrait: ActorPortrait, waveform: np.ndarray) -> tuple[Any, np.ndarray]:
        """CLIP against the prompt; the face model against the portrait (identity) and the speech (lips)."""
        report, embedding = verifier.verify(frames, slot.recipe.visual_track.prompt, threshold)
        analyzer = self._faces
        faces = checks.face_judgement(self.config, portrait)
        identity = checks.identity_report(analyzer, self.config, portrait, frames, faces)
        slot.token.raise_if_cancelled()
        lips = checks.lip_sync_report(analyzer, self.config, portrait, frames, waveform, slot.recipe.slot_params.fps,
                                      checks.lip_judgement(self.config, faces))
        return dataclasses.replace(report, identity=identity, lip_sync=lips), embedding

    # ---- the work each phase does, in a worker thread ------------------------------------------
    def _voice(self, slot: Slot) -> tuple[Any, Optional[DrivingSequence]]:
        """Speech, then the motion it drives (the motion needs the phoneme timeline)."""
        a, p, v = slot.recipe.audio_track, slot.recipe.slot_params, slot.recipe.visual_track
        speech = self.registry.get_model("kokoro").synthesize(
            a.script, a.voice_id, a.speed, a.emotion, p.n_samples(self.config.buffers.audio.sample_rate),
            cancel=slot.token, seed=slot.seed,
        )
        self.buffers.load_audio(speech.waveform)
        if not self.animated:
            return speech, None
        slot.token.raise_if_cancelled()
        started = time.perf_counter()
        driving = self.driver.drive(
            speech, p.n_frames, p.fps, slot.seed, emotion=a.emotion.value, expression_preset=v.expression_preset,
            expression_sequence=v.expression_sequence, driving_source=v.driving_source,
        )
        slot.timings_ms["motion"] = (time.perf_counter() - started) * 1000.0
        return speech, driving

    def _actor(self, slot: Slot) -> tuple[ActorPortrait, Any]:
        """The portrait and its framing, then what the animator makes of the face (once per slot)."""
        cfg, reg = self.config, self.registry
        v = cfg.buffers.actor
        flux = reg.get_model("flux") if "flux" in reg.names else None
        portrait = make_portrait(
            actor_image=slot.recipe.visual_track.actor_image,
            stand_in=None if cfg.pipeline.actor == "flux" else cfg.pipeline.actor,
            generate=None if flux is None else (lambda seed: flux.generate(slot.recipe.visual_track.prompt, seed,
                                                                           cancel=slot.token)),
            seed=slot.seed, height=v.height, width=v.width, analyzer=self._faces, faces_cfg=cfg.faces,
            frame=cfg.faces.framing, time_left=slot.remaining_s,
            generated_is_stand_in=cfg.models.flux.source == MINIATURE,
        )
        self.buffers.load_actor(portrait.image)
        if not self.animated:
            return portrait, None
        slot.token.raise_if_cancelled()
        started = time.perf_counter()
        framing = portrait.framing
        face = portrait.image if framing is None else framing.crop(portrait.image)
        animator = reg.get_model(self.animation)
        if self.animation == "preview":
            if framing is None:
                raise VortexError("the preview animator needs a framed face: faces.framing must be on")
            source = animator.prepare(face, framing.landmarks)
        else:
            source = animator.prepare(face)
        slot.timings_ms["source"] = (time.perf_counter() - started) * 1000.0
        return portrait, source

    def _track(self, portrait: ActorPortrait, source: Any, driving: Optional[DrivingSequence]) -> VideoTrack:
        if not self.animated:
            return StillTrack(self.buffers.actor)
        track = self.registry.get_model(self.animation).track(source, driving)
        if portrait.framing is None:
            return track
        return FramedTrack(track, portrait.framing, self.buffers.actor)

    def _video(self, slot: Slot, track: VideoTrack, waveform: np.ndarray, staging: Path | None) -> np.ndarray:
        """Render every frame into the sinks: the frames the verification samples, and the MP4."""
        p, b = slot.recipe.slot_params, self.config.buffers.video
        shape = MediaShape(width=b.width, height=b.height, fps=p.fps, sample_rate=self.config.buffers.audio.sample_rate,
                           n_frames=p.n_frames)
        frames = ArraySink()
        sinks: list[FrameSink] = [frames] + ([Mp4Sink(staging)] if staging is not None else [])
        every = max(1, p.fps)  # a progress event a second of video

        def on_frame(i: int) -> None:
            if i == 0:
                slot.first_frame_ms = slot.elapsed_ms()
                slot.emit("first_frame", Phase.VIDEO.value)
            if (i + 1) % every == 0 or i + 1 == p.n_frames:
                slot.emit("progress", Phase.VIDEO.value, frames=i + 1, total=p.n_frames)

        render_into_sinks(track, shape, waveform, sinks, self.buffers.frame_ring, slot.token, on_frame)
        return frames.frames

    def _checkpoint(self, slot: Slot, stage: str) -> None:
        """Record the stage's peak device memory (zeros on CPU) and check the limits."""
        stats = vram_stats(self.device)
        slot.vram_peaks[stage] = {"allocated": stats.max_allocated, "reserved": stats.max_reserved}
        reset_peak(self.device)
        self.monitor.check(f"after {stage}")

    def _budget(self, deadline: float | datetime | None) -> float:
        if deadline is None:
            return self.config.pipeline.generation_timeout_sec
        if isinstance(deadline, datetime):
            now = datetime.now(deadline.tzinfo)
            return (deadline - now).total_seconds()
        budget = float(deadline)
        if not math.isfinite(budget) or budget <= 0:  # NaN would silently mean "no deadline"
            raise VortexError(f"deadline must be a finite number of seconds > 0, got {deadline!r}")
        return budget

    def _fail(self, slot: Slot, result: GenerationResult, message: str, phase: str, kind: str) -> None:
        result.success = False
        result.error_msg = message
        result.failed_phase = phase
        result.error_kind = kind
        slot.emit("phase_failed", phase, error=message, error_kind=kind)

    def _note_unused_fields(self, slot: Slot) -> None:
        v = slot.recipe.visual_track
        if v.negative_prompt:
            slot.warnings.append("visual_track.negative_prompt is ignored: FLUX.1-schnell is guidance-distilled and has no negative prompt")
        if not self.animated and (v.expression_preset != "neutral" or v.expression_sequence or v.driving_source):
            slot.warnings.append("expression_preset, expression_sequence and driving_source are ignored: pipeline.animation is 'still'")


class _VerificationFailed(VortexError):
    pass
