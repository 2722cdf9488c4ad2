"""The voice: a script in, speech fitted to the slot and its per-phoneme timeline out, chunk by chunk.

Two steps (see the package docstring):

    plan(script, ...)       the duration predictor alone, on every chunk: the speed that fits the
                            slot and the whole phoneme timeline, before any audio is made
    speak(plan, k, ...)     chunk k's audio (one Kokoro call); its durations are the plan's

`stream` yields the chunks in order as each is made; `synthesize` collects them into one `Speech`
(tests, benchmarks). A chunk's audio depends only on its own tokens, speed and seed, so the
chunks concatenated are the whole slot's speech, however and whenever they are made.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ...config import KokoroConfig, placement_device
from ...contracts.cancel import CancelToken
from ...errors import RecipeError, SpeechTooLongError, VortexError
from ...recipe import Emotion
from ..g2p import PhonemeChunk, Phonemizer, script_chunks
from .common import SAMPLE_RATE, SAMPLES_PER_UNIT
from .join import join_trims, timeline_parts, trim_audio, trimmed_length
from .kmodel import TorchKokoro
from .onnx_export import OnnxKokoro

logger = logging.getLogger(__name__)

# The first chunk is spoken alone when the first sentence is longer: the slot's first frame waits
# for it (its audio, then its motion). At most about this much speech (the two pads of silence
# not counted: with the packaged voices "Welcome" alone lasts 1.33 s, 0.6 s of it pads), cut after
# a comma or a word, at least FIRST_CHUNK_WORDS words before and 2 after, never after a word that
# leans on the next one (see `_bounded_first`).
FIRST_CHUNK_S = 1.2
FIRST_CHUNK_WORDS = 2
_LEANING = frozenset("a an the to of and or but in on at for with from by as into than that our my your his her "
                     "their its this these is are was were be".split())


@dataclass(frozen=True)
class ProsodyPreset:
    speed: float
    gain: float


PROSODY_PRESETS: dict[Emotion, ProsodyPreset] = {
    Emotion.neutral: ProsodyPreset(1.00, 1.00),
    Emotion.excited: ProsodyPreset(1.08, 1.10),
    Emotion.sad: ProsodyPreset(0.90, 0.75),
    Emotion.angry: ProsodyPreset(1.05, 1.20),
    Emotion.manic: ProsodyPreset(1.18, 1.15),
}


@dataclass(frozen=True, eq=False)
class Timeline:
    """One entry per char of `phonemes`: where it starts and how long it lasts, in samples.

    Between two chunks a space stands for the pause (the previous chunk's trailing pad plus the
    next one's leading pad, less the silence trimmed inside a sentence: see `join`); `pauses`
    marks those entries, which the motion treats as silence."""

    phonemes: str
    starts: np.ndarray  # int64
    samples: np.ndarray  # int64
    pauses: np.ndarray  # bool


@dataclass(frozen=True, eq=False)
class SpeechPlan:
    """What the slot will say, fitted to it, before any audio exists."""

    chunks: tuple[PhonemeChunk, ...]
    pack: str
    speed: float  # the speed used: recipe speed x emotion factor, raised if needed to fit
    emotion: Emotion
    gain: float
    fitted: bool  # the speed was raised so that the speech fits the slot
    units: tuple[np.ndarray, ...]  # per chunk: the duration units (pads included) the synthesis will give
    chunk_starts: tuple[int, ...]  # the sample offset of each chunk's audio
    n_samples: int  # the slot's samples: speech, then silence
    speech_samples: int  # samples of speech (pads included)
    timeline: Timeline
    trims: tuple[tuple[int, int], ...] = ()  # per chunk: samples dropped at its start and end (`join`)

    def chunk_samples(self, index: int) -> int:
        head, tail = self.trims[index] if self.trims else (0, 0)
        return int(self.units[index].sum()) * SAMPLES_PER_UNIT - head - tail

    def summary(self) -> dict[str, Any]:
        """The result's `speech` section."""
        return {
            "speed": round(self.speed, 4), "emotion": self.emotion.value, "fitted": self.fitted,
            "speech_samples": int(self.speech_samples), "padding_samples": int(self.n_samples - self.speech_samples),
            "chunks": len(self.chunks), "phonemes": self.timeline.phonemes,
        }


@dataclass(frozen=True, eq=False)
class SpeechChunk:
    """One chunk of the slot's speech, as soon as it exists."""

    index: int
    sentence: int  # the script's sentence it speaks (a long one spans chunks)
    text: str  # that sentence's words
    audio: np.ndarray  # float32 in [-1, 1], the preset's gain applied
    start: int  # its first sample's offset in the slot
    synth_ms: float

    @property
    def end(self) -> int:
        return self.start + len(self.audio)


@dataclass(frozen=True, eq=False)
class Speech:
    """A whole slot's speech (`KokoroVoice.synthesize`): the chunks joined and padded with silence."""

    waveform: np.ndarray  # float32, exactly the slot's n_samples, in [-1, 1]
    sample_rate: int
    plan: SpeechPlan

    @classmethod
    def from_timeline(cls, waveform: np.ndarray, sample_rate: int, phonemes: str, starts: np.ndarray,
                      samples: np.ndarray, speech_samples: int) -> "Speech":
        """Speech of one chunk with a written timeline (tests and benchmarks of the motion)."""
        timeline = Timeline(phonemes, np.asarray(starts, np.int64), np.asarray(samples, np.int64),
                            np.zeros(len(phonemes), bool))
        plan = SpeechPlan(chunks=(), pack="", speed=1.0, emotion=Emotion.neutral, gain=1.0, fitted=False, units=(),
                          chunk_starts=(0,), n_samples=len(waveform), speech_samples=int(speech_samples),
                          timeline=timeline)
        return cls(waveform=np.asarray(waveform, np.float32), sample_rate=sample_rate, plan=plan)

    @property
    def timeline(self) -> Timeline:
        return self.plan.timeline

    @property
    def phonemes(self) -> str:
        return self.plan.timeline.phonemes

    @property
    def phoneme_starts(self) -> np.ndarray:
        return self.plan.timeline.starts

    @property
    def phoneme_samples(self) -> np.ndarray:
        return self.plan.timeline.samples

    @property
    def speech_samples(self) -> int:
        return self.plan.speech_samples

    @property
    def speed(self) -> float:
        return self.plan.speed

    @property
    def emotion(self) -> str:
        return self.plan.emotion.value

    @property
    def fitted(self) -> bool:
        return self.plan.fitted


class _Backend(Protocol):
    vocab: dict[str, int]
    context: int

    def raw_durations(self, token_ids: tuple[int, ...], pack: str) -> np.ndarray:
        """(len + 2,) float32: the duration predictor's output before the speed divides it."""

    def infer(self, token_ids: tuple[int, ...], pack: str, speed: float, seed: int,
              wide: bool = False, handle: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Audio (float32) and the per-token durations (int64, pads included) of one sentence;
        `wide`: on every voice call's threads at once (see `KokoroVoice.load`); `handle`: from
        `call_handle()`, stops the call (VoiceCallStopped)."""

    def call_handle(self) -> Any:
        """A handle whose `stop()` ends a call early, or None where calls cannot be stopped."""

    def modules(self) -> dict[str, torch.nn.Module]: ...


# ---- the voice ------------------------------------------------------------------------------
class KokoroVoice:
    sample_rate = SAMPLE_RATE

    def __init__(self, backend: _Backend, phonemize: Phonemizer, voices: dict[str, str], max_speed: float) -> None:
        self._backend = backend
        self._phonemize = phonemize
        self._voices = dict(voices)
        self.max_speed = max_speed

    @classmethod
    def load(cls, cfg: KokoroConfig, device: str, cache_dir: Path, *, voice_calls: int = 1) -> "KokoroVoice":
        """`voice_calls` (pipeline.voice_calls): the onnx backend also opens the graph on all the
        calls' threads, for a slot's first chunk when every call is free (`speak(wide=True)`)."""
        packs = sorted(set(cfg.voices.values()))
        if cfg.backend == "torch":
            backend: _Backend = TorchKokoro.load(cfg, placement_device(cfg.placement, device), Path(cache_dir), packs)
        else:
            if placement_device(cfg.placement, device) != "cpu":
                logger.warning("models.kokoro: the onnx backend runs on the CPU (onnxruntime CPUExecutionProvider)")
            backend = OnnxKokoro.load(cfg, Path(cache_dir), packs, wide_threads=voice_calls * max(cfg.cpu_threads, 1))
        return cls(backend, Phonemizer(cfg.language), cfg.voices, cfg.max_speed)

    @property
    def voice_ids(self) -> list[str]:
        return list(self._voices)

    def modules(self) -> dict[str, torch.nn.Module]:
        return self._backend.modules()

    def phoneme_chunks(self, text: str) -> list[PhonemeChunk]:
        return script_chunks(text, self._phonemize, self._backend.vocab, self._backend.context)

    # -- 1. the plan: the duration predictor alone --------------------------------------------
    def plan(self, text: str, voice_id: str, speed: float, emotion: Emotion | str, n_samples: int) -> SpeechPlan:
        """The chunks, the speed that fits `n_samples` and the whole timeline; raises RecipeError or
        SpeechTooLongError (naming audio_track.script) before any synthesis."""
        if voice_id not in self._voices:
            known = ", ".join(sorted(self._voices))
            raise RecipeError("audio_track.voice_id", f"unknown voice '{voice_id}'; known: {known}")
        if not speed > 0:
            raise RecipeError("audio_track.speed", f"must be a positive number (got {speed!r})")
        if n_samples <= 0:
            raise ValueError(f"n_samples must be positive (got {n_samples})")
        emotion = _as_emotion(emotion)
        preset = PROSODY_PRESETS[emotion]
        chunks = self.phoneme_chunks(text)
        if not chunks:
            raise RecipeError("audio_track.script", f"has nothing Kokoro can pronounce: {text[:60]!r}")
        # Every token (and each chunk's two pads) lasts at least one 25 ms unit at any speed: a
        # script with more tokens than the slot has units cannot fit (refused before any work).
        shortest = sum(len(c.token_ids) + 2 for c in chunks) * SAMPLES_PER_UNIT
        if shortest > n_samples:
            raise SpeechTooLongError(
                f"audio_track.script: {sum(len(c.token_ids) for c in chunks)} phonemes last at least "
                f"{shortest / SAMPLE_RATE:.2f} s at any speed (25 ms each), but the slot holds "
                f"{n_samples / SAMPLE_RATE:.2f} s. Shorten audio_track.script or raise slot_params.duration_sec."
            )
        pack = self._voices[voice_id]
        bound = max(self.max_speed, speed)
        used = min(speed * preset.speed, bound)
        whole = chunks
        chunks = self._bounded_first(chunks, pack, used)
        raw = [self._backend.raw_durations(c.token_ids, pack) for c in chunks]
        needed = _fitting_speed(chunks, raw, used, n_samples)
        if needed > bound and len(chunks) != len(whole):
            # The cut lengthens the word before it a little (0.1-0.4 s measured): a script that fits
            # its slot only whole is spoken whole, its first chunk unbounded.
            chunks = whole
            raw = [self._backend.raw_durations(c.token_ids, pack) for c in chunks]
            needed = _fitting_speed(chunks, raw, used, n_samples)
        if needed > bound:
            raise _too_long(_length(chunks, raw, used), n_samples, used, needed, bound)
        fitted = needed > used
        if fitted:
            logger.info("speech of %d samples would exceed the slot's %d: speaking at speed %.3f",
                        _length(chunks, raw, used), n_samples, needed)
            used = needed
        units = tuple(_chunk_units(r, used) for r in raw)
        trims = join_trims(chunks, units)
        timeline, starts, speech_samples = _timeline(chunks, units, trims)
        return SpeechPlan(chunks=tuple(chunks), pack=pack, speed=float(used), emotion=emotion, gain=preset.gain,
                          fitted=fitted, units=units, chunk_starts=starts, n_samples=int(n_samples),
                          speech_samples=speech_samples, timeline=timeline, trims=trims)

    def _bounded_first(self, chunks: list[PhonemeChunk], pack: str, speed: float) -> list[PhonemeChunk]:
        """The first sentence cut in two where it lasts more than FIRST_CHUNK_S: its first words
        (after the last comma that keeps them within the bound, else as many words as fit, at
        least FIRST_CHUNK_WORDS) are spoken alone, the rest in the next chunk. Both chunks keep
        the sentence's index and text: the speech check hears the sentence once, whole, on
        exactly its audio. The durations are the predictor's at `speed`."""
        first = chunks[0]
        words = first.text.split()
        if (len(chunks) > 1 and chunks[1].sentence == first.sentence) or len(words) < FIRST_CHUNK_WORDS + 2:
            return chunks  # a sentence already cut to the context, or too short to cut
        if self._seconds(first, pack, speed) <= FIRST_CHUNK_S:
            return chunks
        best, best_comma = FIRST_CHUNK_WORDS, None
        for k in range(FIRST_CHUNK_WORDS, len(words) - 1):
            head = self.phoneme_chunks(" ".join(words[:k]))
            if len(head) != 1 or self._seconds(head[0], pack, speed) > FIRST_CHUNK_S:
                break
            if words[k - 1].lower().strip(",;:") not in _LEANING:
                best = k
            if words[k - 1][-1] in ",;:—–-":
                best_comma = k
        k = best_comma if best_comma is not None else best
        head, rest = self.phoneme_chunks(" ".join(words[:k])), self.phoneme_chunks(" ".join(words[k:]))
        if len(head) != 1 or not rest:
            return chunks
        same = dict(sentence=first.sentence, text=first.text)
        return [dataclasses.replace(c, **same) for c in head + rest] + list(chunks[1:])

    def _seconds(self, chunk: PhonemeChunk, pack: str, speed: float) -> float:
        units = _chunk_units(self._backend.raw_durations(chunk.token_ids, pack), speed)
        return float(units[1:-1].sum()) * SAMPLES_PER_UNIT / SAMPLE_RATE  # the pads are silence

    # -- 2. the chunks ------------------------------------------------------------------------
    def call_handle(self) -> Any:
        """A handle for one `speak` whose `stop()` (any thread) ends it with VoiceCallStopped, or
        None where the backend's calls run to their end (torch)."""
        return self._backend.call_handle()

    def speak(self, plan: SpeechPlan, index: int, *, seed: int = 0, wide: bool = False, handle: Any = None) -> SpeechChunk:
        """Chunk `index` of `plan` (one Kokoro call). `seed` is the slot's: the chunk draws from seed + index.
        `wide`: on every voice call's threads (the same audio: the graph is the same); `handle`: see
        `call_handle`."""
        chunk = plan.chunks[index]
        started = time.perf_counter()
        wave, units = self._backend.infer(chunk.token_ids, plan.pack, plan.speed, seed + index, wide=wide, handle=handle)
        if units.shape != (len(chunk.token_ids) + 2,) or len(wave) != int(units.sum()) * SAMPLES_PER_UNIT:
            raise VortexError(
                f"kokoro: the model returned {len(wave)} samples and {units.shape} durations for "
                f"{len(chunk.token_ids)} tokens; expected {SAMPLES_PER_UNIT} samples per duration unit "
                "and one duration per token plus two pads (is it Kokoro-82M v1.0?)"
            )
        if not np.array_equal(units, plan.units[index]):
            # The timeline (and the motion) were planned from the predictor: speech that disagrees
            # would drift from the lips, so it is an error, never a silent mismatch.
            raise VortexError(f"kokoro: chunk {index} came out {int(units.sum())} units long where its duration "
                              f"predictor said {int(plan.units[index].sum())}: the backend is not deterministic")
        audio = np.clip(trim_audio(wave, *plan.trims[index]) * plan.gain, -1.0, 1.0)
        return SpeechChunk(index=index, sentence=chunk.sentence, text=chunk.text, audio=audio,
                           start=plan.chunk_starts[index], synth_ms=(time.perf_counter() - started) * 1000.0)

    def stream(self, plan: SpeechPlan, *, seed: int = 0, cancel: CancelToken | None = None) -> Iterator[SpeechChunk]:
        for index in range(len(plan.chunks)):
            if cancel is not None:
                cancel.raise_if_cancelled()
            yield self.speak(plan, index, seed=seed)

    def synthesize(self, text: str, voice_id: str, speed: float, emotion: Emotion | str, n_samples: int,
                   cancel: CancelToken | None = None, *, seed: int = 0) -> Speech:
        """The whole speech at once: the plan, every chunk, then silence to `n_samples`."""
        plan = self.plan(text, voice_id, speed, emotion, n_samples)
        waveform = np.zeros(n_samples, dtype=np.float32)
        for chunk in self.stream(plan, seed=seed, cancel=cancel):
            waveform[chunk.start:chunk.end] = chunk.audio
        return Speech(waveform=waveform, sample_rate=SAMPLE_RATE, plan=plan)


def _timeline(chunks, units, trims) -> tuple[Timeline, tuple[int, ...], int]:
    phonemes, starts, samples, pauses, chunk_starts, length = timeline_parts(chunks, units, trims)
    return Timeline(phonemes, starts, samples, pauses), chunk_starts, length


def _chunk_units(raw: np.ndarray, speed: float) -> np.ndarray:
    """The units a synthesis at `speed` gives: max(1, round(raw / speed)) in float32 (round half to
    even, like torch.round and ONNX Round)."""
    return np.maximum(np.round(raw / np.float32(speed)), 1).astype(np.int64)


def _units(raw: list[np.ndarray], speed: float) -> int:
    """Duration units of every chunk at `speed`."""
    return int(sum(_chunk_units(r, speed).sum() for r in raw))


def _length(chunks: list[PhonemeChunk], raw: list[np.ndarray], speed: float) -> int:
    """Samples of the joined speech at `speed` (the silence inside a cut sentence trimmed)."""
    return trimmed_length(chunks, [_chunk_units(r, speed) for r in raw])


def _fitting_speed(chunks: list[PhonemeChunk], raw: list[np.ndarray], speed: float, n_samples: int) -> float:
    """The least speed >= `speed` at which the speech fits `n_samples` (inf when no speed can:
    every unit is at least one)."""
    if _length(chunks, raw, speed) <= n_samples:
        return speed
    if trimmed_length(chunks, [np.ones(len(r), np.int64) for r in raw]) > n_samples:
        return float("inf")
    lo, hi = speed, speed * 2
    while _length(chunks, raw, hi) > n_samples:
        lo, hi = hi, hi * 2
    for _ in range(40):  # bisection on a step function: 40 halvings reach float32 resolution
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if _length(chunks, raw, mid) <= n_samples else (mid, hi)
    return hi  # _chunk_units casts to float32 as the graph's input does: hi fits as the graph will see it


def _as_emotion(emotion: Emotion | str) -> Emotion:
    try:
        return Emotion(emotion)
    except ValueError:
        allowed = ", ".join(e.value for e in Emotion)
        raise RecipeError("audio_track.emotion", f"unknown emotion {emotion!r}; allowed: {allowed}") from None


def _too_long(length: int, n_samples: int, speed: float, needed: float, bound: float) -> SpeechTooLongError:
    return SpeechTooLongError(
        f"audio_track.script: the speech lasts {length / SAMPLE_RATE:.2f} s ({length} samples) at speed {speed:.2f}, "
        f"but the slot holds {n_samples / SAMPLE_RATE:.2f} s ({n_samples} samples); fitting it needs speed "
        f"{needed:.2f}, and the limit is {bound:.2f} (models.kokoro.max_speed). "
        "Shorten audio_track.script or raise slot_params.duration_sec."
    )
