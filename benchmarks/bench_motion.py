"""The motion driver on real speech: how well the lips follow the voice.

Synthesises a few scripts with the real Kokoro-82M voice (the int8 ONNX export of the cpu-miniature
profile), drives a slot for each, and prints: lip/speech correlation (Pearson r between mouth_open
and the per-frame RMS of the waveform, over the whole slot and over the spoken part only), blink
count, mean mouth_open on vowel frames, the largest |exp_delta|, and how long drive() took.

    python benchmarks/bench_motion.py [--cache DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vortex.config import VortexConfig  # noqa: E402
from vortex.models.kokoro import KokoroVoice, Speech  # noqa: E402
from vortex.motion.blinks import count_blinks  # noqa: E402
from vortex.motion.driver import MotionDriver, lip_speech_correlation  # noqa: E402

FPS = 24
TAIL_S = 1.0  # silence after the speech, as a slot that is longer than its speech has
SCRIPTS = [
    ("greeting", "Hello there. My name is Rick, and I build maps of the moon.", 1.0, "neutral"),
    ("question", "Wait, what? You did what to the portal gun? Oh, no, no, no.", 1.0, "excited"),
    ("news", "Good evening. Tonight, the city council voted to open three new parks along the river. "
             "Construction begins in spring, and the first park should be finished by autumn. "
             "Residents say they are looking forward to quiet mornings by the water.", 1.0, "neutral"),
    ("fast", "Look, I am going to say this very quickly, because we are running out of time.", 1.6, "manic"),
    ("slow", "Some days, the sky is just grey, and that is fine.", 0.7, "sad"),
]


def slot_speech(voice: KokoroVoice, text: str, speed: float, emotion: str) -> tuple[Speech, int]:
    """Speech for a slot that ends TAIL_S after the voice does (whole frames)."""
    long = voice.synthesize(text, "rick_c137", speed, emotion, n_samples=45 * 24000)
    n_frames = int(np.ceil((long.speech_samples / long.sample_rate + TAIL_S) * FPS))
    n_samples = n_frames * long.sample_rate // FPS
    return dataclasses.replace(long, waveform=long.waveform[:n_samples].copy()), n_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="weights cache (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="vortex-bench-motion-"))
    cfg = VortexConfig.load("cpu-miniature")
    voice = KokoroVoice.load(cfg.models.kokoro, "cpu", cache)
    driver = MotionDriver(cfg.motion)

    print(f"motion driver on real Kokoro-82M speech (int8 ONNX, voice rick_c137), {FPS} fps, seed {args.seed}, "
          f"lip lead {cfg.motion.lip_lead_s * 1e3:.0f} ms")
    header = f"{'script':<10} {'speed':>5} {'seconds':>7} {'frames':>6} {'r slot':>6} {'r speech':>8} " \
             f"{'vowel open':>10} {'blinks':>6} {'max|exp|':>8} {'drive ms':>8}"
    print(header)
    print("-" * len(header))
    correlations = []
    for name, text, speed, emotion in SCRIPTS:
        speech, n_frames = slot_speech(voice, text, speed, emotion)
        driver.drive(speech, n_frames, FPS, args.seed, emotion=emotion)  # warm-up
        start = time.perf_counter()
        seq = driver.drive(speech, n_frames, FPS, args.seed, emotion=emotion)
        elapsed_ms = (time.perf_counter() - start) * 1e3
        r_slot = lip_speech_correlation(seq, speech)
        spoken = int(np.ceil(speech.speech_samples / speech.sample_rate * FPS))
        r_speech = float(np.corrcoef(seq.mouth_open[:spoken], _frame_rms(speech, spoken))[0, 1])
        correlations.append(r_slot)
        print(f"{name:<10} {speech.speed:>5.2f} {n_frames / FPS:>7.2f} {n_frames:>6} {r_slot:>6.3f} {r_speech:>8.3f} "
              f"{_vowel_opening(seq, speech, cfg.motion.lip_lead_s):>10.2f} {count_blinks(seq.eye_open):>6} "
              f"{np.abs(seq.exp_delta).max():>8.4f} {elapsed_ms:>8.1f}")
    print(f"mean lip/speech correlation over the slots: {np.mean(correlations):.3f}")


def _frame_rms(speech: Speech, n_frames: int) -> np.ndarray:
    from vortex.motion.envelope import frame_rms

    return frame_rms(speech.waveform, speech.sample_rate, n_frames, FPS)


def _vowel_opening(seq, speech: Speech, lead_s: float) -> float:
    """Mean mouth_open over the frames during which a vowel is heard: frame centres in a vowel of
    the timeline once moved by the lip lead (the audio runs ahead of Kokoro's durations)."""
    from vortex.motion.visemes import DIPHTHONGS, VOWELS

    centres = ((np.arange(seq.n_frames) + 0.5) / FPS + lead_s) * speech.sample_rate
    vowel = np.zeros(seq.n_frames, dtype=bool)
    for char, start, length in zip(speech.phonemes, speech.phoneme_starts, speech.phoneme_samples):
        if char in VOWELS or char in DIPHTHONGS:
            vowel |= (centres >= start) & (centres < start + length)
    return float(seq.mouth_open[vowel].mean()) if vowel.any() else float("nan")


if __name__ == "__main__":
    main()
