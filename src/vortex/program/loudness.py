"""Programme loudness: an ITU-R BS.1770-4 meter, a gain, and a look-ahead true-peak limiter.

- `integrated_lufs(x, sr)`: BS.1770-4 gated integrated loudness (K-weighting as the standard's
  48 kHz table, derived for any rate as libebur128 does; 400 ms blocks every 100 ms, gates at
  -70 LUFS and 10 LU down); silence is -inf. `LoudnessMeter` is the same, fed in pieces.
- `true_peak_dbtp(x)`: the peak of `x` oversampled 4x (scipy's polyphase resample_poly), as
  BS.1770-4 Annex 2 asks; pyloudnorm has none.
- `StreamNormalizer`: a streamed slot normalised chunk by chunk, as each chunk (a sentence of the
  slot's one voice) arrives. A running meter measures the slot's raw speech so far, this chunk
  included (the K-weighting runs on across chunks); the chunk gets the gain that puts the output so
  far on the target, within 2 dB of `target - running level`. A voice pack's level is stable, so
  the gain settles in the first sentence; later ones make up what the first was off, and the slot
  ends on target (docs/program.md, "Loudness": within 0.03 LU of a whole-slot pass). A gain change
  is ramped over 10 ms. The gained audio goes through `TruePeakLimiter`. Nothing is carried from
  one slot to the next: the same recipe gives the same bytes (the proof).
- `TruePeakLimiter`: per sample, the gain that keeps the 4x-oversampled peak under the ceiling;
  the minimum of it over 5 ms ahead and 20 ms behind (hold), smoothed by a 5 ms moving average, so
  the gain has come down when a peak arrives and never jumps. Its output is held back 5 ms plus the
  resampler's reach (136 samples at 24 kHz); `finish()` hands over the rest, so what goes in comes
  out, sample for sample, aligned: the first `process` returns that much less, `finish` that much.
- `normalize(x, sr, ...)`: the same for a whole waveform at once (fillers, tests, the comparison).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.ndimage import minimum_filter1d
from scipy.signal import resample_poly, sosfilt

from ..config import LoudnessConfig

OVERSAMPLE = 4  # BS.1770-4 Annex 2: 4x at 48 kHz; at 24 kHz 4x reads inter-sample peaks at least as well
BLOCK_S, STEP_S = 0.4, 0.1  # gating blocks of 400 ms, 75 % overlap
ABSOLUTE_GATE, RELATIVE_GATE = -70.0, -10.0
LOOKAHEAD_S, HOLD_S = 0.005, 0.020  # a 5 ms look-ahead catches a plosive's rise; 20 ms hold: no flutter
RAMP_S = 0.010  # a chunk's new gain is reached over 10 ms
CATCH_UP_DB = 2.0  # how far a chunk's gain may move off the running level's to bring the slot on target
MAX_GAIN_DB = 24.0  # a near-silent chunk is not pulled up into noise
# The limiter aims this far under the ceiling: the gain's own movement can lift an inter-sample
# peak a little, and the AAC encode adds up to ~0.3 dB (measured with ffmpeg's ebur128, docs/program.md).
LIMITER_MARGIN_DB = 0.5
_FIR_REACH = 16  # input samples resample_poly's 4x filter (10 taps each side per phase) reaches: edge effects


def _k_weighting_sos(sr: int) -> np.ndarray:
    """BS.1770's two K-weighting stages (the head's shelf, then the RLB high-pass) for rate `sr`,
    from the analogue parameters libebur128 (and so ffmpeg's ebur128) uses: at 48 kHz they give
    the standard's table to 1e-8. pyloudnorm's own high-pass carries a 0.995 gain in its numerator
    (it reads 0.04 LU low: -23.05 for the -23.0 reference tone), so its filters are not used here."""
    k = math.tan(math.pi * 1681.974450955533 / sr)
    vh = 10.0 ** (3.999843853973347 / 20.0)
    vb, q = vh ** 0.4996667741545416, 0.7071752369554196
    a0 = 1.0 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    k, q = math.tan(math.pi * 38.13547087602444 / sr), 0.5003270373238773
    a0 = 1.0 + k / q + k * k
    high_pass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, high_pass])


_SOS: dict[int, np.ndarray] = {}


def k_weighting(sr: int) -> np.ndarray:
    if sr not in _SOS:
        _SOS[sr] = _k_weighting_sos(sr)
    return _SOS[sr]


def _lufs(mean_square: float) -> float:
    return -0.691 + 10.0 * math.log10(mean_square) if mean_square > 0 else -math.inf


def gated_loudness(block_power: np.ndarray) -> float:
    """BS.1770-4's integrated loudness of blocks' K-weighted mean squares (mono: G = 1)."""
    if block_power.size == 0:
        return -math.inf
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10.0 * np.log10(block_power)
    above = block_power[loud > ABSOLUTE_GATE]
    if above.size == 0:
        return -math.inf
    relative = _lufs(float(above.mean())) + RELATIVE_GATE
    kept = block_power[(loud > ABSOLUTE_GATE) & (loud > relative)]
    return _lufs(float(kept.mean()))


class LoudnessMeter:
    """A running BS.1770-4 meter: feed audio in pieces, read the integrated loudness of all of it."""

    def __init__(self, sr: int):
        self.sr = sr
        self._sos = k_weighting(sr)
        self._zi = np.zeros((self._sos.shape[0], 2))
        self._step = round(STEP_S * sr)
        self._per_block = round(BLOCK_S / STEP_S)
        self._partial = np.zeros(0)  # K-weighted squares not yet a whole 100 ms step
        self._steps: list[float] = []  # each 100 ms step's sum of K-weighted squares
        self.samples = 0

    def add(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        y, self._zi = sosfilt(self._sos, np.asarray(x, float), zi=self._zi)
        sq = np.concatenate([self._partial, y * y])
        whole = sq.size // self._step * self._step
        if whole:
            self._steps.extend(sq[:whole].reshape(-1, self._step).sum(axis=1).tolist())
        self._partial = sq[whole:]
        self.samples += x.size

    def block_power(self) -> np.ndarray:
        """The mean square of each whole 400 ms block so far (one every 100 ms)."""
        n = len(self._steps) - self._per_block + 1
        if n <= 0:
            return np.zeros(0)
        c = np.concatenate([[0.0], np.cumsum(self._steps)])
        return (c[self._per_block:] - c[:n]) / (self._step * self._per_block)

    def integrated(self) -> float:
        return gated_loudness(self.block_power())

    def ungated(self) -> float:
        """The whole input's K-weighted loudness, for less than one block (a short first chunk)."""
        total = sum(self._steps) + float(self._partial.sum())
        return _lufs(total / self.samples) if self.samples else -math.inf


def integrated_lufs(x: np.ndarray, sr: int) -> float:
    meter = LoudnessMeter(sr)
    meter.add(x)
    return meter.integrated()


def _peak_envelope(x: np.ndarray) -> np.ndarray:
    """Per input sample n, the largest |value| of the 4x-oversampled signal from n to n+1."""
    if x.size == 0:
        return np.zeros(0)
    up = np.abs(resample_poly(x, OVERSAMPLE, 1))
    env = up.reshape(-1, OVERSAMPLE).max(axis=1)
    env[:-1] = np.maximum(env[:-1], up[OVERSAMPLE::OVERSAMPLE])  # the interval's right end
    return np.maximum(env, np.abs(x))


def true_peak_dbtp(x: np.ndarray) -> float:
    x = np.asarray(x, float)
    peak = float(_peak_envelope(x).max()) if x.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


class TruePeakLimiter:
    """A streaming look-ahead limiter: no 4x-oversampled peak of its output above `ceiling_dbtp`."""

    def __init__(self, sr: int, ceiling_dbtp: float, margin_db: float = LIMITER_MARGIN_DB):
        self.ceiling = 10.0 ** ((ceiling_dbtp - margin_db) / 20.0)
        self.look, self.hold = max(1, round(LOOKAHEAD_S * sr)), max(1, round(HOLD_S * sr))
        self.delay = self.look + _FIR_REACH  # samples held back until their look-ahead is known
        self._left = self.look + self.hold + _FIR_REACH  # samples kept behind the emitted ones
        self._buf = np.zeros(0)  # input from absolute sample `_base` on
        self._base = 0
        self._emitted = 0
        self._received = 0
        self.limited = 0  # samples whose gain was below 1
        self.min_gain = 1.0

    def process(self, x: np.ndarray) -> np.ndarray:
        self._buf = np.concatenate([self._buf, np.asarray(x, float)])
        self._received += len(x)
        return self._emit(self._received - self.delay)

    def finish(self) -> np.ndarray:
        """The held-back rest (what follows the input is silence)."""
        real = self._received
        self._buf = np.concatenate([self._buf, np.zeros(self.delay + _FIR_REACH)])
        out = self._emit(real)
        self._buf, self._base = np.zeros(0), real
        return out

    def _emit(self, upto: int) -> np.ndarray:
        start = self._emitted
        if upto <= start:
            return np.zeros(0, np.float32)
        # Zeros before the slot's first sample: silence, as resample_poly assumes past its edges.
        lead = max(0, self._left - (start - self._base))
        buf = np.concatenate([np.zeros(lead), self._buf]) if lead else self._buf
        base = self._base - lead
        need = np.minimum(1.0, self.ceiling / np.maximum(_peak_envelope(buf), 1e-12))
        # hold[k] = min(need[k - hold .. k + look - 1]); gain[n] = mean(hold[n - look + 1 .. n]) <= need[n]
        size = self.look + self.hold
        held = minimum_filter1d(need, size=size, origin=self.hold - size // 2, mode="nearest")
        c = np.concatenate([[0.0], np.cumsum(held)])
        lo, hi = start - base, upto - base
        idx = np.arange(lo, hi)
        gain = (c[idx + 1] - c[idx + 1 - self.look]) / self.look
        gain = np.minimum(gain, need[lo:hi])  # exact at every sample, whatever the float sums did
        out = (buf[lo:hi] * gain).astype(np.float32)
        below = gain < 1.0
        self.limited += int(below.sum())
        if below.any():
            self.min_gain = min(self.min_gain, float(gain.min()))
        self._emitted = upto
        keep_from = max(self._base, upto - self._left)
        self._buf, self._base = self._buf[keep_from - self._base:], keep_from
        return out


@dataclass
class StreamNormalizer:
    """A slot's audio, chunk by chunk: the chunk's gain, then the limiter (see the module note)."""

    sr: int
    target_lufs: float = -23.0
    true_peak_dbtp: float = -1.0
    gains_db: list[float] = field(default_factory=list)
    _meter: Optional[LoudnessMeter] = None
    _limiter: Optional[TruePeakLimiter] = None
    _gain: Optional[float] = None  # linear, the last chunk's
    _seen: int = 0  # the meter's blocks already given a gain
    _out: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the output's block powers, as set

    def __post_init__(self) -> None:
        self._meter = LoudnessMeter(self.sr)
        self._limiter = TruePeakLimiter(self.sr, self.true_peak_dbtp)
        self._ramp = max(1, round(RAMP_S * self.sr))

    @property
    def delay(self) -> int:
        return self._limiter.delay

    def process(self, chunk: np.ndarray, speech: bool = True) -> np.ndarray:
        """The chunk gained and limited (fewer samples at first: the limiter's look-ahead); `speech`
        False (the silence after the speech) keeps the last gain and is not measured."""
        x = np.asarray(chunk, float)
        if speech:
            self._meter.add(x)
            new = self._chunk_gain()
            self.gains_db.append(round(20.0 * math.log10(new), 3))
            old = new if self._gain is None else self._gain
            gain = np.full(x.size, new)
            n = min(self._ramp, x.size)
            if old != new and n:
                gain[:n] = np.linspace(old, new, n, endpoint=False)
            self._gain = new
            x = x * gain
        elif self._gain is not None:
            x = x * self._gain
        return self._limiter.process(x)

    def _chunk_gain(self) -> float:
        """This chunk's gain (linear): the one that puts the slot's output so far on the target.
        The output's blocks are the raw blocks times the gain of the chunk they end in; a chunk
        whose 400 ms blocks are not yet whole takes the running level's gain."""
        blocks = self._meter.block_power()
        fresh, self._seen = blocks[self._seen:], blocks.size
        level = gated_loudness(blocks) if blocks.size else self._meter.ungated()
        if not (math.isfinite(level) and level > ABSOLUTE_GATE):  # silence: nothing to measure, keep the gain
            return self._gain if self._gain is not None else 1.0
        base = min(MAX_GAIN_DB, self.target_lufs - level)
        gain_db = base
        if fresh.size and math.isfinite(gated_loudness(fresh)):
            # Earlier chunks were set on less of the slot: this one makes up their difference, by at
            # most 2 dB (a louder first sentence left the whole 0.1-0.3 LU under on Kokoro's voices).
            lo, hi = base - CATCH_UP_DB, min(MAX_GAIN_DB, base + CATCH_UP_DB)
            for _ in range(24):  # bisection: the gated loudness rises with the gain
                mid = (lo + hi) / 2
                if gated_loudness(np.concatenate([self._out, fresh * 10 ** (mid / 10)])) < self.target_lufs:
                    lo = mid
                else:
                    hi = mid
            gain_db = (lo + hi) / 2
        self._out = np.concatenate([self._out, fresh * 10 ** (gain_db / 10)])
        return 10.0 ** (gain_db / 20.0)

    def finish(self) -> np.ndarray:
        return self._limiter.finish()

    def summary(self) -> dict:
        lim = self._limiter
        return {"chunk_gain_db": list(self.gains_db), "limited_samples": lim.limited,
                "limiter_min_gain_db": round(20.0 * math.log10(max(lim.min_gain, 1e-12)), 2)}


def normalize(x: np.ndarray, sr: int, target_lufs: float = -23.0, true_peak_dbtp: float = -1.0) -> np.ndarray:
    """A whole waveform to the target in one gain, limited; silence stays silence. Same length."""
    x = np.asarray(x, np.float32)
    level = integrated_lufs(x, sr)
    gain = 10.0 ** (min(MAX_GAIN_DB, target_lufs - level) / 20.0) if math.isfinite(level) else 1.0
    limiter = TruePeakLimiter(sr, true_peak_dbtp)
    head = limiter.process(x.astype(float) * gain)
    return np.concatenate([head, limiter.finish()]).astype(np.float32)


def report(x: np.ndarray, sr: int, target_lufs: float) -> dict:
    """The sidecar's `loudness` figures, measured on the final audio (None where it is silent)."""
    lufs, peak = integrated_lufs(x, sr), true_peak_dbtp(x)
    return {"integrated_lufs": round(lufs, 2) if math.isfinite(lufs) else None,
            "true_peak_dbtp": round(peak, 2) if math.isfinite(peak) else None,
            "target_lufs": float(target_lufs)}


def shortfall(loudness: dict) -> Optional[str]:
    """A warning when the audio is more than 1 LU (EBU R128's live tolerance) off its target: a
    target the ceiling cannot allow (speech peaks ~20 dB over its loudness; a limiter, not a
    compressor, holds the peaks), or a slot too quiet to measure."""
    lufs, target = loudness.get("integrated_lufs"), loudness.get("target_lufs")
    if lufs is None or abs(lufs - target) <= 1.0:
        return None
    why = (f"the true-peak ceiling held the peaks back by up to {-loudness['limiter_min_gain_db']:g} dB"
           if loudness.get("limited_samples") else "too little speech to set a gain on")
    return f"loudness: {lufs:g} LUFS, {lufs - target:+.1f} LU off the target {target:g} LUFS: {why}"


def channel_target(program) -> Optional[LoudnessConfig]:
    """A channel's loudness for its requests: its `program.loudness` (vortex.program.spec; -23 LUFS
    when the block names none); None without a program block: the engine's config.loudness."""
    if program is None:
        return None
    return LoudnessConfig(target_lufs=program.loudness.target_lufs, true_peak_dbtp=program.loudness.true_peak_dbtp)


FIGURES = ("integrated_lufs", "true_peak_dbtp", "target_lufs")


def figures(loudness: Optional[dict]) -> Optional[dict]:
    """The three figures of a result's `loudness` (what a channel's record and the metrics keep)."""
    if not isinstance(loudness, dict):
        return None
    return {k: loudness.get(k) for k in FIGURES}
