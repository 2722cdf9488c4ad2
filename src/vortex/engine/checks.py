"""The checks of one slot, riding its stream, and whether each can judge it.

No check needs the whole slot at once. As frames pass (`FrameChecks`, a sink): the identity
check measures its K sampled frames, the lip-sync check the opening of every step-th frame (one
float each), CLIP keeps its K sampled frames; a worker thread does the measuring, so the render
never waits for dlib. As speech chunks pass (`SpeechChecks`): sentences are transcribed in
windows while the next chunks are made, and each sentence is scored. The slot is still judged
whole, after its last frame, before anything of it is published.

A check is enforced where its measurement means something: the face checks where the animator
renders a real face from a portrait that shows one (the preview animator, LivePortrait on real
weights, a still portrait for identity); the speech check where the voice is real. Everywhere
else the report still says what was (or could not be) measured and why it does not fail the slot.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ..asr.check import MIN_JUDGED_WORDS
from ..asr.normalize import normalize_words
from ..config import MINIATURE, VortexConfig
from ..contracts.cancel import CancelToken
from ..contracts.reports import IdentityReport, LipSyncReport, SpeechReport
from .cpu import CpuLedger
from .portrait import ActorPortrait
from .scheduling import TICK_S

FRAME_QUEUE = 32  # frames waiting for the face checks (~25 MB at 512²): beyond, the render waits


@dataclass(frozen=True)
class Judgement:
    enforced: bool
    why_not: Optional[str] = None


def face_judgement(cfg: VortexConfig, portrait: ActorPortrait) -> Judgement:
    if portrait.framing is None:
        if not cfg.faces.framing:
            return Judgement(False, "faces.framing is off in this profile: no face was located in the portrait")
        return Judgement(False, f"the portrait ({portrait.origin}) holds no detectable face")
    if cfg.pipeline.animation == "liveportrait" and cfg.models.liveportrait.source == MINIATURE:
        return Judgement(False, "LivePortrait runs on stand-in (seeded-random miniature) weights: it renders no face")
    return Judgement(True)


def lip_judgement(cfg: VortexConfig, faces: Judgement) -> Judgement:
    if cfg.pipeline.animation == "still":
        return Judgement(False, "pipeline.animation is 'still': the lips do not move")
    return faces


def speech_judgement(cfg: VortexConfig) -> Judgement:
    if cfg.models.kokoro.source == MINIATURE:
        return Judgement(False, "Kokoro runs on stand-in (seeded-random miniature) weights: its speech is not words")
    return Judgement(True)


class FrameChecks:
    """A sink: the face checks and CLIP's samples, taken as the frames pass."""

    cpu_stage = "checks"

    def __init__(self, cfg: VortexConfig, analyzer: Any, portrait: ActorPortrait, n_frames: int,
                 clip_indices: list[int], turn: Callable[[], None], token: CancelToken,
                 chunk_frames: Optional[dict[int, int]] = None,
                 on_chunk_frame: Optional[Callable[[dict], None]] = None, cpu: Optional[CpuLedger] = None):
        """`chunk_frames` ({frame: chunk}): one frame per chunk of speech whose identity is measured
        as it passes and told to `on_chunk_frame` (a live insert's delay line waits for it)."""
        from ..faces import IdentityMeter, LipSyncMeter

        v = cfg.verification
        self.cfg, self.portrait, self.turn, self.token = cfg, portrait, turn, token
        self.cpu = cpu or CpuLedger()
        self.faces = face_judgement(cfg, portrait)
        self.lip = lip_judgement(cfg, self.faces)
        framed = portrait.framing is not None and analyzer is not None
        self.chunk_frames = dict(chunk_frames or {}) if framed else {}
        self.on_chunk_frame = on_chunk_frame
        self.identity = IdentityMeter(analyzer, portrait.image, n_frames, v.face_frames, v.face_max_distance,
                                      extra=tuple(self.chunk_frames), region=_pasted_region(cfg, portrait),
                                      steady_k=v.face_frames_steady) if framed else None
        self.lips = LipSyncMeter(analyzer, n_frames, step=v.lip_sync_step, box_hint=portrait.framing.box) \
            if framed and cfg.pipeline.animation != "still" else None
        self.clip_indices = set(clip_indices)
        self.clip_frames: dict[int, np.ndarray] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=FRAME_QUEUE)
        self._error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def open(self, shape: Any) -> None:
        if self.identity is not None or self.lips is not None:
            self._thread = threading.Thread(target=self._measure, name="vortex-checks", daemon=True)
            self._thread.start()

    def write_audio(self, chunk: np.ndarray) -> None:
        pass

    def write_frame(self, index: int, frame: np.ndarray) -> None:
        if index in self.clip_indices:
            self.clip_frames[index] = np.array(frame, copy=True)
        wanted = (self.identity is not None and self.identity.wants(index)) or (self.lips is not None and self.lips.wants(index))
        if wanted:
            self._put((index, frame))  # a view of the render's batch, which nothing rewrites

    def finish(self) -> None:
        if self._thread is None:
            return
        self._put(None)
        while self._thread.is_alive():
            self._thread.join(TICK_S)
            self.token.raise_if_cancelled()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        self._stop.set()
        self.clip_frames.clear()

    def reports(self, waveform: np.ndarray, fps: int) -> tuple[IdentityReport, LipSyncReport]:
        v = self.cfg.verification
        if self.identity is None:  # nothing to compare against: no face was located
            identity = IdentityReport(passed=False, enforced=False, why_not_enforced=self.faces.why_not,
                                      max_distance=v.face_max_distance,
                                      notes=["not measured: the portrait holds no located face"])
        else:
            identity = self.identity.report(self.faces.enforced, self.faces.why_not)
        if self.lips is None:
            lips = LipSyncReport(passed=False, enforced=False, why_not_enforced=self.lip.why_not, floor=v.lip_sync_floor,
                                 step=v.lip_sync_step, max_lag_ms=v.lip_sync_max_lag_ms,
                                 notes=[f"not measured: {self.lip.why_not}"])
        else:
            lips = self.lips.report(waveform, self.cfg.buffers.audio.sample_rate, fps, max_lag_ms=v.lip_sync_max_lag_ms,
                                    floor=v.lip_sync_floor, enforced=self.lip.enforced, why_not=self.lip.why_not)
        return identity, lips

    def _put(self, item: Any) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=TICK_S)
                return
            except queue.Full:
                self.token.raise_if_cancelled()

    def _measure(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    item = self._queue.get(timeout=TICK_S)
                except queue.Empty:
                    continue
                if item is None:
                    return
                index, frame = item
                self.turn()
                with self.cpu.stage("checks"):
                    self._measure_one(index, frame)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the slot's thread by finish()
            self._error = exc
            self._stop.set()

    def _measure_one(self, index: int, frame: np.ndarray) -> None:
        if self.identity is not None and self.identity.wants(index):
            if self.identity.optional(index) and index not in self.chunk_frames and self._steady():
                self.identity.skip(index)
            else:
                self.identity.measure(index, frame)
            if index in self.chunk_frames and self.on_chunk_frame is not None:
                d = self.identity.distances.get(index)
                self.on_chunk_frame({"chunk": self.chunk_frames[index], "frame": index, "distance": d,
                                     "passed": d is not None and d < self.identity.max_distance,
                                     "enforced": self.faces.enforced})
        if self.lips is not None and self.lips.wants(index):
            self.lips.measure(index, frame)


    def _steady(self) -> bool:
        """The lip-sync tracker has found the face on every frame it measured so far (at least 2)."""
        return self.lips is not None and self.lips.steady()


def _pasted_region(cfg: VortexConfig, portrait: ActorPortrait) -> Optional[tuple[int, int, int, int]]:
    """Where the rendered frames differ from the portrait: the face crop's footprint, pasted back
    (the preview animator and LivePortrait render the crop only; `still` renders nothing)."""
    f = portrait.framing
    if f is None or cfg.pipeline.animation not in ("preview", "liveportrait"):
        return None
    s = f.crop_size
    corners = np.array([[0, 0, 1], [s, 0, 1], [0, s, 1], [s, s, 1]], dtype=np.float64) @ np.asarray(f.inverse).T
    h, w = f.portrait_size
    left, top = max(0, int(np.floor(corners[:, 0].min()))), max(0, int(np.floor(corners[:, 1].min())))
    right, bottom = min(w, int(np.ceil(corners[:, 0].max())) + 1), min(h, int(np.ceil(corners[:, 1].max())) + 1)
    return (left, top, right, bottom) if right - left >= 32 and bottom - top >= 32 else None


class SpeechChecks:
    """The speech check riding the voice: sentences transcribed in windows of at least
    `verification.speech_window_sec` of audio (a sentence never split), each window while the next
    chunks are made; each sentence scored as soon as its window is heard.

    `per_sentence` (a live insert, aired while it is made): a window closes at the first sentence
    end that gives it enough words to be judged (4), so each sentence's verdict comes as early as
    it can, whatever Whisper's cost per window."""

    def __init__(self, cfg: VortexConfig, transcriber: Any, plan: Any, submit: Callable[..., Future],
                 turn: Callable[[], None], on_sentence: Callable[[dict], None], per_sentence: bool = False,
                 cpu: Optional[CpuLedger] = None):
        v = cfg.verification
        self.cfg, self.transcriber, self.plan = cfg, transcriber, plan
        self.submit, self.turn, self.on_sentence = submit, turn, on_sentence
        self.cpu = cpu or CpuLedger()
        self.sample_rate = cfg.buffers.audio.sample_rate
        self.texts = {c.sentence: c.text for c in plan.chunks}
        self.judge = speech_judgement(cfg)
        self.active = transcriber is not None and v.speech_check
        self.window_samples = 0 if per_sentence else int(v.speech_window_sec * self.sample_rate)
        self.min_words = MIN_JUDGED_WORDS if per_sentence else 0
        self._audio: list[np.ndarray] = []
        self._sentences: list[int] = []
        self._windows: list[Future] = []

    def add(self, chunk: Any) -> None:
        if not self.active:
            return
        self._audio.append(chunk.audio)
        if chunk.sentence not in self._sentences:
            self._sentences.append(chunk.sentence)
        last = chunk.index + 1 == len(self.plan.chunks)
        sentence_ends = last or self.plan.chunks[chunk.index + 1].sentence != chunk.sentence
        enough = (sum(len(a) for a in self._audio) >= self.window_samples
                  and sum(len(normalize_words(self.texts[k])) for k in self._sentences) >= self.min_words)
        if sentence_ends and (last or enough):
            audio, sentences = np.concatenate(self._audio), tuple(self._sentences)
            self._audio, self._sentences = [], []
            self._windows.append(self.submit(self._hear, audio, sentences))

    def _hear(self, audio: np.ndarray, sentences: tuple[int, ...]) -> Any:
        from ..asr.check import sentence_errors, transcribe_window

        self.turn()
        with self.cpu.stage("speech check"):
            window = transcribe_window(self.transcriber, audio, self.sample_rate, sentences)
            scored, _ = sentence_errors(window, self.texts, self.cfg.verification.max_sentence_wer)
        for s in scored:
            self.on_sentence({**s, "heard": window.transcript})
        return window

    @property
    def started(self) -> bool:
        return bool(self._windows)

    def finish(self, token: CancelToken) -> SpeechReport:
        v = self.cfg.verification
        if not self.active:
            return SpeechReport(passed=False, enforced=False, max_wer=v.max_wer,
                                why_not_enforced="verification.speech_check is off in this profile", notes=["not measured"])
        windows = []
        for future in self._windows:
            while not future.done():
                token.wait(TICK_S)
                token.raise_if_cancelled()
            windows.append(future.result())
        from ..asr.check import judge_speech

        return judge_speech(windows, self.texts, max_wer=v.max_wer, max_sentence_wer=v.max_sentence_wer,
                            enforced=self.judge.enforced, why_not=self.judge.why_not)

    def drain(self) -> None:
        """After a failure: wait for windows in flight (their threads use the shared recogniser)."""
        for future in self._windows:
            try:
                future.result()
            except BaseException:  # noqa: BLE001 - the slot has already failed
                pass
