"""Phonemes → mouth-shape targets over time (visemes), with co-articulation.

Each char of Kokoro's phoneme string (misaki US/GB style) gets a target: how far the jaw opens,
how spread ("eee") or rounded ("ooo") the lips are, and whether the lips are pressed together
(m b p). Diphthongs (A I W Y O Q) glide from their first vowel to their second. A stress mark
belongs to the vowel after it: it takes that vowel's shape and opens it a little more.

Word-boundary spaces inside a sentence are *transparent*: Kokoro gives them 25-75 ms that carry
the neighbouring sounds (measured on the real voice), so their target is interpolated between
the neighbours, and the waveform's own silence (see `envelope`) closes the mouth where the speaker
really pauses. Punctuation and everything outside the timeline are silence: closed.

Co-articulation: the targets are smoothed with a Gaussian of ~30 ms, so a mouth shape starts
before its sound and lingers after it. The bilabial closure is smoothed far less (~10 ms) and
multiplies the opening, so a short /m/ between two open vowels still shuts the lips.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

CONTROL_RATE = 200  # Hz: the motion signals are built at 5 ms steps, then sampled at frame centres
COARTICULATION_SIGMA_S = 0.030
CLOSURE_SIGMA_S = 0.010
STRESS_BOOST = {"ˈ": 1.15, "ˌ": 1.07}


@dataclass(frozen=True)
class Viseme:
    open: float  # 0 closed .. 1 wide open jaw
    spread: float = 0.0  # 0 .. 1 lips spread ("eee")
    round: float = 0.0  # 0 .. 1 lips rounded ("ooo")
    closure: float = 0.0  # 1 lips pressed together (bilabials)


VOWELS: dict[str, Viseme] = {
    "ɑ": Viseme(1.00), "a": Viseme(0.90, 0.1), "æ": Viseme(0.85, 0.4), "ʌ": Viseme(0.75),
    "ɒ": Viseme(0.85, 0.0, 0.3), "ɔ": Viseme(0.80, 0.0, 0.5), "ɐ": Viseme(0.60),
    "ɛ": Viseme(0.70, 0.4), "e": Viseme(0.60, 0.5), "ɜ": Viseme(0.50, 0.0, 0.3),
    "ə": Viseme(0.45), "ᵊ": Viseme(0.35), "ɚ": Viseme(0.45, 0.0, 0.2),
    "ɪ": Viseme(0.45, 0.5), "i": Viseme(0.35, 1.0), "ᵻ": Viseme(0.40, 0.3), "y": Viseme(0.30, 0.0, 0.9),
    "ʊ": Viseme(0.40, 0.0, 0.7), "u": Viseme(0.30, 0.0, 1.0), "o": Viseme(0.55, 0.0, 0.8),
}
# misaki's one-char diphthongs glide from the first vowel to the second
DIPHTHONGS: dict[str, tuple[str, str]] = {
    "A": ("ɛ", "i"), "I": ("ɑ", "ɪ"), "W": ("ɑ", "ʊ"), "Y": ("ɔ", "ɪ"), "O": ("ə", "ʊ"), "Q": ("ə", "ʊ"),
}
CONSONANTS: dict[str, Viseme] = {
    **{c: Viseme(0.0, closure=1.0) for c in "mbp"},
    **{c: Viseme(0.08) for c in "fv"},  # lower lip to the teeth
    **{c: Viseme(0.20) for c in "θð"},  # tongue between the teeth
    "w": Viseme(0.15, 0.0, 0.9), "ɹ": Viseme(0.25, 0.0, 0.4), "r": Viseme(0.25, 0.0, 0.3),
    **{c: Viseme(0.20, 0.0, 0.5) for c in "ʃʒʧʤ"},  # lips pushed forward
    **{c: Viseme(0.15, 0.4) for c in "sz"},
    **{c: Viseme(0.25) for c in "tdnlɾ"},
    **{c: Viseme(0.30) for c in "kɡgŋx"},
    "h": Viseme(0.40), "j": Viseme(0.20, 0.6), "ʔ": Viseme(0.20),
}
OTHER_LETTER = Viseme(0.25)  # a letter not in the tables (other languages' phonemes): a mid consonant
SILENCE = Viseme(0.0)


@dataclass(frozen=True)
class VisemeTracks:
    """Smoothed mouth targets at CONTROL_RATE, before the waveform's silence gates them."""

    times: np.ndarray  # (K,) seconds
    open: np.ndarray  # (K,) 0..1, bilabial closure already applied
    spread: np.ndarray  # (K,)
    round: np.ndarray  # (K,)
    stressed_onsets: np.ndarray  # seconds at which a primary-stressed vowel starts
    voiced: np.ndarray  # (K,) 1 inside a sentence's phonemes, 0 in punctuation, pauses and silence


def _is_transparent(char: str) -> bool:
    return char.isspace() or char == "ː"  # a length mark just holds the sound before it


