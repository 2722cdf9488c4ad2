"""The speech check: transcribe a slot's audio and score the words against its script (WER).

The slot is judged whole and sentence by sentence. Its audio is transcribed in windows of a few
sentences as the speech streams (`transcribe_window`: Whisper's cost is mostly its fixed
window, so a window per sentence would cost several times more); each window's transcript is
aligned with its sentences' words (vortex.asr.align), so every sentence gets its own WER. The slot
passes when its WER over all windows is at most `max_wer` and no sentence's WER exceeds
`max_sentence_wer`: speech that lost a sentence fails even when the slot's WER is low.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..contracts.reports import SpeechReport
from ..errors import RecipeError
from .align import errors_by_label
from .normalize import join_compounds_labelled, normalize_words
from .whisper import LOOP_COMPRESSION_RATIO, LOOP_NGRAM, WhisperTranscriber


@dataclass(frozen=True)
class HeardWindow:
    """What the recogniser heard in one stretch of the slot's audio, and which sentences it held."""

    sentences: tuple[int, ...]
    transcript: str
    seconds: float  # transcription time
    audio_seconds: float
    redecoded: bool = False


def transcribe_window(transcriber: WhisperTranscriber, audio: np.ndarray, sample_rate: int,
                      sentences: Sequence[int]) -> HeardWindow:
    heard = transcriber.transcribe(audio, sample_rate)
    return HeardWindow(tuple(sentences), heard.text, heard.seconds, heard.audio_seconds, heard.redecoded)


# A shorter sentence is judged with its neighbour: one misheard word of "Good evening." is WER 0.5,
# and a lost 4-word unit with one word matched by chance still scores 0.75, above the 0.7 limit.
MIN_JUDGED_WORDS = 4


def sentence_errors(window: HeardWindow, texts: dict[int, str],
                    max_sentence_wer: Optional[float] = None) -> tuple[list[dict], int]:
    """The window's sentences scored against what was heard, as judged units ({"sentences", "words",
    "errors", "wer", "passed"}): a sentence of fewer than MIN_JUDGED_WORDS words joins the next one
    (the last joins the one before); a unit still that short, or of spelled letters only (tiny.en
    hears "E. I. O. U." as words: WER 0.5-1.0 on correct speech), is reported, not judged. Also
    returns the stray errors (insertions where the window's sentences have no words at all)."""
    reference, labels = [], []
    for k in window.sentences:
        said = normalize_words(texts[k])
        reference += said
        labels += [k] * len(said)
    ref, ref_labels, hyp = join_compounds_labelled(reference, labels, normalize_words(window.transcript))
    per = errors_by_label(ref, ref_labels, hyp)
    counted = [(k, ref_labels.count(k), per.get(k, 0)) for k in window.sentences if ref_labels.count(k)]
    spelled = {k for k, _, _ in counted if all(len(w) == 1 for w, label in zip(ref, ref_labels) if label == k)}
    groups: list[list[tuple[int, int, int]]] = []
    for item in counted:
        if groups and sum(w for _, w, _ in groups[-1]) < MIN_JUDGED_WORDS:
            groups[-1].append(item)
        else:
            groups.append([item])
    if len(groups) > 1 and sum(w for _, w, _ in groups[-1]) < MIN_JUDGED_WORDS:
        last = groups.pop()
        groups[-1] += last
    units = []
    for group in groups:
        words, errors = sum(w for _, w, _ in group), sum(e for _, _, e in group)
        wer = errors / words
        judged = (words >= MIN_JUDGED_WORDS and max_sentence_wer is not None
                  and not all(k in spelled for k, _, _ in group))
        units.append({"sentences": [k for k, _, _ in group], "words": words, "errors": errors, "wer": round(wer, 4),
                      "judged": judged, "passed": not judged or wer <= max_sentence_wer})
    stray = sum(v for label, v in per.items() if label not in window.sentences)
    return units, stray


def judge_speech(windows: Sequence[HeardWindow], texts: dict[int, str], *, max_wer: float,
                 max_sentence_wer: Optional[float], enforced: bool, why_not: Optional[str] = None) -> SpeechReport:
    """The slot's speech report from its windows; `texts` maps each sentence to its words as written."""
    if enforced and why_not is not None:
        raise ValueError("judge_speech: why_not is for a check that is not enforced")
    if not enforced and not why_not:
        raise ValueError("judge_speech: a check that is not enforced must say why (why_not)")
    sentences: list[dict] = []
    errors = 0
    for window in windows:
        scored, stray = sentence_errors(window, texts, max_sentence_wer)
        sentences += scored
        errors += stray + sum(s["errors"] for s in scored)
    words = sum(s["words"] for s in sentences)
    if words == 0:
        raise RecipeError("audio_track.script", "has no words to check the speech against")
    wer = errors / words
    seconds = sum(w.seconds for w in windows)
    audio = sum(w.audio_seconds for w in windows)
    notes = [f"{errors} word errors in {words} reference words, {len(sentences)} sentences in {len(windows)} "
             f"window(s); {seconds:.2f} s to transcribe {audio:.2f} s of audio"]
    lost = [s for s in sentences if not s["passed"]]
    if lost:
        notes.append("sentences above the per-sentence limit: " + ", ".join(
            f"{'+'.join(map(str, s['sentences']))} ({s['wer']:.2f}: {texts[s['sentences'][0]][:40]!r})" for s in lost))
    if any(w.redecoded for w in windows):
        notes.append(f"a decoding looped (compression ratio > {LOOP_COMPRESSION_RATIO}): "
                     f"decoded again with repeated {LOOP_NGRAM}-grams blocked")
    return SpeechReport(
        passed=wer <= max_wer and not lost, enforced=enforced, why_not_enforced=None if enforced else why_not,
        notes=notes, transcript=" ".join(w.transcript for w in windows if w.transcript), wer=wer, max_wer=max_wer,
        reference_words=words, seconds=seconds, sentences=sentences, max_sentence_wer=max_sentence_wer,
    )


def check_speech(
    transcriber: WhisperTranscriber,
    waveform: np.ndarray,
    sample_rate: int,
    script: str,
    *,
    max_wer: float,
    max_sentence_wer: Optional[float] = None,
    enforced: bool,
    why_not: str | None = None,
) -> SpeechReport:
    """The whole audio in one window against the whole script (tests, benchmarks)."""
    from ..models.g2p import split_sentences

    if not normalize_words(script):
        raise RecipeError("audio_track.script", f"has no words to check the speech against: {script[:60]!r}")
    if enforced and why_not is not None:
        raise ValueError("check_speech: why_not is for a check that is not enforced")
    if not enforced and not why_not:
        raise ValueError("check_speech: a check that is not enforced must say why (why_not)")
    texts = dict(enumerate(split_sentences(script)))
    window = transcribe_window(transcriber, waveform, sample_rate, list(texts))
    return judge_speech([window], texts, max_wer=max_wer, max_sentence_wer=max_sentence_wer, enforced=enforced,
                        why_not=why_not)
