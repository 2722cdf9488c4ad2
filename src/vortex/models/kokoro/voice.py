"""The voice: a script in, speech fitted to the slot and its per-phoneme timeline out (see the package docstring)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ...engine.cancel import CancelToken
from ...config import KokoroConfig, placement_device
from ...errors import RecipeError, SpeechTooLongError, VortexInitializationError
from ...recipe import Emotion
from ..g2p import PhonemeChunk, Phonemizer, script_chunks
from .common import SAMPLE_RATE, SAMPLES_PER_UNIT
from .kmodel import TorchKokoro
from .onnx_export import OnnxKokoro

logger = logging.getLogger(__name__)

FIT_MARGIN = 1.03  # durations are rounded per token: aim a little faster than the exact ratio
FIT_ATTEMPTS = 3  # re-syntheses at most, each from the last take's measured length


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
class Speech:
    waveform: np.ndarray  # float32, exactly the slot's n_samples, in [-1, 1]
    sample_rate: int
    phonemes: str  # what was spoken: vocab chars only; sentences joined by a space (the pause)
    phoneme_samples: np.ndarray  # int64, the duration of each char of `phonemes`, in samples
    phoneme_starts: np.ndarray  # int64, the sample offset of each char of `phonemes`
    speech_samples: int  # samples of speech (pads included) before the silence that fills the slot
    speed: float  # the speed used: recipe speed x emotion factor, raised if re-synthesised to fit
    emotion: str
    resynthesised: bool


class _Backend(Protocol):
    vocab: dict[str, int]
    context: int

    def infer(self, token_ids: tuple[int, ...], pack: str, speed: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Audio (float32) and the per-token durations (int64, pads included) of one sentence."""

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
    def load(cls, cfg: KokoroConfig, device: str, cache_dir: Path) -> "KokoroVoice":
        packs = sorted(set(cfg.voices.values()))
        if cfg.backend == "torch":
            backend: _Backend = TorchKokoro.load(cfg, placement_device(cfg.placement, device), Path(cache_dir), packs)
        else:
            if placement_device(cfg.placement, device) != "cpu":
                logger.warning("models.kokoro: the onnx backend runs on the CPU (onnxruntime CPUExecutionProvider)")
            backend = OnnxKokoro.load(cfg, Path(cache_dir), packs)
        return cls(backend, Phonemizer(cfg.language), cfg.voices, cfg.max_speed)

    @property
    def voice_ids(self) -> list[str]:
        return list(self._voices)

    def modules(self) -> dict[str, torch.nn.Module]:
        return self._backend.modules()

    def phoneme_chunks(self, text: str) -> list[PhonemeChunk]:
        return script_chunks(text, self._phonemize, self._backend.vocab, self._backend.context)

    def synthesize(
        self,
        text: str,
        voice_id: str,
        speed: float,
        emotion: Emotion | str,
        n_samples: int,
        cancel: CancelToken | None = None,
        *,
        seed: int = 0,  # seeds KModel's noise source (the ONNX graph has none): same input, same audio
    ) -> Speech:
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

        pack = self._voices[voice_id]
        bound = max(self.max_speed, speed)
        # Every token (and each sentence's two pads) lasts at least one 25 ms duration unit at any
        # speed: a script with more tokens than the slot has units cannot fit, and is refused
        # before seconds of synthesis (a 20 000-word script used to run into the deadline).
        shortest = sum(len(c.token_ids) + 2 for c in chunks) * SAMPLES_PER_UNIT
        if shortest > n_samples:
            raise SpeechTooLongError(
                f"audio_track.script: {sum(len(c.token_ids) for c in chunks)} phonemes last at least "
                f"{shortest / SAMPLE_RATE:.2f} s at any speed (25 ms each), but the slot holds "
                f"{n_samples / SAMPLE_RATE:.2f} s. Shorten audio_track.script or raise slot_params.duration_sec."
            )
        used = min(speed * preset.speed, bound)
        probe = getattr(self._backend, "raw_durations", None)
        if probe is not None:  # fit the speed from the durations first: one synthesis, not several
            raw = [probe(c.token_ids, pack) for c in chunks]
            needed = _fitting_speed(raw, used, n_samples)
            if needed > bound:
                raise _too_long(_units(raw, used) * SAMPLES_PER_UNIT, n_samples, used, needed, bound)
            if needed > used:
                logger.info("speech of %d samples would exceed the slot's %d: synthesising at speed %.3f",
                            _units(raw, used) * SAMPLES_PER_UNIT, n_samples, needed)
                used = needed
        take = self._speak(chunks, pack, used, cancel, seed)
        first = (used, take.length)
        resynthesised = False
        # Pads and per-token rounding do not scale with speed, so one step at the exact ratio can
        # fall short: step again from what each take measured, a bounded number of times.
        for _ in range(FIT_ATTEMPTS):
            if take.length <= n_samples:
                break
            exact = used * take.length / n_samples
            if used >= bound or (not resynthesised and exact > bound):
                raise _too_long(first[1], n_samples, first[0], exact, bound,
                                tried=(used, take.length) if resynthesised else None)
            used = min(exact * FIT_MARGIN, bound)
            logger.info("speech of %d samples exceeds the slot's %d: re-synthesising at speed %.3f",
                        take.length, n_samples, used)
            take = self._speak(chunks, pack, used, cancel, seed)
            resynthesised = True
        if take.length > n_samples:
            raise _too_long(first[1], n_samples, first[0], used * take.length / n_samples, bound, tried=(used, take.length))

        waveform = np.zeros(n_samples, dtype=np.float32)
        waveform[: take.length] = np.clip(take.audio * preset.gain, -1.0, 1.0)
        return Speech(
            waveform=waveform, sample_rate=SAMPLE_RATE, phonemes=take.phonemes,
            phoneme_samples=take.samples, phoneme_starts=take.starts, speech_samples=take.length,
            speed=float(used), emotion=emotion.value, resynthesised=resynthesised,
        )

    def _speak(self, chunks: list[PhonemeChunk], pack: str, speed: float, cancel: CancelToken | None, seed: int) -> "_Take":
        audio, phonemes, samples, starts = [], [], [], []
        offset = 0
        previous_trailing_pad = 0
        for index, chunk in enumerate(chunks):
            if cancel is not None:
                cancel.raise_if_cancelled()
            wave, units = self._backend.infer(chunk.token_ids, pack, speed, seed + index)
            if units.shape != (len(chunk.token_ids) + 2,) or len(wave) != int(units.sum()) * SAMPLES_PER_UNIT:
                raise VortexInitializationError(
                    f"kokoro: the model returned {len(wave)} samples and {units.shape} durations for "
                    f"{len(chunk.token_ids)} tokens; expected {SAMPLES_PER_UNIT} samples per duration unit "
                    "and one duration per token plus two pads (is it Kokoro-82M v1.0?)"
                )
            unit_samples = units.astype(np.int64) * SAMPLES_PER_UNIT
            leading, chars, trailing = int(unit_samples[0]), unit_samples[1:-1], int(unit_samples[-1])
            if index > 0:  # the pause between two sentences, spoken as a space
                phonemes.append(" ")
                samples.append(np.array([previous_trailing_pad + leading], dtype=np.int64))
                starts.append(np.array([offset - previous_trailing_pad], dtype=np.int64))
            phonemes.append(chunk.phonemes)
            samples.append(chars)
            starts.append(offset + leading + np.concatenate([[0], np.cumsum(chars)[:-1]]).astype(np.int64))
            audio.append(np.asarray(wave, dtype=np.float32))
            offset += len(wave)
            previous_trailing_pad = trailing
        return _Take(np.concatenate(audio), "".join(phonemes), np.concatenate(samples), np.concatenate(starts))