def _is_silence(char: str) -> bool:
    return unicodedata.category(char)[0] in "PSZC" and not char.isspace()


def _letter_viseme(char: str) -> list[Viseme]:
    """One viseme, or two halves for a diphthong."""
    if char in DIPHTHONGS:
        return [VOWELS[v] for v in DIPHTHONGS[char]]
    return [VOWELS.get(char) or CONSONANTS.get(char) or OTHER_LETTER]


def _next_letter(phonemes: str, index: int) -> str | None:
    for char in phonemes[index + 1:]:
        if char in STRESS_BOOST:
            continue
        return None if (_is_transparent(char) or _is_silence(char)) else char
    return None


def viseme_tracks(phonemes: str, starts: np.ndarray, durations: np.ndarray, sample_rate: int,
                  duration_s: float, lead_s: float = 0.0, pauses: np.ndarray | None = None) -> VisemeTracks:
    """Targets at CONTROL_RATE over [0, duration_s]; `lead_s` moves every shape that much earlier.
    `pauses` marks entries that are the pause between two chunks of speech: silence, like punctuation."""
    n_steps = int(np.ceil(duration_s * CONTROL_RATE)) + 1
    times = np.arange(n_steps) / CONTROL_RATE
    # NaN marks transparent steps, filled by interpolation from the neighbours below
    targets = np.zeros((4, n_steps))
    voiced = np.zeros(n_steps)
    stressed: list[float] = []
    boost = 1.0
    for index, char in enumerate(phonemes):
        t0 = starts[index] / sample_rate - lead_s
        t1 = t0 + durations[index] / sample_rate
        k0, k1 = int(np.ceil(t0 * CONTROL_RATE)), int(np.ceil(t1 * CONTROL_RATE))
        k0, k1 = max(0, min(k0, n_steps)), max(0, min(k1, n_steps))
        if pauses is not None and pauses[index]:
            _paint(targets, k0, k1, [SILENCE], 1.0)
            boost = 1.0
            continue
        voiced[k0:k1] = 0.0 if _is_silence(char) else 1.0
        if char in STRESS_BOOST:
            nxt = _next_letter(phonemes, index)
            shapes = _letter_viseme(nxt)[:1] if nxt else [SILENCE]
            boost = STRESS_BOOST[char]
            if char == "ˈ":
                stressed.append(t0)
            _paint(targets, k0, k1, shapes, boost if nxt in VOWELS or nxt in DIPHTHONGS else 1.0)
            continue
        if _is_transparent(char):
            targets[:, k0:k1] = np.nan
            boost = 1.0
        elif _is_silence(char):
            _paint(targets, k0, k1, [SILENCE], 1.0)
            boost = 1.0
        elif char in VOWELS or char in DIPHTHONGS:
            _paint(targets, k0, k1, _letter_viseme(char), boost)
            boost = 1.0  # a stress mark lifts the one vowel after it
        else:
            _paint(targets, k0, k1, _letter_viseme(char), 1.0)
    targets = _fill_transparent(targets)
    open_, spread, round_ = (_gaussian(t, COARTICULATION_SIGMA_S) for t in targets[:3])
    closure = np.clip(_gaussian(targets[3], CLOSURE_SIGMA_S), 0.0, 1.0)
    return VisemeTracks(times, np.clip(open_ * (1.0 - closure), 0.0, 1.0), np.clip(spread, 0, 1), np.clip(round_, 0, 1),
                        np.asarray(stressed, dtype=np.float64), voiced)


def _paint(targets: np.ndarray, k0: int, k1: int, shapes: list[Viseme], boost: float) -> None:
    if k1 <= k0:
        return
    edges = np.linspace(k0, k1, len(shapes) + 1).round().astype(int)
    for shape, a, b in zip(shapes, edges[:-1], edges[1:]):
        targets[:, a:b] = np.array([[min(1.0, shape.open * boost)], [shape.spread], [shape.round], [shape.closure]])


def _fill_transparent(targets: np.ndarray) -> np.ndarray:
    known = ~np.isnan(targets[0])
    if known.all():
        return targets
    if not known.any():
        return np.zeros_like(targets)
    steps = np.arange(targets.shape[1])
    return np.stack([np.interp(steps, steps[known], row[known]) for row in targets])


def _gaussian(signal: np.ndarray, sigma_s: float) -> np.ndarray:
    return gaussian_smooth(signal, sigma_s * CONTROL_RATE)


def gaussian_smooth(signal: np.ndarray, sigma_steps: float) -> np.ndarray:
    """Gaussian filter along the last axis, edges extended (no fade at the ends)."""
    if sigma_steps <= 0 or signal.shape[-1] < 2:
        return signal.astype(np.float64, copy=True)
    radius = int(np.ceil(3 * sigma_steps))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma_steps) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(signal.astype(np.float64), (radius, radius), mode="edge")
    return np.convolve(padded, kernel, mode="valid")
