"""The motion driver: speech → per-frame LivePortrait driving parameters.

Real speech comes from the real Kokoro-82M voice (the int8 ONNX export of the cpu-miniature
profile). Hand-built `Speech` values (a written phoneme timeline over a synthetic voiced waveform)
are test data for the cases real speech cannot pin down: a bilabial between two open vowels, a
pure "eee" against a pure "ooo", 45 s of silence for blinks, adversarial timelines for bounds.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from vortex.config import MotionConfig, VortexConfig
from vortex.errors import RecipeError
from vortex.models.kokoro import KokoroVoice, Speech
from vortex.models.liveportrait.camera import get_rotation_matrix
from vortex.motion import DrivingSequence
from vortex.motion.blinks import count_blinks
from vortex.motion.driver import EXP_DELTA_BOUND, EXPRESSION_PRESETS, MotionDriver, lip_speech_correlation
from vortex.motion.expressions import LIP_KEYPOINTS, expression_track
from vortex.motion.template import rotation_to_degrees
from vortex.motion.visemes import DIPHTHONGS, VOWELS

SR = 24000
FPS = 24
SENTENCE = "Hello there. My name is Rick, and I build maps of the moon."


# ---- test data ------------------------------------------------------------------------------
def synthetic_speech(segments: list[tuple[str, float, float]], total_s: float, lead_in_s: float = 0.2,
                     seed: int = 0) -> Speech:
    """A `Speech` from (phoneme chars, seconds per char, amplitude) segments over a voiced buzz."""
    phonemes, durations, amplitudes = [], [], []
    for chars, seconds, amplitude in segments:
        for char in chars:
            phonemes.append(char)
            durations.append(int(round(seconds * SR)))
            amplitudes.append(amplitude)
    durations = np.asarray(durations, dtype=np.int64)
    starts = int(lead_in_s * SR) + np.concatenate([[0], np.cumsum(durations)[:-1]]).astype(np.int64)
    n = int(round(total_s * SR))
    gain = np.zeros(n)
    for start, length, amplitude in zip(starts, durations, amplitudes):
        gain[start:start + length] = amplitude
    ramp = np.hanning(241) / np.hanning(241).sum()  # 10 ms edges, no clicks
    gain = np.convolve(gain, ramp, mode="same")
    t = np.arange(n) / SR
    buzz = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    buzz += 0.05 * np.random.default_rng(seed).standard_normal(n)
    waveform = np.clip(gain * buzz / 2, -1, 1).astype(np.float32)
    end = int(starts[-1] + durations[-1] + 0.1 * SR) if len(durations) else 0
    return Speech.from_timeline(waveform, SR, "".join(phonemes), starts, durations, min(end, n))


def silent_speech(seconds: float) -> Speech:
    return synthetic_speech([], seconds)


def frames_in(speech: Speech, n_frames: int, lead_s: float, chars: str | None = None, index: int | None = None) -> np.ndarray:
    """Frames during which a phoneme is *heard*: the timeline moved by the driver's lip lead, since
    the voice's audio runs ahead of Kokoro's token durations (measured: 50-70 ms)."""
    heard = (np.arange(n_frames) + 0.5) / FPS * SR + lead_s * SR
    mask = np.zeros(n_frames, dtype=bool)
    for i, (char, start, length) in enumerate(zip(speech.phonemes, speech.phoneme_starts, speech.phoneme_samples)):
        if (index is not None and i == index) or (chars is not None and char in chars):
            mask |= (heard >= start) & (heard < start + length)
    return mask


@pytest.fixture(scope="module")
def driver() -> MotionDriver:
    return MotionDriver(MotionConfig())


@pytest.fixture(scope="module")
def voice(tmp_path_factory) -> KokoroVoice:
    return KokoroVoice.load(VortexConfig.load("cpu-miniature").models.kokoro, "cpu", tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def real_speech(voice) -> Speech:
    return voice.synthesize(SENTENCE, "rick_c137", 1.0, "neutral", n_samples=7 * SR)


# ---- lips -----------------------------------------------------------------------------------
def test_real_speech_opens_the_mouth_on_vowels_and_closes_it_in_silence(driver, real_speech):
    n_frames = 7 * FPS
    seq = driver.drive(real_speech, n_frames, FPS, seed=1)
    vowels = frames_in(real_speech, n_frames, driver.cfg.lip_lead_s, chars="".join(VOWELS) + "".join(DIPHTHONGS))
    padding = np.arange(n_frames) / FPS * SR >= real_speech.speech_samples
    r = lip_speech_correlation(seq, real_speech)
    print(f"\nreal speech: lip/speech r = {r:.3f}, mean mouth_open on {vowels.sum()} vowel frames = "
          f"{seq.mouth_open[vowels].mean():.2f}, max in {padding.sum()} padding frames = {seq.mouth_open[padding].max():.3f}")
    assert vowels.sum() >= 10 and padding.sum() >= 20
    assert seq.mouth_open[vowels].mean() > 0.3
    assert seq.mouth_open[padding].max() < 0.05
    assert r > 0.4
    # the mouth moves by +19.y (mouth open) of the extractor's order, never beyond
    assert 0.02 < seq.exp_delta[:, 19, 1].max() <= 0.06
    assert np.allclose(seq.exp_delta[padding][:, list(LIP_KEYPOINTS)], 0.0, atol=1e-4)


def test_bilabials_close_the_lips_between_open_vowels(driver):
    def speak(consonant: str) -> tuple[Speech, DrivingSequence]:
        speech = synthetic_speech([("ɑ", 0.25, 0.3), (consonant, 0.10, 0.1), ("ɑ", 0.25, 0.3), (".", 0.3, 0.0)], 1.5)
        return speech, driver.drive(speech, 36, FPS, seed=0)

    lead = driver.cfg.lip_lead_s
    for bilabial in "mbp":
        speech, seq = speak(bilabial)
        assert seq.mouth_open[frames_in(speech, 36, lead, index=0)].max() > 0.5
        assert seq.mouth_open[frames_in(speech, 36, lead, index=1)].min() < 0.1, bilabial
    speech, seq = speak("n")  # the same sound level, but the tongue closes, not the lips
    assert seq.mouth_open[frames_in(speech, 36, lead, index=1)].min() > 0.15


def test_eee_spreads_and_ooo_rounds_the_lips(driver):
    lead = driver.cfg.lip_lead_s
    speech = synthetic_speech([("i", 0.4, 0.3), ("u", 0.4, 0.3), ("ɑ", 0.4, 0.3), (".", 0.3, 0.0)], 1.8)
    seq = driver.drive(speech, int(1.8 * FPS), FPS, seed=0)
    n = seq.n_frames
    e, o, a = (frames_in(speech, n, lead, index=k) for k in range(3))
    e[np.flatnonzero(e)[:2]] = False  # skip the co-articulated edges
    o[np.flatnonzero(o)[:2]] = False
    exp = seq.exp_delta
    assert exp[e, 20, 1].mean() < exp[o, 20, 1].mean() - 0.005  # spread: corners back and up (20.y -)
    assert exp[o, 14, 1].mean() > exp[e, 14, 1].mean() + 0.01  # round: 14.y + against eee's 14.y -
    assert exp[o, 17, 2].mean() < -0.003  # round: 17.z forward
    assert seq.mouth_open[a].mean() > seq.mouth_open[e].mean() + 0.2  # "ah" opens wider than "ee"
    assert seq.mouth_open[a].mean() > seq.mouth_open[o].mean() + 0.2
    # the lip-corner signals behind those moves travel with the sequence, at frame rate, in [0, 1]
    for name in ("mouth_spread", "mouth_round"):
        signal = getattr(seq, name)
        assert signal.shape == (n,) and signal.dtype == np.float32, name
        assert 0.0 <= signal.min() and signal.max() <= 1.0, name
    assert seq.mouth_spread[e].mean() > 0.6 and seq.mouth_spread[e].mean() > seq.mouth_spread[o].mean() + 0.5
    assert seq.mouth_round[o].mean() > 0.6 and seq.mouth_round[o].mean() > seq.mouth_round[e].mean() + 0.5
    assert seq.mouth_spread[-3:].max() < 0.05 and seq.mouth_round[-3:].max() < 0.05  # silence: neutral corners


def test_hand_built_sequences_default_to_neutral_lip_corners():
    n = 5
    seq = DrivingSequence(FPS, np.zeros((n, 21, 3), np.float32), np.zeros((n, 3), np.float32),
                          np.zeros((n, 3), np.float32), np.ones(n, np.float32), np.zeros(n, np.float32),
                          np.ones(n, np.float32))
    assert np.array_equal(seq.mouth_spread, np.zeros(n)) and np.array_equal(seq.mouth_round, np.zeros(n))
    with pytest.raises(ValueError, match="mouth_round"):
        DrivingSequence(FPS, seq.exp_delta, seq.rotation_delta, seq.translation_delta, seq.scale_factor,
                        seq.mouth_open, seq.eye_open, mouth_spread=np.zeros(n, np.float32),
                        mouth_round=np.zeros(n + 1, np.float32))


# ---- blinks ---------------------------------------------------------------------------------
def test_blinks_come_at_a_natural_rate_and_shape():
    seconds, n_frames = 45, 45 * FPS
    speech = silent_speech(seconds)
    driver = MotionDriver(MotionConfig(blinks_per_minute=15))
    counts, closing, opening = [], 0, 0
    for seed in range(6):
        seq = driver.drive(speech, n_frames, FPS, seed=seed)
        counts.append(count_blinks(seq.eye_open))
        closed = seq.eye_open < 0.5
        starts = np.flatnonzero(closed[1:] & ~closed[:-1]) + 1
        for start in starts[starts + 10 <= n_frames]:  # a blink cut off by the slot's end is not judged
            window = seq.eye_open[max(0, start - 6): start + 10]
            assert window.min() < 0.1  # every blink is seen closed on a frame
            lowest = int(np.argmin(window))
            moving = window < 0.95
            closing += np.count_nonzero(moving[:lowest])
            opening += np.count_nonzero(moving[lowest + 1:])
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], closed.astype(int), [0]]))))[::2]
        assert runs.max() <= 8  # closed for at most a third of a second
        assert np.allclose(seq.exp_delta[seq.eye_open > 0.999][:, [11, 15], 1], 0.0, atol=2e-5)
        blink = np.argmin(seq.eye_open)  # closing moves 11.y and 15.y down the image (+y)
        assert seq.exp_delta[blink, 11, 1] > 0.012 and seq.exp_delta[blink, 15, 1] > 0.012
    print(f"\nblinks in 45 s at 15/min (nominal 11): {counts}")
    assert all(5 <= c <= 20 for c in counts)
    assert 8 <= np.mean(counts) <= 15
    assert closing < opening  # a fast close and a slower reopening
    none = MotionDriver(MotionConfig(blinks_per_minute=0)).drive(speech, n_frames, FPS, seed=0)
    assert count_blinks(none.eye_open) == 0


# ---- bounds ---------------------------------------------------------------------------------
def _fast_chatter(seconds: float) -> Speech:
    rng = np.random.default_rng(3)
    letters = list(VOWELS) + list(DIPHTHONGS) + list("mbpfvszkˈˌ ,")
    chars = "".join(rng.choice(letters, size=int(seconds / 0.025) - 20))
    return synthetic_speech([(chars, 0.025, 1.0)], seconds, lead_in_s=0.1)


def _drawl(seconds: float) -> Speech:
    return synthetic_speech([("ˈɑ", 2.0, 1.0), ("æ", 3.0, 1.0), ("u", 3.0, 1.0), ("m", 1.0, 1.0)] * 4, seconds)


ADVERSARIAL = [
    dict(),
    dict(emotion="manic", expression_preset="excited"),
    dict(emotion="angry", expression_preset="surprised"),
    dict(emotion="sad", expression_sequence=list(EXPRESSION_PRESETS) * 20),
    dict(emotion="excited", expression_sequence=["excited", "surprised", "angry"] * 300),
]


def _assert_bounded(seq: DrivingSequence, n_frames: int) -> None:
    assert seq.n_frames == n_frames and seq.fps == FPS
    for name in ("exp_delta", "rotation_delta", "translation_delta", "scale_factor", "mouth_open", "eye_open"):
        values = getattr(seq, name)
        assert values.dtype == np.float32 and np.isfinite(values).all(), name
    assert np.abs(seq.exp_delta).max() <= EXP_DELTA_BOUND + 1e-6
    assert (np.abs(seq.rotation_delta) <= np.array([10.0, 10.0, 6.0]) + 1e-4).all()
    assert np.abs(np.diff(seq.rotation_delta, axis=0)).max() < 1.5  # smooth: under 1.5° a frame
    assert np.abs(seq.translation_delta).max() <= 0.02 + 1e-6 and (seq.translation_delta[:, 2] == 0).all()
    assert np.abs(seq.scale_factor - 1).max() <= 0.005
    for name in ("mouth_open", "eye_open"):
        assert getattr(seq, name).min() >= 0 and getattr(seq, name).max() <= 1


@pytest.mark.parametrize("speech_kind", ["chatter", "drawl", "real-fast"])
def test_every_delta_stays_bounded_for_adversarial_recipes(speech_kind, voice):
    seconds = 45 if speech_kind != "real-fast" else 6
    speech = {"chatter": _fast_chatter, "drawl": _drawl}.get(speech_kind)
    speech = speech(seconds) if speech else voice.synthesize(
        "Quick! Run, run, run, the portal is closing, Morty!", "rick_c137", 2.0, "manic", n_samples=seconds * SR)
    extreme = MotionDriver(MotionConfig(lip_gain=2.0, blinks_per_minute=40, head_motion_deg=10.0, breathing=True))
    for recipe in ADVERSARIAL:
        _assert_bounded(extreme.drive(speech, seconds * FPS, FPS, seed=11, **recipe), seconds * FPS)
    calm = MotionDriver(MotionConfig()).drive(speech, seconds * FPS, FPS, seed=11)
    _assert_bounded(calm, seconds * FPS)
    # the default driver stays in the band the motion extractor gives real faces
    assert np.percentile(np.abs(calm.exp_delta).max(axis=(1, 2)), 99) <= 0.06


def test_expression_offsets_are_signed_like_the_public_editors():
    smile = expression_track(4, FPS, "smile", ())
    assert smile[0, 14, 1] < 0 and smile[0, 20, 1] < 0 and smile[0, 17, 1] > 0  # corners up and back
    sad = expression_track(4, FPS, "sad", ())
    assert sad[0, 14, 1] > 0  # corners down
    surprised = expression_track(4, FPS, "surprised", ())
    assert surprised[0, 1, 1] > 0 and surprised[0, 2, 1] < 0 and surprised[0, 19, 1] > 0  # brows up, jaw down
    for name in EXPRESSION_PRESETS:
        assert np.abs(expression_track(1, FPS, name, ())).max() <= 0.03, name
    two = expression_track(96, FPS, "neutral", ["smile", "sad"])
    assert np.allclose(two[0], smile[0]) and np.allclose(two[-1], sad[0])
    between = two[44:52, 14, 1]  # the crossfade is gradual and stays between the two
    assert (np.diff(between) >= -1e-12).all() and smile[0, 14, 1] <= between.min() and between.max() <= sad[0, 14, 1]


# ---- determinism ----------------------------------------------------------------------------
def test_same_seed_same_motion_and_seeds_differ_in_blinks_and_head(driver, real_speech):
    first = driver.drive(real_speech, 7 * FPS, FPS, seed=5)
    again = driver.drive(real_speech, 7 * FPS, FPS, seed=5)
    other = driver.drive(real_speech, 7 * FPS, FPS, seed=6)
    for name in ("exp_delta", "rotation_delta", "translation_delta", "scale_factor", "mouth_open", "eye_open"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert np.array_equal(first.mouth_open, other.mouth_open)  # the lips follow the speech alone
    assert not np.array_equal(first.eye_open, other.eye_open)
    assert np.abs(first.rotation_delta - other.rotation_delta).max() > 0.5
    flat = DrivingSequence(FPS, first.exp_delta, first.rotation_delta, first.translation_delta, first.scale_factor,
                           np.zeros_like(first.mouth_open), first.eye_open)
    assert np.isnan(lip_speech_correlation(flat, real_speech))  # a flat signal has no correlation


# ---- motion templates -----------------------------------------------------------------------
TEMPLATE_FRAMES, TEMPLATE_FPS = 40, 25


def _template_angles() -> np.ndarray:
    t = np.arange(TEMPLATE_FRAMES) / TEMPLATE_FPS
    return np.stack([4 + 5 * np.sin(2 * np.pi * 0.6 * t), -3 + 8 * t / 1.6, 2 * np.cos(2 * np.pi * 0.4 * t)], axis=1)


def write_template(path: Path, legacy_names: bool = False) -> dict:
    rng = np.random.default_rng(0)
    angles = _template_angles()
    R = get_rotation_matrix(*(torch.tensor(angles[:, k], dtype=torch.float32) for k in range(3))).numpy()
    base_exp = rng.normal(0, 0.01, size=(21, 3))
    kp = rng.normal(0, 0.3, size=(1, 21, 3)).astype(np.float32)
    motion, eyes, lips = [], [], []
    for i in range(TEMPLATE_FRAMES):
        exp = base_exp.copy()
        closed = 1.0 if 15 <= i <= 18 else 0.0
        exp[[11, 15], 1] += 0.017 * closed  # the driving actor blinks
        exp[1, 1] += 0.004 * np.sin(i / 6)  # and moves a brow
        exp[19, 1] += 0.05 * (i > 5)  # and opens the mouth: ignored, the lips follow the speech
        frame = {"scale": np.array([[1.5 + 0.001 * i]], np.float32), "exp": exp[None].astype(np.float32),
                 "t": np.array([[0.001 * i, -0.0005 * i, 0.3]], np.float32), "kp": kp, "x_s": kp}
        frame["R_d" if legacy_names else "R"] = R[i:i + 1]
        motion.append(frame)
        eyes.append(np.array([[0.35, 0.33]]) * (1 - closed) + 0.01)
        lips.append(np.array([[0.1]]))
    key = "c_d_" if legacy_names else "c_"
    template = {"n_frames": TEMPLATE_FRAMES, "output_fps": TEMPLATE_FPS, "motion": motion,
                f"{key}eyes_lst": eyes, f"{key}lip_lst": lips}
    with path.open("wb") as handle:
        pickle.dump(template, handle)
    return template


def test_rotation_matrices_read_back_as_the_degrees_that_built_them():
    angles = np.random.default_rng(1).uniform(-40, 40, size=(50, 3))
    R = get_rotation_matrix(*(torch.tensor(angles[:, k], dtype=torch.float64) for k in range(3))).numpy()
    assert np.allclose(rotation_to_degrees(R), angles, atol=1e-6)


@pytest.mark.parametrize("legacy_names", [False, True])
def test_a_motion_template_drives_head_and_eyes_while_speech_drives_the_lips(driver, real_speech, tmp_path, legacy_names):
    path = tmp_path / "d0.pkl"
    template = write_template(path, legacy_names)
    n_frames = 3 * FPS  # 3 s from a 1.6 s template: it plays back and forth
    seq = driver.drive(real_speech, n_frames, FPS, seed=2, driving_source=str(path))
    own = driver.drive(real_speech, n_frames, FPS, seed=2)
    assert seq.from_template and not own.from_template

    position = np.arange(n_frames) / FPS * TEMPLATE_FPS
    period = 2 * (TEMPLATE_FRAMES - 1)
    position = np.where(position % period > TEMPLATE_FRAMES - 1, period - position % period, position % period)
    angles = _template_angles()
    expected = np.stack([np.interp(position, np.arange(TEMPLATE_FRAMES), angles[:, k] - angles[0, k]) for k in range(3)], 1)
    assert np.abs(seq.rotation_delta - expected).max() < 1e-3
    assert np.abs(seq.rotation_delta).max() > 4  # the template's head, not the idle sway
    assert np.allclose(seq.scale_factor, 1 + np.interp(position, np.arange(TEMPLATE_FRAMES), np.arange(TEMPLATE_FRAMES) * 0.001) / 1.5, atol=1e-5)
    assert np.allclose(seq.translation_delta[:, 0], 0.001 * position, atol=1e-6)
    assert (seq.translation_delta[:, 2] == 0).all()

    exp = np.stack([f["exp"][0] for f in template["motion"]])
    brow = np.interp(position, np.arange(TEMPLATE_FRAMES), exp[:, 1, 1] - exp[0, 1, 1])
    assert np.allclose(seq.exp_delta[:, 1, 1], brow, atol=1e-6)
    blink_frames = (position >= 15) & (position <= 18)
    assert seq.exp_delta[blink_frames, 11, 1].min() > 0.015 and seq.eye_open[blink_frames].max() < 0.1
    assert seq.eye_open[~((position > 14) & (position < 19))].min() > 0.9
    lips = list(LIP_KEYPOINTS)
    assert np.array_equal(seq.exp_delta[:, lips], own.exp_delta[:, lips])  # speech, not the template's mouth
    assert np.array_equal(seq.mouth_open, own.mouth_open)


def test_a_bad_driving_source_is_a_recipe_error(driver, tmp_path):
    speech = silent_speech(1.0)
    not_pickle = tmp_path / "notes.pkl"
    not_pickle.write_text("not a pickle")
    wrong_shape = tmp_path / "list.pkl"
    wrong_shape.write_bytes(pickle.dumps([1, 2, 3]))
    no_rotation = tmp_path / "norot.pkl"
    no_rotation.write_bytes(pickle.dumps({"motion": [{"exp": np.zeros((1, 21, 3)), "t": np.zeros((1, 3)), "scale": 1.0}]}))
    for path in (tmp_path / "missing.pkl", not_pickle, wrong_shape, no_rotation):
        with pytest.raises(RecipeError) as info:
            driver.drive(speech, FPS, FPS, seed=0, driving_source=path)
        assert info.value.field == "visual_track.driving_source"
        assert str(path.name) in str(info.value)


# ---- recipe errors --------------------------------------------------------------------------
def test_unknown_expressions_and_emotions_name_the_recipe_field(driver):
    speech = silent_speech(1.0)
    with pytest.raises(RecipeError, match="allowed: neutral, smile") as info:
        driver.drive(speech, FPS, FPS, seed=0, expression_preset="smirk")
    assert info.value.field == "visual_track.expression_preset"
    with pytest.raises(RecipeError) as info:
        driver.drive(speech, FPS, FPS, seed=0, expression_sequence=["smile", "grimace"])
    assert info.value.field == "visual_track.expression_sequence[1]" and "grimace" in str(info.value)
    with pytest.raises(RecipeError) as info:
        driver.drive(speech, FPS, FPS, seed=0, emotion="bored")
    assert info.value.field == "audio_track.emotion"
    with pytest.raises(ValueError):
        driver.drive(speech, 0, FPS, seed=0)


# ---- streamed ---------------------------------------------------------------------------------
# Per-frame change allowed where one chunk of speech meets the next (measured: expression 0.0004,
# head 0.32°; anywhere in the slot: 0.042 and 0.44°, a syllable's mouth and the head's sway).
BOUNDARY_STEP = {"exp_delta": 0.01, "rotation_delta": 0.5, "translation_delta": 0.001, "scale_factor": 0.001}


def test_motion_streamed_chunk_by_chunk_is_the_whole_motion_and_continuous_at_the_boundaries(driver, voice):
    """The motion is final frame by frame as each chunk's audio arrives: the same arrays as the whole
    slot's, bit for bit, with no jump in head, eyes, mouth or expression where the chunks meet."""
    n = 9 * FPS
    speech = voice.synthesize("Good evening. The weather turns cold tonight. Stay with us for sports.",
                              "rick_c137", 1.0, "neutral", n_samples=9 * SR, seed=2)
    plan = speech.plan
    whole = driver.drive(speech, n, FPS, seed=4)
    stream = driver.start(plan.timeline, sample_rate=SR, n_samples=len(speech.waveform),
                          speech_samples=plan.speech_samples, chunk_starts=plan.chunk_starts, n_frames=n, fps=FPS,
                          seed=4)
    parts, final = [], [0]
    for k in range(len(plan.chunks)):
        stream.add_audio(speech.waveform[plan.chunk_starts[k]:plan.chunk_starts[k] + plan.chunk_samples(k)])
        final.append(stream.final_frames)
        if final[-1] > final[-2]:
            parts.append(stream.rows(final[-2], final[-1]))
    with pytest.raises(IndexError, match="are final"):
        stream.rows(0, n)  # the silence after the speech is not known yet
    stream.finish_audio()
    parts.append(stream.rows(final[-1], n))
    assert len(parts) == len(plan.chunks) + 1 and 0 < final[1] < final[2] < n
    for name in ("exp_delta", "rotation_delta", "translation_delta", "scale_factor", "mouth_open", "eye_open",
                 "mouth_spread", "mouth_round"):
        assert np.array_equal(np.concatenate([getattr(p, name) for p in parts]), getattr(whole, name)), name
    heard_at = [int(s / SR * FPS) for s in plan.chunk_starts[1:]]  # where the next sentence begins
    for name, bound in BOUNDARY_STEP.items():
        values = getattr(whole, name).reshape(n, -1)
        step = np.abs(np.diff(values, axis=0)).max(axis=1)
        for frame in heard_at + final[1:-1]:
            assert step[max(frame - 2, 0):frame + 2].max() <= bound, (name, frame)
