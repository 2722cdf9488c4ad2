"""The speech check's calibration: word error rate of faster-whisper tiny.en on real Kokoro speech.

    python benchmarks/bench_speech_check.py [--profile cpu-miniature | --config FILE]
        [--voices rick_c137 morty narrator anchor] [--max-wer 0.5] [--beam N] [--vad] [--pad 1.0]

Correct speech: every script below, spoken by every voice, padded with `--pad` s of silence as a
slot is. Wrong audio, scored against a script: silence, white noise, the speech of *another*
script, the same speech time-reversed, and (for scale, not a verdict) only its first half. Prints
one row per case (WER, transcription seconds per audio second, the transcript) and the gap
between the worst correct case and the best wrong one: `max_wer` belongs in that gap.

Per sentence (`--sentences`): every script of several sentences is heard whole, as the check hears
a window, and scored by judged unit (a sentence, joined with its neighbour when under 3 words);
then once per unit with that unit's speech replaced by silence ("lost"). `max_sentence_wer`
belongs between the worst correct unit and the best lost one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from vortex.asr.normalize import join_compounds, normalize_words, word_errors  # noqa: E402
from vortex.config import VortexConfig  # noqa: E402

SAMPLE_RATE = 24_000
# Varied on purpose: the example recipes, the bench's news read (src/vortex/bench.py
# BENCH_SCRIPT, its first sentences), numbers, names, spelled letters, contractions.
SCRIPTS: dict[str, str] = {
    "rick_intro": "Welcome back to the interdimensional cable. Tonight, a message from our sponsor.",
    "wrapped": "Breaking news from dimension C-137. Details at eleven.",
    "news": "Good evening. Welcome back to the news hour. Tonight, a cold front reaches the citadel. "
            "Expect light rain in the morning.",
    "numbers": "The rocket left in 2026 with 45 passengers and 3.5 tons of fuel.",
    "money": "Tickets cost $12 each, or 30 dollars for a family of four.",
    "names": "Rick Sanchez and Morty Smith met Doctor Wong in Seattle on Tuesday.",
    "letters": "The vowels are A. E. I. O. U.",
    "acronym": "The FBI and the CIA both called the BBC about it.",
    "contractions": "Don't panic, it's only a small portal, and we'll be home by dinner.",
    "long": "In science news, a pocket portal gun. Its makers say it is perfectly safe. They would not "
            "say where the last volunteer went. Skies clear by the afternoon, with a high of 21 degrees.",
}
NOISE_RMS = 0.1  # white noise at about the speech's own level (Kokoro speech RMS is ~0.05-0.1)


@dataclass(frozen=True)
class Case:
    kind: str  # "correct" or a wrong kind: silence, noise, other script, reversed; "half" is for scale
    voice: str
    script: str  # the key of the script scored against
    wer: float
    errors: int
    words: int
    audio_s: float
    asr_s: float
    transcript: str
    redecoded: bool  # the first decoding looped and was decoded again with repeated 3-grams blocked


def score(script: str, transcript: str) -> tuple[float, int, int]:
    ref, hyp = join_compounds(normalize_words(script), normalize_words(transcript))
    errors = word_errors(ref, hyp)
    return errors / len(ref), errors, len(ref)


def run_case(asr, kind: str, voice: str, key: str, audio: np.ndarray) -> Case:
    transcript = asr.transcribe(audio, SAMPLE_RATE)
    wer, errors, words = score(SCRIPTS[key], transcript.text)
    return Case(kind, voice, key, wer, errors, words, transcript.audio_seconds, transcript.seconds, transcript.text,
                transcript.redecoded)


def calibrate(voice, asr, voices: list[str], pad_s: float, seed: int = 1) -> list[Case]:
    keys = list(SCRIPTS)
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    speech: dict[tuple[str, str], np.ndarray] = {}
    for v in voices:
        for key in keys:
            s = voice.synthesize(SCRIPTS[key], v, 1.0, "neutral", 45 * SAMPLE_RATE, seed=seed)
            audio = s.waveform[: s.speech_samples + round(pad_s * SAMPLE_RATE)]
            speech[v, key] = audio
            cases.append(run_case(asr, "correct", v, key, audio))
    for v in voices:
        for i, key in enumerate(keys):
            audio = speech[v, key]
            other = keys[(i + 1) % len(keys)]
            cases.append(run_case(asr, f"speech of '{other}'", v, key, speech[v, other]))
            cases.append(run_case(asr, "reversed", v, key, audio[::-1].copy()))
            cases.append(run_case(asr, "half", v, key, audio[: len(audio) // 2]))
    for key in keys:  # voice-independent: the audio is the length of rick_c137's speech
        n = len(speech[voices[0], key])
        cases.append(run_case(asr, "silence", "-", key, np.zeros(n, dtype=np.float32)))
        noise = (rng.standard_normal(n) * NOISE_RMS).astype(np.float32)
        cases.append(run_case(asr, "noise", "-", key, noise))
    return cases


def sentence_cases(voice, asr, voices: list[str], pad_s: float, max_sentence_wer: float, seed: int = 1) -> list[tuple]:
    """(kind, voice, script, unit sentences, WER, heard) per judged unit: correct, and lost (silenced)."""
    from vortex.asr.check import HeardWindow, sentence_errors

    rows = []
    for v in voices:
        for key, script in SCRIPTS.items():
            plan = voice.plan(script, v, 1.0, "neutral", 45 * SAMPLE_RATE)
            texts = {c.sentence: c.text for c in plan.chunks}
            if len(texts) < 2:
                continue
            audio = np.zeros(plan.speech_samples + round(pad_s * SAMPLE_RATE), np.float32)
            for chunk in voice.stream(plan, seed=seed):
                audio[chunk.start:chunk.end] = chunk.audio

            def heard(samples: np.ndarray) -> tuple[list[dict], str]:
                text = asr.transcribe(samples, SAMPLE_RATE).text
                units, _ = sentence_errors(HeardWindow(tuple(texts), text, 0.0, 0.0), texts, max_sentence_wer)
                return units, text

            units, text = heard(audio)
            units = [u for u in units if u["judged"]]  # spelled letters and short windows are not judged
            rows += [("correct", v, key, u["sentences"], u["wer"], text) for u in units]
            for unit in units:
                silenced = audio.copy()
                for k, chunk in enumerate(plan.chunks):
                    if chunk.sentence in unit["sentences"]:
                        silenced[plan.chunk_starts[k]:plan.chunk_starts[k] + plan.chunk_samples(k)] = 0.0
                lost, text = heard(silenced)
                match = next(u for u in lost if set(u["sentences"]) & set(unit["sentences"]))
                rows.append(("lost", v, key, unit["sentences"], match["wer"], text))
    return rows


def sentence_summary(rows: list[tuple], max_sentence_wer: float) -> str:
    correct = [r for r in rows if r[0] == "correct"]
    lost = [r for r in rows if r[0] == "lost"]
    worst, best = max(correct, key=lambda r: r[4]), min(lost, key=lambda r: r[4])
    lines = [f"{kind:<8} {v:<10} {key:<13} {'+'.join(map(str, s)):<8} {wer:>6.3f}  {text[:70]}"
             for kind, v, key, s, wer, text in rows]
    lines += [
        f"sentences correct: {len(correct)} units, WER max {worst[4]:.3f} ({worst[1]}/{worst[2]} {worst[3]})",
        f"sentences lost:    {len(lost)} units, WER min {best[4]:.3f} ({best[1]}/{best[2]} {best[3]})",
        f"max_sentence_wer {max_sentence_wer:g}: correct passing {sum(r[4] <= max_sentence_wer for r in correct)}/"
        f"{len(correct)}, lost failing {sum(r[4] > max_sentence_wer for r in lost)}/{len(lost)}",
    ]
    return "\n".join(lines)


def table(cases: list[Case], max_wer: float) -> str:
    lines = [f"{'case':<22} {'voice':<10} {'script':<13} {'WER':>6} {'err/words':>9} {'audio s':>7} "
             f"{'asr s':>6} {'s/s':>5} {'loop':<4} {'verdict':<7} transcript"]
    for c in cases:
        verdict = "pass" if c.wer <= max_wer else "FAIL"
        text = c.transcript if len(c.transcript) <= 90 else c.transcript[:87] + "..."
        lines.append(f"{c.kind:<22} {c.voice:<10} {c.script:<13} {c.wer:>6.3f} {c.errors:>4}/{c.words:<4} "
                     f"{c.audio_s:>7.2f} {c.asr_s:>6.2f} {c.asr_s / c.audio_s:>5.3f} {'yes' if c.redecoded else '-':<4} {verdict:<7} {text}")
    return "\n".join(lines)


def summary(cases: list[Case], max_wer: float) -> str:
    correct = [c for c in cases if c.kind == "correct"]
    wrong = [c for c in cases if c.kind not in ("correct", "half")]
    half = [c for c in cases if c.kind == "half"]
    worst_ok = max(correct, key=lambda c: c.wer)
    best_bad = min(wrong, key=lambda c: c.wer)
    rtf = [c.asr_s / c.audio_s for c in cases]
    out = [
        f"correct: {len(correct)} cases, WER mean {statistics.mean(c.wer for c in correct):.3f}, "
        f"max {worst_ok.wer:.3f} ({worst_ok.voice}/{worst_ok.script})",
        f"wrong:   {len(wrong)} cases, WER min {best_bad.wer:.3f} ({best_bad.kind}, {best_bad.voice}/{best_bad.script})",
        f"half:    {len(half)} cases (first half of correct speech), WER min {min(c.wer for c in half):.3f} "
        f"median {statistics.median(c.wer for c in half):.3f}",
        f"gap:     ({worst_ok.wer:.3f}, {best_bad.wer:.3f}) -> "
        + ("separable" if worst_ok.wer < best_bad.wer else "NOT separable"),
        f"max_wer {max_wer:g}: correct passing {sum(c.wer <= max_wer for c in correct)}/{len(correct)}, "
        f"wrong failing {sum(c.wer > max_wer for c in wrong)}/{len(wrong)}",
        f"transcription seconds per audio second: median {statistics.median(rtf):.3f}, max {max(rtf):.3f}",
        f"first decoding looped (decoded again): {sum(c.redecoded for c in cases)} of {len(cases)} cases",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None)
    parser.add_argument("--config", default=None)
    parser.add_argument("--voices", nargs="+", default=None, help="voice ids (default: all of the profile's)")
    parser.add_argument("--max-wer", type=float, default=None, help="threshold to judge by (default: the config's)")
    parser.add_argument("--pad", type=float, default=1.0, help="seconds of silence after the speech")
    parser.add_argument("--beam", type=int, default=None, help="beam size (default: models.whisper.beam_size)")
    parser.add_argument("--vad", action="store_true", help="decode with faster-whisper's Silero VAD filter")
    parser.add_argument("--sentences", action="store_true", help="only the per-sentence calibration")
    args = parser.parse_args(argv)

    from vortex.asr.whisper import WhisperTranscriber
    from vortex.logs import quiet_libraries
    from vortex.models.kokoro import KokoroVoice

    quiet_libraries(load=True)
    cfg = VortexConfig.load(args.profile, args.config)
    max_wer = args.max_wer if args.max_wer is not None else cfg.verification.max_wer
    t0 = time.perf_counter()
    voice = KokoroVoice.load(cfg.models.kokoro, "cpu", cfg.cache_path)
    w = cfg.models.whisper if args.beam is None else cfg.models.whisper.model_copy(update={"beam_size": args.beam})
    asr = WhisperTranscriber.load(w, vad_filter=args.vad)
    voices = args.voices or voice.voice_ids
    print(f"bench_speech_check · profile {cfg.profile} · Kokoro {cfg.models.kokoro.backend} · "
          f"whisper {asr.model_dir} ({'multilingual' if asr.is_multilingual else 'English-only'}) "
          f"{w.compute_type} beam {w.beam_size} threads {w.cpu_threads} vad {args.vad} · pad {args.pad:g} s")
    if args.sentences:
        print(sentence_summary(sentence_cases(voice, asr, voices, args.pad, cfg.verification.max_sentence_wer),
                               cfg.verification.max_sentence_wer))
    else:
        cases = calibrate(voice, asr, voices, args.pad)
        print(table(cases, max_wer))
        print(summary(cases, max_wer))
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
