"""How the chunks join into the slot's speech: the silence trimmed where a sentence is cut, and
the per-char timeline of the joined chunks.

Each chunk is its own Kokoro call: it gets a leading pad (~0.375 s, the first ~0.3 s of it silent),
a trailing pad, and the utterance-final lengthening of its last phoneme (up to 0.375 s, mostly
silent). Between two sentences that is the pause between them; inside one (the first sentence cut
for a bounded first chunk, or one longer than the context) it made a 0.7 s gap that whisper heard
as a sentence break. There the join keeps only what a single call would have: after a comma a
comma-sized pause, mid-phrase the last phoneme at its natural length and the next one's onset.
The trims are fixed by the plan (from the predicted durations, before any audio): the slot's
samples, the timeline and the motion stay exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .common import SAMPLES_PER_UNIT

# Measured on the packaged voices at speed 1 (-50 dBFS in 5 ms windows): the next chunk's speech
# starts 50-105 ms before its leading pad ends; a cut-off last phoneme (before the comma, if one
# ends the piece) sounds for 65-245 ms of its 250-375 ms, the rest and the comma are silent.
LEAD_KEEP = 1800  # samples of the next chunk's leading pad kept (75 ms): its onset
LAST_KEEP = 3600  # samples a last phoneme keeps at a cut (150 ms)
COMMA_KEEP = 2400  # samples of a comma's char and pad kept (100 ms; with the decays, ~0.2 s of pause,
#                    as the uncut sentence has)
FADE = 120  # samples (5 ms) faded at a trimmed edge: no click
_COMMA_LIKE = frozenset(",;:—–-…")


def tail_cuts(phonemes: str, units: np.ndarray) -> np.ndarray:
    """Samples dropped from each of a chunk's entries (pads included) when the next chunk goes on
    its sentence: the trailing pad (after a comma: the comma and pad, less COMMA_KEEP) and the
    lengthening of the last phoneme (beyond LAST_KEEP). All of it silence, so the audio loses
    their sum at its end."""
    samples = units.astype(np.int64) * SAMPLES_PER_UNIT
    cuts = np.zeros(len(samples), np.int64)
    last = len(samples) - 2
    if phonemes[-1:] in _COMMA_LIKE and last > 1:
        cuts[-1] = min(samples[-1], max(0, samples[-1] + samples[-2] - COMMA_KEEP))
        cuts[-2] = max(0, samples[-1] + samples[-2] - COMMA_KEEP) - cuts[-1]
        last -= 1
    else:
        cuts[-1] = samples[-1]
    cuts[last] = max(0, samples[last] - LAST_KEEP)
    return cuts


def join_trims(chunks: Sequence[Any], units: Sequence[np.ndarray]) -> tuple[tuple[int, int], ...]:
    """Per chunk (samples dropped at its start, at its end): nonzero only where the next chunk,
    or the previous one, speaks the same sentence."""
    trims = [[0, 0] for _ in chunks]
    for k in range(len(chunks) - 1):
        if chunks[k + 1].sentence == chunks[k].sentence:
            trims[k][1] = int(tail_cuts(chunks[k].phonemes, units[k]).sum())
            trims[k + 1][0] = max(0, int(units[k + 1][0]) * SAMPLES_PER_UNIT - LEAD_KEEP)
    return tuple((h, t) for h, t in trims)


def trimmed_length(chunks: Sequence[Any], units: Sequence[np.ndarray]) -> int:
    """The joined speech's samples."""
    trims = join_trims(chunks, units)
    return sum(int(u.sum()) * SAMPLES_PER_UNIT - h - t for u, (h, t) in zip(units, trims))


def trim_audio(wave: np.ndarray, head: int, tail: int) -> np.ndarray:
    """`wave` less `head` samples at its start and `tail` at its end, the cut edges faded."""
    out = np.array(wave[head:len(wave) - tail], dtype=np.float32)
    n = min(FADE, len(out))
    if head and n:
        out[:n] *= np.linspace(0.0, 1.0, n, dtype=np.float32)
    if tail and n:
        out[len(out) - n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)
    return out


def timeline_parts(chunks: Sequence[Any], units: Sequence[np.ndarray], trims: Sequence[tuple[int, int]]):
    """The per-char timeline of the joined chunks (phonemes, starts, samples, pauses), each chunk's
    first sample, and the speech's length. Between two chunks a space stands for the pause (what is
    left of the previous chunk's trailing pad and the next one's leading pad); a trimmed last
    phoneme (or comma) is as long as what is left of it."""
    phonemes, starts, samples, pauses, chunk_starts = [], [], [], [], []
    offset = previous_trailing = 0
    for index, (chunk, u, (head, tail)) in enumerate(zip(chunks, units, trims)):
        unit_samples = u.astype(np.int64) * SAMPLES_PER_UNIT
        if tail:
            unit_samples = unit_samples - tail_cuts(chunk.phonemes, u)
        leading, chars, trailing = int(unit_samples[0]) - head, unit_samples[1:-1], int(unit_samples[-1])
        if index > 0:
            phonemes.append(" ")
            samples.append(np.array([previous_trailing + leading], dtype=np.int64))
            starts.append(np.array([offset - previous_trailing], dtype=np.int64))
            pauses.append(np.array([True]))
        phonemes.append(chunk.phonemes)
        samples.append(chars)
        starts.append(offset + leading + np.concatenate([[0], np.cumsum(chars)[:-1]]).astype(np.int64))
        pauses.append(np.zeros(len(chars), dtype=bool))
        chunk_starts.append(offset)
        offset += leading + int(chars.sum()) + trailing
        previous_trailing = trailing
    return ("".join(phonemes), np.concatenate(starts), np.concatenate(samples), np.concatenate(pauses),
            tuple(chunk_starts), offset)
