"""A watermark in the speech: the payload of vortex.provenance.watermark, carried by the audio too,
so a copy of the sound alone (a voice clip cut from a slot or the stream) still says where it came from.

Payload: the same 48 bits as the pixels (node tag, slot id's low 16 bits, CRC-16 over both).

Embedding (spectral up/down modulation, numpy only): the audio, on a 24 kHz timeline, is cut into
STFT frames (1024 samples, sqrt-Hann, hop 512); every tile of 2 frames x 2 bins between 1 and 5 kHz
belongs to one payload bit (a fixed public permutation over a block of BLOCK_FRAMES frames) with a
pseudo-random chip of +-1, and its magnitude is multiplied by 10^(+-DELTA_DB/20): up where
chip x (2 bit - 1) is +1, down where it is -1. The mark is multiplicative: it is as loud as the
speech in each tile, under it, and absent in silence (no hiss in the pauses).

Reading: resample to 24 kHz, STFT, log magnitude minus its mean over 9 bins (the speech's own
spectral shape), quiet cells left out; each bit's cells summed with their chips. The block
start is searched on a 128-sample grid (a clip cut anywhere, AAC's priming); the alignment with the
most energy in the bit scores is decoded, and "found" needs its CRC (_decode_with_flips).
Public: anyone can read it; no key is secret.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any, Optional

import numpy as np

from .watermark import _decode_bits, payload_bits

RATE = 24_000  # the mark's timeline (Kokoro's rate); other rates are resampled to it
N_FFT, HOP = 1024, 512
LOW_HZ, HIGH_HZ = 1_000, 5_000  # where speech has energy and AAC at 96 kbit/s keeps the waveform
# (500-8000 Hz read no better per dB of SNR: 6 s of speech, z 2.45 at SNR 27.7 dB against 3.18 at 30.4)
DELTA_DB = 2.0  # per-tile magnitude change: speech-to-mark 28 dB; see docs/provenance.md for BER
BLOCK_FRAMES = 48  # one payload per 1.02 s (48 x 512 samples)
# A chip covers a tile of 2 frames x 2 bins: a lone cell's change is half undone by its overlapping
# neighbours (the frames overlap by half, the window's main lobe spans bins): 0.50 dB of 1.0 measured
TILE_T, TILE_F = 2, 2
SEARCH_STEP = 128  # the reader's grid for the block start (a quarter hop)
QUIET_DB = -60.0  # cells this far under the loudest carry no mark worth reading (AAC zeroes them)
FLIP_WEAKEST = 4  # the reader may flip one or two of the 4 least certain bits against the CRC
_LOW_BIN, _HIGH_BIN = round(LOW_HZ * N_FFT / RATE), round(HIGH_HZ * N_FFT / RATE)
_BINS = np.arange(_LOW_BIN, _LOW_BIN + (_HIGH_BIN - _LOW_BIN) // TILE_F * TILE_F)  # whole tiles
_WINDOW = np.sqrt(np.hanning(N_FFT + 1)[:-1]).astype(np.float32)  # periodic: w^2 overlap-adds to 1 at hop N/2
_SEED = int.from_bytes(hashlib.sha256(b"vortex-audio-watermark-v1").digest()[:8], "little")


def _layout() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_SEED)
    rows, cols = BLOCK_FRAMES // TILE_T, len(_BINS) // TILE_F
    bit_of = rng.permutation(np.arange(rows * cols) % 48).reshape(rows, cols)
    chip = rng.choice(np.array([-1.0, 1.0], np.float32), size=(rows, cols))
    return tuple(np.repeat(np.repeat(a, TILE_T, axis=0), TILE_F, axis=1) for a in (bit_of, chip))


_BIT_OF, _CHIP = _layout()


def _cut(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Windowed frames of x beginning at `starts` (samples outside x are zeros)."""
    padded = np.concatenate([np.zeros(N_FFT, np.float32), x.astype(np.float32, copy=False),
                             np.zeros(N_FFT, np.float32)])
    return padded[starts[:, None] + N_FFT + np.arange(N_FFT)[None, :]] * _WINDOW


