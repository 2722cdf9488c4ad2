"""VortexPipeline: one recipe in, one verified slot out, with every model resident.

    recipe ─┬─ voice (Kokoro → speech-driven motion) ──────────┐
            └─ actor (Flux | actor_image → LivePortrait source) ┴─ video (LivePortrait W+G → ring → encoder)
                                                                    ─ verify (CLIP B+L, identity) ─ MP4 + sidecar

Voice and actor run at the same time in worker threads (each on its own CUDA stream on a GPU).
A slot never raises for a failed generation: it returns a `GenerationResult` with `success=False`,
the phase it stopped in and why. Only an outside cancellation raises (`CancelledError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from .cancel import CancelToken, SlotCancelled
from .config import VortexConfig
from .errors import DeadlineExceeded, RecipeError, VortexError, VortexInitializationError
from .logs import phase_event
from .media import Mp4Writer
from .memory.buffers import SlotBuffers
from .memory.monitor import VRAMMonitor
from .memory.plan import VRAMPlan, compute_plan
from .memory.stats import reset_peak, vram_stats
from .outputs import OutputError, SlotOutput, describe_os_error
from .models.registry import ModelRegistry
from .recipe import Recipe
from .result import GenerationResult, determinism_proof
from .motion import DrivingSequence
from .motion.driver import MotionDriver
from .motion.expressions import check_expressions
from .video import StillTrack, VideoTrack, stream_frames

log = logging.getLogger("vortex.pipeline")

# phase name, status ("start" | "done" | "failed"), milliseconds since the slot began
ProgressFn = Callable[[str, str, float], None]


@dataclass
class _Slot:
    """The state of one slot in flight."""

    recipe: Recipe
    slot_id: int
    seed: int
    budget_s: float
    t0: float = field(default_factory=time.perf_counter)
    token: CancelToken = field(default_factory=CancelToken)
    phase: str = "validate"
    timings_ms: dict[str, float] = field(default_factory=dict)
    spans_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    inflight: set = field(default_factory=set)
    vram_peaks: dict[str, dict[str, int]] = field(default_factory=dict)
    first_frame_ms: Optional[float] = None
    warnings: list[str] = field(default_factory=list)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0

    def remaining_s(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)


class VortexPipeline:
    """Loads every component once (static residency) and generates slots one at a time."""

    def __init__(
        self,
        config: VortexConfig | None = None,
        *,
        registry: ModelRegistry | None = None,
        on_progress: Optional[ProgressFn] = None,
    ):
        self.config = cfg = config or VortexConfig.load()
        self.device = torch.device(cfg.device.name)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise VortexInitializationError(
                f"profile '{cfg.profile}' runs on {cfg.device.name}, but this torch build sees no CUDA GPU "
                f"(torch {torch.__version__}). Use `--profile cpu-miniature`, or install a CUDA build of torch."
            )
        # Only a GPU engine has a budget to keep; building every full-size architecture on meta to
        # count it costs seconds of start-up, so a CPU engine skips it (`vortex plan` still shows it).
        self.plan: Optional[VRAMPlan] = None
        if self.device.type == "cuda":
            self.plan = compute_plan(cfg)
            self.plan.raise_if_over()
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = cfg.device.allow_tf32
            torch.backends.cudnn.allow_tf32 = cfg.device.allow_tf32
        self.on_progress = on_progress
        self.monitor = VRAMMonitor(cfg.vram.soft_limit_gb, cfg.vram.hard_limit_gb, cfg.device.name)
        self.animated = cfg.pipeline.animation == "liveportrait"
        self.driver = MotionDriver(cfg.motion)
        self.registry = registry or ModelRegistry.load(cfg)
        self.buffers = SlotBuffers.allocate(cfg.buffers, self.device)
        self.monitor.check("startup")
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vortex-worker")
        self._streams = (
            {name: torch.cuda.Stream(self.device) for name in ("voice", "actor")} if self.device.type == "cuda" else {}
        )
        self._lock = asyncio.Lock()

    @property
    def stand_ins(self) -> list[str]:
        return self.config.stand_ins

    def close(self) -> None:
        self._executor.shutdown(wait=True)

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
        async with self._lock:  # the models are shared: one slot at a time
            return await self._generate(recipe, slot_id, seed, deadline, output)

    def generate_slot_sync(self, *args: Any, **kwargs: Any) -> GenerationResult:
        return asyncio.run(self.generate_slot(*args, **kwargs))

    async def _generate(self, recipe, slot_id, seed, deadline, output) -> GenerationResult:
        started = time.perf_counter()
        try:
            recipe = _as_recipe(recipe)
            budget_s = self._budget(deadline)
            target = output if isinstance(output, SlotOutput) or output is None else SlotOutput.prepare(output)
        except VortexError as exc:
            return GenerationResult(slot_id=slot_id or 0, seed=seed or 0, success=False, error_msg=str(exc),
                                    failed_phase="validate", profile=self.config.profile, stand_ins=self.stand_ins)
        slot_id = recipe.slot_params.slot_id if slot_id is None else slot_id
        seed = _pick_seed(seed, recipe.slot_params.seed)
        recipe = recipe.with_overrides(slot_id=slot_id, seed=seed)
        slot = _Slot(recipe=recipe, slot_id=slot_id, seed=seed, budget_s=budget_s)
        slot.t0 = started
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
            await self._drain(slot)
            raise
        except DeadlineExceeded as exc:
            self._fail(slot, result, str(exc), exc.phase)
        except SlotCancelled as exc:
            self._fail(slot, result, f"cancelled: {exc}", slot.phase)
        except VortexError as exc:
            self._fail(slot, result, str(exc), slot.phase)
        except OSError as exc:  # the disk filled up, the folder went away: name the file
            self._fail(slot, result, describe_os_error(target.mp4 if target else exc.filename, exc), slot.phase)
        except Exception as exc:  # a bug or a library failure: the slot fails, the engine lives on
            log.exception("slot failed", extra={"event": "slot_error", "slot_id": slot_id, "phase": slot.phase})
            self._fail(slot, result, f"{type(exc).__name__}: {exc}", slot.phase)
        finally:
            if not result.success:
                slot.token.cancel("slot failed")
                await self._drain(slot)
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
                    result.success, result.failed_phase = False, "finalize"
                result.error_msg = str(exc) if result.error_msg is None else f"{result.error_msg}; and {exc}"
        log.info("slot finished", extra={"event": "slot", "slot_id": slot_id, "success": result.success,
                                         "ms": round(result.generation_time_ms, 1), "phase": result.failed_phase})
        return result

    async def _run(self, slot: _Slot, result: GenerationResult, staging: Path | None) -> None:
        recipe, reg = slot.recipe, self.registry
        voice, verifier = reg.get_model("kokoro"), reg.get_model("clip")
        recipe.check_voice(voice.voice_ids)
        check_expressions(recipe.visual_track.expression_preset, recipe.visual_track.expression_sequence)
        self._note_unused_fields(slot)
        reset_peak(self.device)
        self.monitor.check("slot start")

        slot.phase = "voice+actor"
        jobs = (("voice", self._voice, slot), ("actor", self._actor, slot))
        if self.config.pipeline.parallel_audio_actor:
            (speech, driving), (portrait, source) = await self._concurrently(slot, *jobs)
        else:  # lower peak memory: the plan counts the two phases apart
            (speech, driving), (portrait, source) = [await self._in_worker(slot, *job) for job in jobs]
            slot.phase = "voice+actor"
        result.audio_waveform = speech.waveform
        result.speech = {
            "speed": round(speech.speed, 4), "emotion": speech.emotion, "resynthesised": speech.resynthesised,
            "speech_samples": int(speech.speech_samples), "padding_samples": int(len(speech.waveform) - speech.speech_samples),
            "phonemes": speech.phonemes,
        }
        self._checkpoint(slot, "voice+actor")

        track = self._track(source, driving)
        frames = await self._in_worker(slot, "video", self._video, slot, track, speech.waveform, staging)
        result.video_frames, result.animation = frames, track.name
        self._checkpoint(slot, "video")

        threshold = recipe.semantic_constraints.clip_threshold
        report, embedding = await self._in_worker(
            slot, "verify", verifier.verify, frames, recipe.visual_track.prompt, threshold, portrait
        )
        result.verification, result.clip_embedding = report, embedding
        self._checkpoint(slot, "verify")
        if report.fails_slot:
            identity = "" if report.identity_min is None else (
                f"; identity against the portrait {report.identity_min:.3f} (threshold {report.identity_threshold:.3f})"
            )
            raise _VerificationFailed(
                f"verification failed: CLIP ensemble {report.ensemble:.3f} (B/32 {report.mean_b:.3f}, "
                f"L/14 {report.mean_l:.3f}) against thresholds {report.threshold:.3f} "
                f"(B {report.threshold_b:.3f}, L {report.threshold_l:.3f}){identity}"
            )
        slot.phase = "finalize"
        result.proof = determinism_proof(result.recipe_sha256, slot.seed, frames, speech.waveform)
        result.success = True

    # ---- the work each phase does, in a worker thread ------------------------------------------
    def _voice(self, slot: _Slot) -> tuple[Any, Optional[DrivingSequence]]:
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

    def _actor(self, slot: _Slot) -> tuple[np.ndarray, Any]:
        """The portrait, then what LivePortrait's F and M make of it (once per slot)."""
        v = self.config.buffers.actor
        if slot.recipe.visual_track.actor_image:
            image = load_portrait(slot.recipe.visual_track.actor_image, v.height, v.width)
        else:
            image = self.registry.get_model("flux").generate(slot.recipe.visual_track.prompt, slot.seed, cancel=slot.token)
        self.buffers.load_actor(image)
        if not self.animated:
            return image, None
        slot.token.raise_if_cancelled()
        started = time.perf_counter()
        source = self.registry.get_model("liveportrait").prepare(image)
        slot.timings_ms["source"] = (time.perf_counter() - started) * 1000.0
        return image, source

    def _track(self, source: Any, driving: Optional[DrivingSequence]) -> VideoTrack:
        if not self.animated:
            return StillTrack(self.buffers.actor)
        return self.registry.get_model("liveportrait").track(source, driving)

    def _video(self, slot: _Slot, track: VideoTrack, waveform: np.ndarray, staging: Path | None) -> np.ndarray:
        n_frames = slot.recipe.slot_params.n_frames
        b = self.config.buffers.video
        frames = np.empty((n_frames, b.height, b.width, 3), dtype=np.uint8)
        with contextlib.ExitStack() as stack:
            writer = None
            if staging is not None:
                writer = stack.enter_context(Mp4Writer(
                    staging, width=b.width, height=b.height, fps=slot.recipe.slot_params.fps,
                    sample_rate=self.config.buffers.audio.sample_rate, atomic=False,
                ))
                writer.write_audio(waveform)

            def sink(i: int, frame: np.ndarray) -> None:
                if i == 0:
                    slot.first_frame_ms = slot.elapsed_ms()
                frames[i] = frame
                if writer is not None:
                    writer.write_frame(frame)

            stream_frames(track, n_frames, self.buffers.frame_ring, sink, slot.token)
            if writer is not None:
                writer.close()
        return frames

    # ---- scheduling ------------------------------------------------------------------------------
    def _timed(self, slot: _Slot, phase: str, fn: Callable, *args: Any) -> Any:
        self._progress(phase, "start", slot)
        start = time.perf_counter()
        stream = self._streams.get(phase)
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            out = fn(*args)
            if stream is not None:
                stream.synchronize()
        end = time.perf_counter()
        slot.timings_ms[phase] = (end - start) * 1000.0
        slot.spans_ms[phase] = ((start - slot.t0) * 1000.0, (end - slot.t0) * 1000.0)
        phase_event(log, slot.slot_id, phase, slot.timings_ms[phase])
        self._progress(phase, "done", slot)
        return out

    async def _in_worker(self, slot: _Slot, phase: str, fn: Callable, *args: Any) -> Any:
        slot.phase = phase
        return (await self._concurrently(slot, (phase, fn, *args)))[0]

    async def _concurrently(self, slot: _Slot, *jobs: tuple) -> list[Any]:
        """Run each (phase, fn, *args) in a worker thread, all at once; wait within the deadline."""
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(self._executor, self._timed, slot, phase, fn, *args) for phase, fn, *args in jobs]
        slot.inflight.update(futures)
        pending = set(futures)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=max(slot.remaining_s(), 0), return_when=asyncio.FIRST_EXCEPTION)
            for fut in done:
                if fut.exception() is not None:
                    slot.phase = next(p for (p, *_), f in zip(jobs, futures) if f is fut)
                    raise fut.exception()
            if pending and slot.remaining_s() <= 0:
                running = [p for (p, *_), f in zip(jobs, futures) if f in pending]
                slot.token.cancel("deadline exceeded")
                raise DeadlineExceeded("+".join(running), slot.budget_s)
        return [f.result() for f in futures]

    async def _drain(self, slot: _Slot) -> None:
        """Wait for worker threads to notice the cancel token, so the next slot starts clean."""
        live = [f for f in slot.inflight if not f.done()]
        if live:
            await asyncio.wait(live)
        for fut in slot.inflight:
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieve it, so asyncio does not warn about it
        slot.inflight.clear()

    def _checkpoint(self, slot: _Slot, stage: str) -> None:
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

    def _fail(self, slot: _Slot, result: GenerationResult, message: str, phase: str) -> None:
        result.success = False
        result.error_msg = message
        result.failed_phase = phase
        self._progress(phase, "failed", slot)

    def _progress(self, phase: str, status: str, slot: _Slot) -> None:
        if self.on_progress is not None:
            self.on_progress(phase, status, slot.elapsed_ms())

    def _note_unused_fields(self, slot: _Slot) -> None:
        v = slot.recipe.visual_track
        if v.negative_prompt:
            slot.warnings.append("visual_track.negative_prompt is ignored: FLUX.1-schnell is guidance-distilled and has no negative prompt")
        if not self.animated and (v.expression_preset != "neutral" or v.expression_sequence or v.driving_source):
            slot.warnings.append("expression_preset, expression_sequence and driving_source are ignored: pipeline.animation is 'still'")


class _VerificationFailed(VortexError):
    pass


def load_portrait(path: str | Path, height: int, width: int) -> np.ndarray:
    """Centre-crop a portrait to the frame's aspect and resize it: the recipe's actor_image."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = max(width / im.width, height / im.height)
            im = im.resize((max(width, round(im.width * scale)), max(height, round(im.height * scale))), Image.LANCZOS)
            left, top = (im.width - width) // 2, (im.height - height) // 2
            return np.asarray(im.crop((left, top, left + width, top + height)), dtype=np.uint8)
    except OSError as exc:
        raise RecipeError("visual_track.actor_image", f"cannot read image '{path}': {exc}") from None


def _as_recipe(recipe: Recipe | dict | str | Path) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    if isinstance(recipe, Path) or (isinstance(recipe, str) and not recipe.lstrip().startswith(("{", "slot_params", "recipe"))):
        return Recipe.from_file(recipe)
    return Recipe.from_text(recipe)


def _pick_seed(explicit: int | None, from_recipe: int | None) -> int:
    if explicit is not None:
        return explicit
    if from_recipe is not None:
        return from_recipe
    return secrets.randbits(63)  # a fresh seed, recorded in the result so the slot can be replayed
