"""VortexPipeline: one recipe in, one verified slot out, streamed, with every model resident.

    1. admission     the recipe against this engine: buffers, voices, expressions
    2. speech plan   the duration predictor fits the speed and lays out the whole phoneme timeline
    3. actor         the portrait, its framing, the animator's source (beside the voice)
    4. sinks         the MP4 at its staging name, the caller's sinks, the proof
    5. stream        speech chunk by chunk into the sinks, the motion and the speech check; frames
                     as soon as their motion is final, into the sinks and the face checks
    6. judge         every check on the whole slot, before anything is published
    7. complete      the media finished, the proof, then (the caller's wrapper) the MP4 published

A slot never raises for a failed generation: it returns a `GenerationResult` with
`success=False`, the phase it stopped in and why; every sink is aborted. Several requests may be
in flight; they take turns by priority between chunks (vortex.engine.scheduling).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..config import MINIATURE, VortexConfig
from ..contracts.cancel import DEADLINE_EXCEEDED, CancelToken, SlotCancelled
from ..contracts.requests import EventFn, Priority, SlotRequest
from ..errors import (DeadlineExceeded, EngineClosed, EngineDead, RecipeError, SpeechTooLongError, VortexError,
                      VortexInitializationError)
from ..memory.buffers import SlotBuffers
from ..provenance.signing import SIGNING_OFF, SlotSigner
from ..memory.monitor import VRAMMonitor
from ..memory.plan import VRAMPlan, compute_plan
from ..memory.stats import reset_peak, vram_stats
from ..motion.driver import MotionDriver
from ..phases import Phase
from ..program import loudness as program_loudness
from ..program.captions import slot_cues
from ..recipe import Recipe
from ..result import GenerationResult
from .admission import admit
from .checks import FrameChecks, SpeechChecks
from .components import Components
from .cpu import LibraryThreads
from .outputs import OutputError, SlotOutput, describe_os_error
from .portrait import ActorPortrait, make_portrait
from .process import release_free_heap
from .registry import ModelRegistry
from .render import RenderQueue, SlotVideo
from .scheduling import TICK_S, RequestScheduler
from .sinks import ArraySink, MediaShape, Mp4Sink, ProofSink, SinkSet
from ..program.sink import ProgramSink, config_program
from .slot import Slot, as_recipe, is_device_fault, pick_seed
from .stream import VOICE_DONE, SlotStream
from .voice_calls import VoiceCalls

log = logging.getLogger("vortex.engine")


class VortexPipeline:
    """Loads every component once (static residency) and streams slots, several at a time."""

    # A request's `sinks` run in this process, so a caller may stream a slot into its own files
    # (the channel's spool) instead of asking for the MP4; a remote engine (vortex.serving) cannot.
    streams_sinks = True

    def __init__(self, config: VortexConfig | None = None, *, registry: ModelRegistry | None = None):
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
        self.signer = SlotSigner.from_config(cfg)  # Content Credentials on every MP4 unless `signing: off`
        self.monitor = VRAMMonitor(cfg.vram.soft_limit_gb, cfg.vram.hard_limit_gb, cfg.device.name)
        self.driver = MotionDriver(cfg.motion)
        self.library_threads = LibraryThreads()  # the threads each component spawned: their CPU per stage
        if registry is None:
            from .registry import default_loaders

            loaders = {k: self.library_threads.wrap(k, v) for k, v in default_loaders(cfg).items()}
            registry = ModelRegistry.load(cfg, loaders)
        self.registry = registry
        if self.signer is not None:  # the assertion's models: the loaded ones and their weight digests
            self.signer.record_weights(cfg, self.registry.names)
        self.components = Components.of(self.registry, cfg, self.device)
        self.animation = self.components.animator.name
        crops = cfg.faces.crop_size if self.components.faces is not None else None
        self.buffers = SlotBuffers.allocate(cfg.buffers, self.device, crop_size=crops)
        self.monitor.check("startup")
        n = cfg.pipeline.max_in_flight
        self.scheduler = RequestScheduler(n)
        self.renderer = RenderQueue(self.buffers.frame_ring, self.buffers.crop_ring, cfg.pipeline.batch_streams)
        self.workers = ThreadPoolExecutor(max_workers=3 * n + 1, thread_name_prefix="vortex-worker")
        self._callers = ThreadPoolExecutor(max_workers=n + 1, thread_name_prefix="vortex-caller")  # generate_slot
        # One call at a time per shared model (Flux's pipeline keeps per-call state, and concurrent
        # calls would only split the device); on a GPU each runs on its own CUDA stream. The voice
        # takes pipeline.voice_calls calls at once: 1 on a GPU, one per core on a CPU node.
        self.voice_calls = VoiceCalls(cfg.pipeline.voice_calls, self.scheduler,
                                      getattr(self.components.voice, "call_handle", None))
        self._actor_lock, self._verify_lock = threading.Lock(), threading.Lock()
        self._streams = {k: torch.cuda.Stream(self.device) for k in ("voice", "actor")} if self.device.type == "cuda" else {}
        self._slots: dict[str, Slot] = {}  # request id -> the slot in flight (for cancel)
        self._closed = False
        self._dead: Optional[str] = None

    # ---- the Engine protocol --------------------------------------------------------------------
    @property
    def stand_ins(self) -> list[str]:
        return self.config.stand_ins

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def dead(self) -> Optional[str]:
        """Why the engine can no longer run slots (a CUDA fault), or None while it is healthy."""
        return self._dead

    def cancel(self, request_id: str) -> bool:
        """Cancel a request in flight (or waiting to enter): it stops at its next step, "cancelled"."""
        slot = self._slots.get(request_id)
        if slot is None:
            return False
        slot.token.cancel("cancelled by the caller")
        return True

    def close(self) -> None:
        """Stop the engine: the slots in flight are cancelled, later requests raise EngineClosed."""
        self._closed = True
        for slot in list(self._slots.values()):
            slot.token.cancel("the engine is closing")
        deadline = time.monotonic() + 60
        while self._slots and time.monotonic() < deadline:
            time.sleep(0.05)
        self.renderer.close()
        self.workers.shutdown(wait=True)
        self.voice_calls.close()
        self._callers.shutdown(wait=False)

    def run(self, request: SlotRequest, on_event: Optional[EventFn] = None) -> GenerationResult:
        """One slot, blocking the calling thread (any thread); `on_event` receives its SlotEvents."""
        self._check_alive()
        return self._generate(request, on_event)

    async def generate_slot(self, recipe: Recipe | dict | str | Path, slot_id: int | None = None,
                            seed: int | None = None, deadline: float | datetime | None = None,
                            output: str | Path | None = None, *, keep_frames: bool = False,
                            priority: Priority = Priority.JOB) -> GenerationResult:
        """One slot on the caller's event loop. `deadline`: seconds from now, or a wall-clock datetime
        (default pipeline.generation_timeout_sec). With `output`, the MP4 and its `.json` sidecar are
        written there only when the slot succeeds (a failed slot writes `OUT.failed.json`)."""
        self._check_alive()
        if isinstance(deadline, datetime):
            deadline = (deadline - datetime.now(deadline.tzinfo)).total_seconds()
        request = SlotRequest(recipe=recipe, slot_id=slot_id, seed=seed, deadline_s=deadline,  # type: ignore[arg-type]
                              output=output, priority=priority, keep_frames=keep_frames)  # type: ignore[arg-type]
        future = asyncio.get_running_loop().run_in_executor(self._callers, self._generate, request, None)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:  # the caller gave up: stop the slot, let its threads finish
            self.cancel(request.id)
            with contextlib.suppress(BaseException):
                await future
            raise

    def generate_slot_sync(self, *args: Any, **kwargs: Any) -> GenerationResult:
        return asyncio.run(self.generate_slot(*args, **kwargs))

    # ---- one request --------------------------------------------------------------------------
    def _generate(self, request: SlotRequest, on_event: Optional[EventFn]) -> GenerationResult:
        started = time.perf_counter()
        try:
            recipe = as_recipe(request.recipe)
            budget_s = self._budget(request.deadline_s)
            output = request.output
            target = output if isinstance(output, SlotOutput) or output is None else SlotOutput.prepare(output)
        except VortexError as exc:
            result = GenerationResult(slot_id=request.slot_id or 0, seed=request.seed or 0, success=False,
                                      error_msg=str(exc), failed_phase=Phase.VALIDATE.value, error_kind="input",
                                      profile=self.config.profile, stand_ins=self.stand_ins,
                                      priority=str(request.priority))
            if on_event is not None:
                on_event(_result_event(request.id, result))
            return result
        slot_id = recipe.slot_params.slot_id if request.slot_id is None else request.slot_id
        seed = pick_seed(request.seed, recipe.slot_params.seed)
        recipe = recipe.with_overrides(slot_id=slot_id, seed=seed)
        token = CancelToken(deadline=time.monotonic() + budget_s - (time.perf_counter() - started))
        slot = Slot(request=request, recipe=recipe, slot_id=slot_id, seed=seed, budget_s=budget_s, token=token,
                    on_event=on_event, t0=started)
        result = GenerationResult(
            slot_id=slot_id, seed=seed, success=False, profile=self.config.profile, stand_ins=self.stand_ins,
            fps=recipe.slot_params.fps, sample_rate=self.config.buffers.audio.sample_rate,
            recipe_sha256=recipe.sha256(), priority=str(request.priority),
        )
        self._slots[request.id] = slot
        staging = target.staging_mp4() if target is not None else None
        work = _Work()
        try:
            slot.flight = self.scheduler.enter(request.id, request.priority, token)
            try:
                self._make(slot, result, staging, work)
            finally:
                self.scheduler.leave(slot.flight)
            if target is not None and result.success:
                result.provenance = target.publish(staging, sign=self._sign(slot, result)) or SIGNING_OFF
                target.publish_captions(result.captions)  # OUT.vtt beside it
        except SlotCancelled as exc:
            if str(exc) == DEADLINE_EXCEEDED:
                self._fail(slot, result, str(DeadlineExceeded(slot.running_phases(), budget_s)), slot.phase, "deadline")
            else:
                self._fail(slot, result, f"cancelled: {exc}", slot.phase, "cancelled")
        except (RecipeError, SpeechTooLongError) as exc:  # found only now (no face, a script too long): the input
            self._fail(slot, result, str(exc), slot.phase, "input")
        except _VerificationFailed as exc:
            self._fail(slot, result, str(exc), Phase.VERIFY.value, "verification")
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
                token.cancel("slot failed")
                work.abandon()
            self._slots.pop(request.id, None)
            if staging is not None:
                staging.unlink(missing_ok=True)
        self._finish_result(slot, result, target)
        release_free_heap()  # the slot's freed frames back to the OS, else RSS climbs (engine/process.py)
        return result

    def _make(self, slot: Slot, result: GenerationResult, staging: Optional[Path], work: "_Work") -> None:
        cfg, c, recipe = self.config, self.components, slot.recipe
        a, p, v = recipe.audio_track, recipe.slot_params, recipe.visual_track
        sr = cfg.buffers.audio.sample_rate
        n_samples = p.n_samples(sr)

        # 1. Admission: the recipe against this engine, before any model works on it.
        admit(cfg, recipe)
        self._note_unused_fields(slot)
        reset_peak(self.device)
        self.monitor.check("slot start")

        # 2. The speech plan: the duration predictor alone fits the speed and lays out the timeline.
        slot.begin(Phase.VOICE)
        with self.voice_calls.turn(slot), slot.cpu.stage("plan"):
            plan = c.voice.plan(a.script, a.voice_id, a.speed, a.emotion, n_samples)
            result.captions = slot_cues(plan, sr, getattr(c.voice, "phoneme_chunks", None))
        result.speech = plan.summary()
        slot.emit("captions", Phase.VOICE.value, cues=[q.as_dict() for q in result.captions])  # a live insert's
        planned = time.perf_counter()
        with slot.cpu.stage("motion"):
                motion = self.driver.start(plan.timeline, sample_rate=sr, n_samples=n_samples,
                                       speech_samples=plan.speech_samples, chunk_starts=plan.chunk_starts,
                                       n_frames=p.n_frames, fps=p.fps, seed=slot.seed, emotion=a.emotion.value,
                                       expression_preset=v.expression_preset, expression_sequence=v.expression_sequence,
                                       driving_source=v.driving_source)
        slot.record("motion", (time.perf_counter() - planned) * 1000.0)

        # 3. The actor, beside the voice: the portrait, its framing, the animator's source.
        actor = work.add(self.workers.submit(self._actor, slot))
        actor.add_done_callback(lambda _: slot.wake.set())

        # 4. The sinks: the proof, the MP4 at its staging name, the caller's own, the frames if asked.
        proof = ProofSink()
        kept = ArraySink() if slot.request.keep_frames else None
        mp4 = [Mp4Sink(staging, result.captions, *self._watermarks(slot))] if staging is not None else []
        if mp4 and cfg.program is not None:  # the program picture around the anchor (vortex.program.sink)
            mp4 = [ProgramSink(mp4[0], config_program(cfg, slot.request.recipe), slot.request.recipe, result.captions)]
        sinks = [proof] + mp4 + list(slot.request.sinks)
        media = work.media = SinkSet(sinks + ([kept] if kept is not None else []), cpu=slot.cpu)
        media.open(MediaShape(width=cfg.buffers.video.width, height=cfg.buffers.video.height, fps=p.fps,
                              sample_rate=sr, n_frames=p.n_frames, n_samples=n_samples))
        live = slot.request.priority is Priority.LIVE  # aired while it is made: every chunk judged at once
        speech = work.speech = SpeechChecks(cfg, c.transcriber, plan, self.workers.submit, lambda: self._turn(slot),
                                            lambda s: slot.emit("chunk_checked", Phase.SPEECH_CHECK.value, **s),
                                            per_sentence=live, cpu=slot.cpu)

        # 5. Stream: speech chunk by chunk, frames as soon as their motion is final.
        if not cfg.pipeline.parallel_audio_actor:  # the lower peak on a tight card: the actor first
            while not actor.done():
                slot.token.wait(TICK_S)
                slot.token.raise_if_cancelled()
        chunks: queue.Queue = queue.Queue()
        work.add(self.workers.submit(self._voice, slot, plan, chunks))
        waveform = np.zeros(n_samples, np.float32)
        target = slot.request.loudness or cfg.loudness  # a channel's program.loudness, else the config's
        normalizer = program_loudness.StreamNormalizer(sr, target.target_lufs, target.true_peak_dbtp)
        stream = SlotStream(slot, renderer=self.renderer, media=media, motion=motion, speech=speech,
                            waveform=waveform, speech_samples=plan.speech_samples, streaming=cfg.pipeline.streaming,
                            turn=lambda: self._turn(slot),
                            make_checks=lambda portrait: self._frame_checks(slot, portrait, result, plan if live else None),
                            on_actor=lambda: self._checkpoint(slot, Phase.VOICE_ACTOR.value), loudness=normalizer)
        checks = work.checks = stream.run(chunks, actor)
        result.audio_waveform, result.n_frames, result.animation = waveform, p.n_frames, self.animation
        with slot.cpu.stage("loudness"):  # the sidecar's figures, measured on the audio as it aired
            result.loudness = {**program_loudness.report(waveform, sr, target.target_lufs), **normalizer.summary()}
        short = program_loudness.shortfall(result.loudness)
        if short:
            slot.warnings.append(short)
        self._checkpoint(slot, Phase.VIDEO.value)

        # 6. Judge the whole slot, before anything of it is published.
        slot.begin(Phase.VERIFY)
        checks.finish()
        heard = speech.finish(slot.token)
        slot.end(Phase.SPEECH_CHECK)
        with slot.cpu.stage("checks"):
            identity, lips = checks.reports(waveform, p.fps)
        self._turn(slot)
        with self._verify_lock, slot.cpu.stage("verify"):
            report, embedding = c.verifier.verify_samples(checks.clip_frames, p.n_frames, v.prompt,
                                                          recipe.semantic_constraints.clip_threshold)
        result.verification = dataclasses.replace(report, identity=identity, lip_sync=lips, speech=heard)
        result.clip_embedding = embedding
        slot.end(Phase.VERIFY)
        self._checkpoint(slot, Phase.VERIFY.value)
        if result.verification.fails_slot:
            raise _VerificationFailed("verification failed: " + "; ".join(result.verification.failure_reasons()))

        # 7. Complete the media and prove them.
        slot.phase = Phase.FINALIZE.value
        media.finish()  # the sinks' own stages (the encoder's flush)
        result.video_frames = None if kept is None else kept.frames
        result.proof = proof.hasher.proof(result.recipe_sha256, slot.seed)
        result.success = True

    # ---- the work beside the slot's thread ------------------------------------------------------
    def _voice(self, slot: Slot, plan: Any, out: queue.Queue) -> None:
        """Each chunk of speech, in order, handed to the slot's thread as soon as it exists."""

        def speak(index: int, wide: bool, handle: Any):
            with self._on_stream("voice"), slot.cpu.stage("voice"):
                return self.components.voice.speak(plan, index, seed=slot.seed, wide=wide, handle=handle)

        def deliver(chunk) -> None:
            out.put(chunk)
            slot.wake.set()

        try:
            # A live insert airs once its first sentence is heard, not at its first frame: it speaks
            # that sentence's chunks side by side rather than its first chunk wide (VoiceCalls).
            wide_first = slot.request.priority is not Priority.LIVE
            self.voice_calls.speak_in_order(slot, len(plan.chunks), speak, deliver, wide_first=wide_first)
            slot.end(Phase.VOICE)
            out.put(VOICE_DONE)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the slot's thread
            out.put(exc)
        finally:
            slot.wake.set()

    def _actor(self, slot: Slot) -> tuple[ActorPortrait, SlotVideo]:
        """The portrait and its framing, then what the animator makes of it (once per slot)."""
        cfg, c = self.config, self.components
        slot.begin(Phase.ACTOR)
        self._turn(slot)

        def generate(seed: int) -> np.ndarray:
            with self._actor_lock:
                return c.actor.generate(slot.recipe.visual_track.prompt, seed, cancel=slot.token)

        with self._on_stream("actor"), slot.cpu.stage("actor"):
            portrait = make_portrait(
                actor_image=slot.recipe.visual_track.actor_image,
                stand_in=None if cfg.pipeline.actor == "flux" else cfg.pipeline.actor,
                generate=None if c.actor is None else generate, seed=slot.seed,
                height=cfg.buffers.actor.height, width=cfg.buffers.actor.width, analyzer=c.faces,
                faces_cfg=cfg.faces, frame=cfg.faces.framing, time_left=slot.remaining_s,
                generated_is_stand_in=cfg.models.flux.source == MINIATURE,
            )
            slot.warnings.extend(portrait.notes)
            started = time.perf_counter()
            animator, framing = c.animator, portrait.framing
            if animator.needs_landmarks and framing is None:
                raise VortexError(f"the {animator.name} animator needs a framed face, and the portrait "
                                  f"({portrait.origin}) has none located")
            crop = animator.crops_face and framing is not None
            source = animator.prepare(framing.crop(portrait.image) if crop else portrait.image,
                                      framing.landmarks if crop else None)
            image = torch.from_numpy(np.array(portrait.image, copy=True)).permute(2, 0, 1).to(self.device)
        slot.record("source", (time.perf_counter() - started) * 1000.0)
        slot.end(Phase.ACTOR)
        return portrait, SlotVideo(animator, source, framing, image)

    def _frame_checks(self, slot: Slot, portrait: ActorPortrait, result: GenerationResult,
                      live_plan: Any = None) -> FrameChecks:
        """The face checks and CLIP's samples; a live insert's plan adds one identity sample per chunk
        of speech, told as a `frame_checked` event for the channel's delay line. The sample is early
        in its chunk (half a second in, or its middle if shorter), so the verdict comes soon."""
        result.actor = portrait.summary()
        p, sr = slot.recipe.slot_params, self.config.buffers.audio.sample_rate
        chunk_frames = {}
        for k in range(len(live_plan.chunks) if live_plan is not None else 0):
            start, length = live_plan.chunk_starts[k], live_plan.chunk_samples(k)
            chunk_frames[min(int((start + min(length / 2, sr / 2)) * p.fps / sr), p.n_frames - 1)] = k
        with slot.cpu.stage("checks"):  # the portrait's own descriptor
            return FrameChecks(self.config, self.components.faces, portrait, p.n_frames,
                               self.components.verifier.sample_indices(p.n_frames), lambda: self._turn(slot),
                               slot.token, chunk_frames=chunk_frames, cpu=slot.cpu,
                               on_chunk_frame=lambda d: slot.emit("frame_checked", Phase.VIDEO.value, **d))

    def _watermarks(self, slot: Slot):
        """The pixel and audio watermarks (node, slot id, CRC) of a signed slot's MP4
        (vortex.provenance.watermark, .audio_mark); (None, None) when signing is off."""
        if self.signer is None:
            return None, None
        from ..provenance.audio_mark import AudioMarker
        from ..provenance.watermark import Marker

        v = self.config.buffers.video
        return Marker(self.signer.node, slot.slot_id, v.height, v.width), AudioMarker(self.signer.node, slot.slot_id,
                                                                                     self.config.buffers.audio.sample_rate)

    def _sign(self, slot: Slot, result: GenerationResult):
        """The Content Credentials step of the publish (vortex.provenance), or None when signing is off."""
        if self.signer is None:
            return None
        return self.signer(result.metadata(), slot.recipe.visual_track.actor_image)

    def _turn(self, slot: Slot) -> None:
        if slot.flight is not None:
            self.scheduler.turn(slot.flight)

    def _on_stream(self, name: str):
        stream = self._streams.get(name)
        return _cuda_stream(stream) if stream is not None else contextlib.nullcontext()

    # ---- bookkeeping ----------------------------------------------------------------------------
    def _finish_result(self, slot: Slot, result: GenerationResult, target: Optional[SlotOutput]) -> None:
        result.timings_ms = dict(slot.timings_ms)
        result.cpu_s = dict(slot.cpu.seconds)
        if slot.flight is not None and slot.flight.paused_s > 0:
            result.timings_ms["paused"] = slot.flight.paused_s * 1000.0
        result.spans_ms = {k: v for k, v in slot.spans_ms.items() if not math.isnan(v[1])}
        result.vram_peaks = dict(slot.vram_peaks)
        result.first_frame_ms, result.first_audio_ms = slot.first_frame_ms, slot.first_audio_ms
        result.chunks = list(slot.chunks)
        result.warnings = slot.warnings
        result.generation_time_ms = slot.elapsed_ms()
        if target is not None:
            try:
                result.report_path = target.write_report(result.metadata(), success=result.success)
            except OutputError as exc:
                if result.success:  # the MP4 is out, its sidecar is not: the slot did not complete
                    target.mp4.unlink(missing_ok=True)
                    target.captions.unlink(missing_ok=True)
                    result.success, result.failed_phase, result.error_kind = False, Phase.FINALIZE.value, "output"
                result.error_msg = str(exc) if result.error_msg is None else f"{result.error_msg}; and {exc}"
        log.info("slot finished", extra={"event": "slot", "slot_id": slot.slot_id, "success": result.success,
                                         "ms": round(result.generation_time_ms, 1), "phase": result.failed_phase})
        slot.emit("result", result.failed_phase, **result.metadata())

    def _checkpoint(self, slot: Slot, stage: str) -> None:
        """Record the stage's peak device memory (zeros on CPU) and check the limits."""
        stats = vram_stats(self.device)
        slot.vram_peaks[stage] = {"allocated": stats.max_allocated, "reserved": stats.max_reserved}
        reset_peak(self.device)
        self.monitor.check(f"after {stage}")

    def _budget(self, deadline: float | None) -> float:
        if deadline is None:
            return self.config.pipeline.generation_timeout_sec
        budget = float(deadline)
        if not math.isfinite(budget) or budget <= 0:  # NaN would silently mean "no deadline"
            raise VortexError(f"deadline must be a finite number of seconds > 0, got {deadline!r}")
        return budget

    def _check_alive(self) -> None:
        if self._closed:
            raise EngineClosed("the engine is closed: start a new VortexPipeline")
        if self._dead is not None:
            raise EngineDead(f"the engine is dead ({self._dead}): restart the process")

    def _fail(self, slot: Slot, result: GenerationResult, message: str, phase: str, kind: str) -> None:
        result.success, result.error_msg, result.failed_phase, result.error_kind = False, message, phase, kind
        slot.emit("phase_failed", phase, error=message, error_kind=kind)

    def _note_unused_fields(self, slot: Slot) -> None:
        v = slot.recipe.visual_track
        if v.negative_prompt:
            slot.warnings.append("visual_track.negative_prompt is ignored: FLUX.1-schnell is guidance-distilled and has no negative prompt")
        if self.animation == "still" and (v.expression_preset != "neutral" or v.expression_sequence or v.driving_source):
            slot.warnings.append("expression_preset, expression_sequence and driving_source are ignored: pipeline.animation is 'still'")


class _Work:
    """What a slot started beside its own thread, so that a failure stops and cleans up all of it."""

    def __init__(self) -> None:
        self.futures: list[Future] = []
        self.media: Optional[SinkSet] = None
        self.speech: Optional[SpeechChecks] = None
        self.checks: Optional[FrameChecks] = None

    def add(self, future: Future) -> Future:
        self.futures.append(future)
        return future

    def abandon(self) -> None:
        """The slot failed (its token is cancelled): wait for its threads, then drop its media."""
        for future in self.futures:
            with contextlib.suppress(BaseException):
                future.result()
        if self.speech is not None:
            self.speech.drain()
        if self.checks is not None:
            self.checks.abort()
        if self.media is not None:
            self.media.abort()


@contextlib.contextmanager
def _cuda_stream(stream: torch.cuda.Stream):
    with torch.cuda.stream(stream):
        yield
    stream.synchronize()


def _result_event(request_id: str, result: GenerationResult):
    from ..contracts.requests import SlotEvent

    return SlotEvent(request_id, "result", 0.0, None, result.metadata())


class _VerificationFailed(VortexError):
    pass