@dataclass(frozen=True, eq=False)
class _Take:
    audio: np.ndarray
    phonemes: str
    samples: np.ndarray
    starts: np.ndarray

    @property
    def length(self) -> int:
        return len(self.audio)


def _units(raw: list[np.ndarray], speed: float) -> int:
    """Duration units of every chunk at `speed`, as the graph computes them: max(1, round(raw / speed))
    in float32 (round half to even, like torch.round and ONNX Round)."""
    s = np.float32(speed)
    return int(sum(np.maximum(np.round(r / s), 1).sum() for r in raw))


def _fitting_speed(raw: list[np.ndarray], speed: float, n_samples: int) -> float:
    """The least speed >= `speed` at which the speech fits `n_samples` (inf when no speed can:
    every unit is at least one)."""
    limit = n_samples // SAMPLES_PER_UNIT
    if _units(raw, speed) <= limit:
        return speed
    if sum(len(r) for r in raw) > limit:
        return float("inf")
    lo, hi = speed, speed * 2
    while _units(raw, hi) > limit:
        lo, hi = hi, hi * 2
    for _ in range(40):  # bisection on a step function: 40 halvings reach float32 resolution
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if _units(raw, mid) <= limit else (mid, hi)
    return hi  # _units casts to float32 as the graph's input does: hi fits as the graph will see it


def _as_emotion(emotion: Emotion | str) -> Emotion:
    try:
        return Emotion(emotion)
    except ValueError:
        allowed = ", ".join(e.value for e in Emotion)
        raise RecipeError("audio_track.emotion", f"unknown emotion {emotion!r}; allowed: {allowed}") from None


def _too_long(
    length: int, n_samples: int, speed: float, needed: float, bound: float, tried: tuple[float, int] | None = None
) -> SpeechTooLongError:
    retry = f"; re-synthesised at speed {tried[0]:.2f} it still lasts {tried[1] / SAMPLE_RATE:.2f} s" if tried else ""
    return SpeechTooLongError(
        f"audio_track.script: the speech lasts {length / SAMPLE_RATE:.2f} s ({length} samples) at speed {speed:.2f}, "
        f"but the slot holds {n_samples / SAMPLE_RATE:.2f} s ({n_samples} samples); fitting it needs speed "
        f"{needed:.2f}, and the limit is {bound:.2f} (models.kokoro.max_speed){retry}. "
        "Shorten audio_track.script or raise slot_params.duration_sec."
    )
