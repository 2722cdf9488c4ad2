"""The waveform's loudness: where the speaker is silent, and how loud each moment is, as audio arrives.

The phoneme timeline says *what* is said; the waveform says *whether* sound is coming out. Kokoro
pads sentences and sometimes gives a final consonant a long, nearly silent tail, so the mouth is
gated by the waveform itself: closed below a floor 35 dB under the speech's typical peak level,
and a little wider when louder (jaw opening follows vocal effort).

Streamed: `Loudness` receives the slot's audio chunk by chunk and says up to which control step
(CONTROL_RATE) the gate and amplitude are final. Every number is computed from fixed, absolute
pieces of the signal, never from where a chunk happened to end, so a slot gives the same values
whether its audio arrives in one piece or in many:

- the RMS of a step is over a 20 ms window centred on it: the sum of four 5 ms block sums
  (a block's squares are summed once, when the block is complete);
- the reference level ("typical peak": the 95th percentile of voiced RMS) of a step in speech
  chunk k is over the steps whose window lies wholly inside chunks 0..k (known once chunk k is);
- the gate is smoothed by a truncated Gaussian (σ 15 ms, ±3σ) as a fixed sum of shifted terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .visemes import CONTROL_RATE

WINDOW_S = 0.020
FLOOR_DB = 35.0  # below the reference level: silence
GATE_RISE_DB = 10.0  # from the floor to fully open
FULL_DB = 10.0  # within this of the reference level: full loudness
QUIET_OPENING = 0.5  # the share of a viseme's opening kept at the floor's edge
GATE_SIGMA_S = 0.015
VOICED_RMS = 1e-4  # quieter steps do not count towards the reference level
BLOCKS_PER_WINDOW = round(WINDOW_S * CONTROL_RATE)  # 4 blocks of 5 ms


@dataclass(frozen=True)
class SpeechEnergy:
    gate: np.ndarray  # (K,) 0 silent .. 1 speaking, at CONTROL_RATE
    amplitude: np.ndarray  # (K,) gate x loudness weighting: what multiplies the mouth opening


def smoothing_kernel(sigma_steps: float) -> np.ndarray:
    radius = int(np.ceil(3 * sigma_steps))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma_steps) ** 2)
    return kernel / kernel.sum()


def smooth_at(signal: np.ndarray, kernel: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """signal smoothed by `kernel` at steps lo..hi-1, edges extended: the same sum of shifted terms
    in the same order for a step whatever range it is computed in."""
    radius = len(kernel) // 2
    steps = np.arange(lo, hi)
    out = np.zeros(hi - lo)
    last = len(signal) - 1
    for j, w in enumerate(kernel):
        out += w * signal[np.clip(steps + j - radius, 0, last)]
    return out


class Loudness:
    """Gate and amplitude at CONTROL_RATE over a slot of `n_steps` steps, fed its audio in order."""

    def __init__(self, sample_rate: int, n_samples: int, n_steps: int, speech_samples: int,
                 chunk_starts: tuple[int, ...]):
        if sample_rate % CONTROL_RATE:
            raise ValueError(f"sample rate {sample_rate} is not a multiple of the control rate {CONTROL_RATE}")
        self.step = sample_rate // CONTROL_RATE  # samples per control step (120 at 24 kHz)
        self.n_samples, self.n_steps = int(n_samples), int(n_steps)
        self.in_speech = np.arange(n_steps) * self.step < speech_samples
        self.chunk_ends = np.append(np.asarray(chunk_starts[1:], dtype=np.int64), speech_samples)
        # each step's chunk: the last one starting at or before it (steps after the speech: the last)
        self.chunk_of = np.clip(np.searchsorted(np.asarray(chunk_starts), np.arange(n_steps) * self.step,
                                                side="right") - 1, 0, len(chunk_starts) - 1)
        self._squares = np.zeros(n_steps + BLOCKS_PER_WINDOW, np.float64)  # per 5 ms block
        self._pending = np.zeros(0, np.float32)  # samples of an incomplete block
        self.audio_end = 0  # samples received
        self._blocks = 0  # complete blocks summed
        self._rms = np.zeros(n_steps)
        self._gate_raw = np.zeros(n_steps)
        self._amp_raw = np.zeros(n_steps)
        self._raw_done = 0  # steps whose raw gate and amplitude are known
        self._references: list[float | None] = []  # per chunk, once known
        self._kernel = smoothing_kernel(GATE_SIGMA_S * CONTROL_RATE)
        self.gate = np.zeros(n_steps)
        self.amplitude = np.zeros(n_steps)
        self.final = 0  # steps 0..final-1 have their smoothed gate and amplitude

    def add(self, audio: np.ndarray) -> int:
        """The next samples of the slot; returns how many steps are final now."""
        audio = np.asarray(audio, dtype=np.float32)
        self.audio_end += len(audio)
        if self.audio_end > self.n_samples:
            raise ValueError(f"more audio ({self.audio_end} samples) than the slot's {self.n_samples}")
        data = np.concatenate([self._pending, audio])
        whole = len(data) // self.step
        if whole:
            blocks = data[: whole * self.step].astype(np.float64).reshape(whole, self.step)
            end = min(self._blocks + whole, len(self._squares))
            self._squares[self._blocks:end] = (blocks * blocks).sum(axis=1)[: end - self._blocks]
            self._blocks += whole
        self._pending = data[whole * self.step:]
        if self.audio_end == self.n_samples:  # the rest of the slot is silence: every block is known
            if len(self._pending) and self._blocks < len(self._squares):  # a slot ending inside a block
                tail = self._pending.astype(np.float64)
                self._squares[self._blocks] = (tail * tail).sum()
            self._pending = np.zeros(0, np.float32)
            self._blocks = len(self._squares)
        return self._advance()

    def finish(self) -> int:
        """The speech is over: the rest of the slot is silence."""
        return self.add(np.zeros(self.n_samples - self.audio_end, np.float32))

    def _advance(self) -> int:
        complete = self.audio_end == self.n_samples
        half = BLOCKS_PER_WINDOW // 2
        # step c's window is blocks c-2 .. c+1; and a step's chunk must be whole (its reference)
        known = self.n_steps if complete else max(0, min(self.n_steps, self._blocks - half + 1,
                                                         self._first_step_of_incomplete_chunk()))
        lo, hi = self._raw_done, known
        if hi > lo:
            steps = np.arange(lo, hi)
            total = np.zeros(hi - lo)
            for j in range(-half, half):  # four blocks, always in this order
                index = steps + j
                inside = (index >= 0) & (index < len(self._squares))
                total += np.where(inside, self._squares[np.clip(index, 0, len(self._squares) - 1)], 0.0)
            self._rms[lo:hi] = np.sqrt(total / (BLOCKS_PER_WINDOW * self.step))
            self._raw(lo, hi)
            self._raw_done = hi
        radius = len(self._kernel) // 2
        final = self.n_steps if complete else max(0, self._raw_done - radius)
        if final > self.final:
            gate = np.clip(smooth_at(self._gate_raw, self._kernel, self.final, final), 0.0, 1.0)
            amplitude = np.clip(smooth_at(self._amp_raw, self._kernel, self.final, final), 0.0, 1.0)
            speech = self.in_speech[self.final:final]
            self.gate[self.final:final] = gate * speech
            self.amplitude[self.final:final] = amplitude * speech
            self.final = final
        return self.final

    def _first_step_of_incomplete_chunk(self) -> int:
        whole = int(np.searchsorted(self.chunk_ends, self.audio_end, side="right"))  # chunks wholly received
        if whole >= len(self.chunk_ends):
            return self.n_steps
        start = self.chunk_ends[whole - 1] if whole > 0 else 0
        return int(-(-start // self.step))

    def _raw(self, lo: int, hi: int) -> None:
        """Gate and amplitude before smoothing, at steps lo..hi-1, each against its chunk's reference."""
        for k in np.unique(self.chunk_of[lo:hi]):
            reference = self._reference(int(k))
            steps = np.arange(lo, hi)[self.chunk_of[lo:hi] == k]
            if reference is None:  # nothing voiced yet: silence
                continue
            level_db = 20 * np.log10(self._rms[steps] + 1e-9)
            floor_db = reference - FLOOR_DB
            x = np.clip((level_db - floor_db) / GATE_RISE_DB, 0.0, 1.0)
            gate = x * x * (3 - 2 * x)  # smoothstep: no click at the floor
            loudness = np.clip((level_db - floor_db) / (FLOOR_DB - FULL_DB), 0.0, 1.0)
            self._gate_raw[steps] = gate
            self._amp_raw[steps] = gate * (QUIET_OPENING + (1 - QUIET_OPENING) * loudness)

    def _reference(self, chunk: int) -> float | None:
        """The reference level (dB) of chunk k: over the steps whose windows lie inside chunks 0..k."""
        while len(self._references) <= chunk:
            k = len(self._references)
            end = self.chunk_ends[min(k, len(self.chunk_ends) - 1)]
            last = int(end // self.step) - BLOCKS_PER_WINDOW // 2  # the last step whose window ends by `end`
            rms = self._rms[: max(last + 1, 0)]
            rms = rms[self.in_speech[: len(rms)] & (rms > VOICED_RMS)]
            self._references.append(None if rms.size == 0 else float(20 * np.log10(np.percentile(rms, 95))))
        return self._references[chunk]


def frame_rms(waveform: np.ndarray, sample_rate: int, n_frames: int, fps: int) -> np.ndarray:
    """(n_frames,) RMS of the samples each video frame spans (zero past the waveform's end)."""
    squares = np.concatenate([[0.0], np.cumsum(np.asarray(waveform, dtype=np.float64) ** 2)])
    edges = np.round(np.arange(n_frames + 1) * sample_rate / fps).astype(np.int64)
    clipped = np.clip(edges, 0, len(waveform))
    lengths = np.maximum(edges[1:] - edges[:-1], 1)
    return np.sqrt(np.maximum(squares[clipped[1:]] - squares[clipped[:-1]], 0.0) / lengths)
