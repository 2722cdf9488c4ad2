"""The checks a slot must pass before it airs, beside the CLIP scores: one report per check.

Each report says what was measured, the threshold, whether it passed, and whether it was
*enforced* (a failing enforced check fails the slot). A check is not enforced where it cannot
judge: a face check on frames that random stand-in networks rendered, say; `why_not_enforced`
says so in words, and the report is still kept in the result and the sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class CheckReport:
    passed: bool
    enforced: bool
    why_not_enforced: Optional[str] = None  # None when enforced
    notes: list[str] = field(default_factory=list)

    @property
    def fails_slot(self) -> bool:
        return self.enforced and not self.passed


@dataclass(frozen=True)
class IdentityReport(CheckReport):
    """dlib's 128-d face descriptor of K sampled output frames against the source portrait's.

    Euclidean distance; dlib calls two faces the same person below 0.6. A sampled frame in which
    no face is found counts as a failure (its distance is None)."""

    frame_indices: list[int] = field(default_factory=list)
    distances: list[Optional[float]] = field(default_factory=list)
    max_distance: float = 0.6  # the threshold: every sampled frame must be closer than this
    worst: Optional[float] = None  # the largest distance found (None if no frame had a face)
    faces_found: int = 0


@dataclass(frozen=True)
class LipSyncReport(CheckReport):
    """Inner-lip opening measured by landmarks on the output frames, correlated with the speech's
    RMS envelope (Pearson r) at the best lag within ±max_lag_ms; positive lag: lips after sound."""

    r: Optional[float] = None
    lag_ms: float = 0.0
    floor: float = 0.0  # the threshold on r
    frames_measured: int = 0
    frames_without_face: int = 0
    step: int = 1  # every step-th frame was measured
    max_lag_ms: float = 200.0


@dataclass(frozen=True)
class SpeechReport(CheckReport):
    """The slot's audio transcribed (faster-whisper tiny.en) and scored against the script, as a
    whole and sentence by sentence.

    Word error rate after normalisation (case, punctuation, numbers and spelled letters written
    the same way on both sides)."""

    transcript: str = ""
    wer: Optional[float] = None  # over the whole slot
    max_wer: float = 0.0  # the threshold
    reference_words: int = 0
    seconds: float = 0.0  # time the transcription took
    # each sentence's own WER ({"sentences", "words", "errors", "wer", "passed"}; a sentence under 3
    # words is judged with its neighbour): speech that lost a sentence fails even when the slot's WER is low
    sentences: list[dict] = field(default_factory=list)
    max_sentence_wer: Optional[float] = None