class AudioMarker:
    """Marks a stream of 24 kHz mono chunks with (node, slot_id), chunk by chunk with no delay: a
    chunk's cells are computed on the slot's global frame grid from its own samples (zeros past its
    edges: chunks end in the voice's pauses, where the mark is silent anyway)."""

    def __init__(self, node: str, slot_id: int, sample_rate: int = RATE):
        if sample_rate != RATE:
            raise ValueError(f"the audio mark is made at {RATE} Hz, not {sample_rate}")
        bits = payload_bits(node, slot_id)
        sign = _CHIP * (2.0 * bits[_BIT_OF] - 1.0)
        self._gain = (10.0 ** (sign * DELTA_DB / 20.0) - 1.0).astype(np.float32)  # (BLOCK_FRAMES, bins)
        self.position = 0  # samples marked so far

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        x = np.asarray(chunk, np.float32).reshape(-1)
        start, n = self.position, len(x)
        self.position += n
        if n == 0:
            return x
        first = (start - N_FFT // 2) // HOP + 1  # frames whose window reaches into the chunk
        last = -(-(start + n + N_FFT // 2) // HOP) - 1
        count = last - first + 1
        starts = (first + np.arange(count)) * HOP - N_FFT // 2 - start  # in the chunk's samples
        spec = np.fft.rfft(_cut(x, starts), axis=1)
        gain = np.zeros((count, spec.shape[1]), np.float32)
        gain[:, _BINS] = self._gain[(first + np.arange(count)) % BLOCK_FRAMES]
        delta = np.fft.irfft(spec * gain, n=N_FFT, axis=1).astype(np.float32) * _WINDOW
        out = x.copy()
        for k in range(count):  # overlap-add of the mark, only inside the chunk
            a = (first + k) * HOP - N_FFT // 2 - start
            lo, hi = max(a, 0), min(a + N_FFT, n)
            if lo < hi:
                out[lo:hi] += delta[k, lo - a:hi - a]
        # never louder than the chunk was: the loudness stage's true-peak ceiling (a limited slot sits
        # at -1 dBTP) holds after the mark too; the mark rose a 6 s clip's peak 0.12-0.32 dB unclipped
        peak = float(np.abs(x).max())
        return np.clip(out, -peak, peak, out=out)


def mark_audio(audio: np.ndarray, node: str, slot_id: int) -> np.ndarray:
    """The whole of a 24 kHz mono waveform, marked."""
    return AudioMarker(node, slot_id)(audio)


def read_audio_mark(audio: np.ndarray, sample_rate: int = RATE) -> dict[str, Any]:
    """The payload read from a mono waveform: {found, node_tag, slot_id_low16, margin, offset_samples,
    seconds}; a clip of any length from about 2 s up (the score grows with its square root)."""
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import resample_poly

    x = np.asarray(audio, np.float32).reshape(-1)
    if sample_rate != RATE:
        g = int(np.gcd(RATE, int(sample_rate)))
        x = resample_poly(x, RATE // g, int(sample_rate) // g).astype(np.float32)
    if len(x) < RATE:
        return {"found": False, "reason": f"{len(x) / RATE:.2f} s of audio is too short to read (1 s at least)"}
    sub = HOP // SEARCH_STEP
    n_fine = len(x) // SEARCH_STEP + 1
    mag = np.abs(np.fft.rfft(_cut(x, np.arange(n_fine) * SEARCH_STEP - N_FFT // 2), axis=1))[:, _BINS]
    level = 20.0 * np.log10(mag + 1e-9)
    valid = level > level.max() + QUIET_DB
    if not valid.any():
        return {"found": False, "reason": "the audio is silent: nothing to carry a mark"}
    # the speech's own spectral shape (harmonics, formants) off: minus the mean of 9 bins around
    hp = level - uniform_filter1d(level, 9, axis=1, mode="nearest")
    hp = np.where(valid, (hp - hp[valid].mean()) / max(float(hp[valid].std()), 1e-6), 0.0)
    best: Optional[tuple[float, np.ndarray, int]] = None
    for offset in range(BLOCK_FRAMES * sub):  # block start candidates, SEARCH_STEP apart
        rows = np.arange(offset % sub, n_fine, sub)  # the frames of this hop grid
        block_row = ((rows - offset) // sub) % BLOCK_FRAMES
        bit = _BIT_OF[block_row].ravel()
        scores = np.bincount(bit, weights=(hp[rows] * _CHIP[block_row]).ravel(), minlength=48)
        n = np.bincount(bit, weights=valid[rows].ravel().astype(np.float64), minlength=48)
        z = scores / np.sqrt(np.maximum(n, 1.0))
        energy = float(np.sum(z ** 2))
        if best is None or energy > best[0]:
            best = (energy, z, offset)
    _, z, offset = best
    decoded = _decode_with_flips(z)
    out: dict[str, Any] = {"found": decoded is not None, "margin": round(float(np.median(np.abs(z))), 2),
                           "offset_samples": offset * SEARCH_STEP, "seconds": round(len(x) / RATE, 2),
                           "bits": "".join("1" if v > 0 else "0" for v in z)}  # as read, before any correction
    if decoded is not None:
        out.update(decoded)
    return out


def _decode_with_flips(z: np.ndarray) -> Optional[dict[str, Any]]:
    """The bits as read, else with one or two of the FLIP_WEAKEST least certain bits flipped (a 6 s
    slot after AAC reads ~1 bit in 48 wrong); 11 tries against the CRC: a false find 1.7e-4 a file."""
    bits = (z > 0).astype(np.float32)
    weakest = np.argsort(np.abs(z))[:FLIP_WEAKEST]
    tries = [()] + [(i,) for i in weakest] + [tuple(p) for p in itertools.combinations(weakest, 2)]
    for flips in tries:
        b = bits.copy()
        b[list(flips)] = 1.0 - b[list(flips)]
        decoded = _decode_bits(b)
        if decoded is not None:
            return {**decoded, "bits_corrected": len(flips)}
    return None


def read_audio_mark_file(path, max_seconds: float = 30.0) -> dict[str, Any]:
    """Read the mark from the first `max_seconds` of a media file's first audio stream (any rate,
    any channel count: decoded to 24 kHz mono)."""
    from ..media import read_mono_audio

    try:
        audio, _ = read_mono_audio(path, RATE, max_seconds)
    except ValueError as exc:
        return {"found": False, "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - an undecodable file: no mark read, with why
        return {"found": False, "reason": f"cannot decode the audio: {type(exc).__name__}"}
    return read_audio_mark(audio)
