"""The speech check: transcribe a slot's audio and score the words against its script (WER)."""

from __future__ import annotations

import numpy as np

from ..errors import RecipeError
from ..engine.reports import SpeechReport
from .normalize import join_compounds, normalize_words, word_errors
from .whisper import LOOP_COMPRESSION_RATIO, LOOP_NGRAM, WhisperTranscriber


def check_speech(
    transcriber: WhisperTranscriber,
    waveform: np.ndarray,
    sample_rate: int,
    script: str,
    *,
    max_wer: float,
    enforced: bool,
    why_not: str | None = None,
) -> SpeechReport:
    """Passed when the word error rate of the transcript against `script` is at most `max_wer`.

    `enforced`/`why_not` are the caller's: whether a failure fails the slot, and if not, why."""
    reference = normalize_words(script)
    if not reference:
        raise RecipeError("audio_track.script", f"has no words to check the speech against: {script[:60]!r}")
    if enforced and why_not is not None:
        raise ValueError("check_speech: why_not is for a check that is not enforced")
    if not enforced and not why_not:
        raise ValueError("check_speech: a check that is not enforced must say why (why_not)")
    transcript = transcriber.transcribe(waveform, sample_rate)
    ref, hyp = join_compounds(reference, normalize_words(transcript.text))
    errors = word_errors(ref, hyp)
    wer = errors / len(ref)
    notes = [f"{errors} word errors in {len(ref)} reference words; "
             f"{transcript.seconds:.2f} s to transcribe {transcript.audio_seconds:.2f} s of audio"]
    if transcript.redecoded:
        notes.append(f"the first decoding looped (compression ratio > {LOOP_COMPRESSION_RATIO}): "
                     f"decoded again with repeated {LOOP_NGRAM}-grams blocked")
    return SpeechReport(
        passed=wer <= max_wer, enforced=enforced, why_not_enforced=None if enforced else why_not,
        notes=notes, transcript=transcript.text, wer=wer, max_wer=max_wer,
        reference_words=len(ref), seconds=transcript.seconds,
    )
