"""Programme loudness (vortex.program.loudness): the BS.1770-4 meter against pyloudnorm and the
standard's reference tones, the true-peak limiter against the 4x-oversampled meter, the streamed
normalisation, the config's range, and real slots measured with ffmpeg's own ebur128 meter."""

import json
import math
import re
import subprocess

import numpy as np
import pyloudnorm
import pytest
from support.engines import engine_fixture
from support.recipes import short_recipe

from vortex.cli import main
from vortex.config import ConfigFieldError, LoudnessConfig, VortexConfig
from vortex.contracts.requests import SlotRequest
from vortex.program import loudness as L
from vortex.program.spec import parse_program
from vortex.recipe import Recipe
from vortex.service.metrics import ServiceMetrics

SR = 24000
SCRIPT = "Good evening. The comet was seen over the harbor tonight."


def tone(freq, dbfs, seconds, sr=SR, phase=0.0):
    t = np.arange(round(seconds * sr)) / sr
    return (10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t + phase)).astype(np.float64)


def speechlike(seconds, level_db=-20.0, seed=0):
    """Noise bursts shaped like syllables with pauses: a gated meter has something to gate."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SR)
    envelope = np.repeat(rng.random(n // 2400 + 1) > 0.35, 2400)[:n] * (0.5 + rng.random(n))
    return rng.standard_normal(n) * envelope * 10 ** (level_db / 20)


def ebur128(path):
    """ffmpeg's own meter on a file's audio: (integrated LUFS, true peak dBTP) from its summary."""
    err = subprocess.run(["ffmpeg", "-nostats", "-hide_banner", "-i", str(path), "-filter_complex",
                          "[0:a]ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    summary = err[err.rindex("Summary:"):]
    return (float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1)),
            float(re.search(r"Peak:\s+(-?[\d.inf]+) dBFS", summary).group(1)))


# ---- the meter -------------------------------------------------------------------------------------
@pytest.mark.parametrize("freq, dbfs, expected", [(997, -20.0, -23.0), (1000, 0.0, -3.01)])
def test_reference_tones_at_48k(freq, dbfs, expected):
    # BS.1770-4 (and EBU Tech 3341): a 997 Hz sine at -20 dBFS reads -23.0 LUFS; a 1 kHz one at 0 dBFS, -3.01.
    x = tone(freq, dbfs, 5.0, sr=48000)
    assert L.integrated_lufs(x, 48000) == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("sr", [24000, 48000])
def test_meter_agrees_with_pyloudnorm(sr):
    # pyloudnorm's high-pass numerator carries a 0.995 gain: at 48 kHz it reads 0.0435 LU
    # (20 log10 0.995) low; at 24 kHz its shelf, derived otherwise, adds another 0.04.
    for seed, level in ((1, -18.0), (2, -30.0)):
        x = speechlike(6.0, level, seed)
        if sr != SR:
            x = np.repeat(x, sr // SR)
        ours, theirs = L.integrated_lufs(x, sr), pyloudnorm.Meter(sr).integrated_loudness(x)
        assert 0.0 < ours - theirs < 0.1
        if sr == 48000:
            assert ours - theirs == pytest.approx(-20 * math.log10(0.995), abs=0.01)


def test_running_meter_in_pieces_reads_as_one_pass_and_silence_is_gated_out():
    x = speechlike(7.0, -21.0, 3)
    meter = L.LoudnessMeter(SR)
    for piece in np.array_split(x, 13):  # uneven pieces: the K-weighting runs on across them
        meter.add(piece)
    assert meter.integrated() == pytest.approx(L.integrated_lufs(x, SR), abs=1e-9)
    padded = np.concatenate([np.zeros(3 * SR), x, np.zeros(5 * SR)])  # pauses and the slot's tail
    # Silence is gated out; only the 400 ms blocks that straddle its edges still count.
    assert L.integrated_lufs(padded, SR) == pytest.approx(L.integrated_lufs(x, SR), abs=0.2)
    assert L.integrated_lufs(np.zeros(2 * SR), SR) == -math.inf


def test_true_peak_finds_the_peak_between_samples():
    # A quarter-rate sine at 45 degrees: every sample at 0.707 (-3.01 dBFS), the wave itself at 0 dBTP.
    x = tone(SR / 4, 0.0, 1.0, phase=np.pi / 4)
    fade = np.sin(np.linspace(0, np.pi / 2, 2400)) ** 2  # 100 ms fades: no edge to ring at
    x[:2400] *= fade
    x[-2400:] *= fade[::-1]
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    assert L.true_peak_dbtp(x) == pytest.approx(0.0, abs=0.05)
    assert L.true_peak_dbtp(tone(1000, -6.0, 1.0)) == pytest.approx(-6.0, abs=0.02)


# ---- the limiter and the streamed normalisation ------------------------------------------------------
@pytest.mark.parametrize("ceiling", [-1.0, -2.0])
def test_limiter_never_exceeds_the_ceiling_and_keeps_every_sample(ceiling):
    rng = np.random.default_rng(4)
    hot = np.concatenate([rng.standard_normal(SR) * 0.6, tone(SR / 4, 6.0, 0.5, phase=np.pi / 4),
                          speechlike(2.0, -8.0, 5), tone(300, -30.0, 1.0)])
    limiter = L.TruePeakLimiter(SR, ceiling)
    pieces = [limiter.process(p) for p in np.array_split(hot, 9)]
    out = np.concatenate(pieces + [limiter.finish()])
    assert out.size == hot.size and pieces[0].size == np.array_split(hot, 9)[0].size - limiter.delay
    assert L.true_peak_dbtp(out) <= ceiling
    # Where nothing comes near the ceiling the audio passes untouched, in place (no delay left in it).
    quiet = slice(hot.size - SR + 2000, hot.size - 2000)
    np.testing.assert_allclose(out[quiet], hot[quiet], atol=1e-6)


def test_stream_normaliser_lands_on_target_sample_for_sample():
    sentences = [speechlike(s, lvl, i) for i, (s, lvl) in enumerate([(1.7, -17.0), (2.3, -20.0), (0.3, -19.0),
                                                                    (3.1, -21.0)])]
    n = L.StreamNormalizer(SR, -24.0, -1.0)
    out = [n.process(s) for s in sentences] + [n.process(np.zeros(SR), speech=False), n.finish()]
    out = np.concatenate(out)
    assert out.size == sum(s.size for s in sentences) + SR
    assert L.integrated_lufs(out, SR) == pytest.approx(-24.0, abs=0.2)
    assert L.true_peak_dbtp(out) <= -1.0
    assert len(n.gains_db) == 4 and np.all(out[-SR // 2:] == 0)  # the silence after the speech stays silent
    whole = L.normalize(np.concatenate(sentences), SR, -24.0, -1.0)
    assert L.integrated_lufs(whole, SR) == pytest.approx(-24.0, abs=0.05)


def test_silence_stays_silence():
    assert not np.any(L.normalize(np.zeros(3 * SR, np.float32), SR))
    n = L.StreamNormalizer(SR)
    assert not np.any(np.concatenate([n.process(np.zeros(SR)), n.finish()]))
    assert L.report(np.zeros(SR), SR, -23.0) == {"integrated_lufs": None, "true_peak_dbtp": None, "target_lufs": -23.0}


# ---- settings -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [("target_lufs", -5), ("target_lufs", -40), ("true_peak_dbtp", 1.0)])
def test_a_loudness_outside_the_range_is_a_config_error_naming_the_field(tmp_path, capsys, field, value):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"extends: cpu-preview\nloudness: {{{field}: {value}}}\n")
    with pytest.raises(ConfigFieldError) as err:
        VortexConfig.load(path=cfg)
    assert err.value.field == f"loudness.{field}" and ("-31 to -10 LUFS" in str(err.value) or "dBTP" in str(err.value))
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(short_recipe(1, 1, duration=2.0)))
    assert main(["generate", str(recipe), "--config", str(cfg), "-o", str(tmp_path / "x.mp4")]) == 2
    assert f"loudness.{field}" in capsys.readouterr().err
    assert not list(tmp_path.glob("x.*"))


def test_defaults_and_the_channel_override():
    assert VortexConfig.load().loudness == LoudnessConfig(target_lufs=-23.0, true_peak_dbtp=-1.0)
    assert VortexConfig.load().with_changes({"loudness": {"target_lufs": -24}}).loudness.target_lufs == -24.0
    assert L.channel_target(None) is None  # no program block: the engine's config.loudness
    target = L.channel_target(parse_program({"loudness": {"target_lufs": -24, "true_peak_dbtp": -2}}))
    assert target == LoudnessConfig(target_lufs=-24.0, true_peak_dbtp=-2.0)


def test_a_remote_engine_gets_the_target_over_the_wire(tmp_path):
    from vortex.serving.wire import decode_request, encode_request

    request = SlotRequest(recipe=Recipe.from_dict(short_recipe(1, 1)), loudness=LoudnessConfig(target_lufs=-24))
    payload = encode_request(request, slot_id=1, seed=1, deadline_s=10.0)
    assert decode_request(payload, tmp_path).loudness == LoudnessConfig(target_lufs=-24.0)
    payload = encode_request(SlotRequest(recipe=request.recipe), slot_id=1, seed=1, deadline_s=10.0)
    assert decode_request(payload, tmp_path).loudness is None


def test_metrics_show_the_last_figures():
    m = ServiceMetrics(lambda: {})
    m.observe_loudness("job", {"integrated_lufs": -23.2, "true_peak_dbtp": -3.1, "target_lufs": -23.0})
    m.observe_loudness("channel:news", {"integrated_lufs": None, "true_peak_dbtp": None, "target_lufs": -23.0})
    text = m.render().decode()
    assert 'vortex_loudness_integrated_lufs_last{source="job"} -23.2' in text
    assert 'vortex_loudness_true_peak_dbtp_last{source="job"} -3.1' in text
    assert 'vortex_loudness_deviation_lu_count{source="job"} 1.0' in text
    assert 'source="channel:news"' not in text  # a silent slot has no figure to show


# ---- real slots, measured with ffmpeg ---------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_slot(tmp_path_factory):
    out = tmp_path_factory.mktemp("loud") / "slot.mp4"
    recipe = out.with_name("r.json")
    recipe.write_text(json.dumps(short_recipe(1, 7, duration=4.0, script=SCRIPT)))
    assert main(["generate", str(recipe), "-o", str(out)]) == 0
    return out


def test_a_generated_slot_is_on_target_by_ffmpeg(cli_slot):
    lufs, peak = ebur128(cli_slot)
    assert abs(lufs + 23.0) <= 1.0 and peak <= -1.0
    meta = json.loads(cli_slot.with_suffix(".json").read_text())
    figures = meta["loudness"]
    assert figures["target_lufs"] == -23.0 and figures["integrated_lufs"] == pytest.approx(lufs, abs=0.3)
    assert figures["true_peak_dbtp"] <= -1.0 and len(figures["chunk_gain_db"]) == len(meta["chunks"])
    assert meta["n_samples"] == 4 * SR


engine = engine_fixture("cpu-preview")


def test_a_request_target_overrides_the_config_and_a_hot_one_is_limited(engine, tmp_path):
    """The channel's path (program.loudness -> SlotRequest.loudness): -24 is one setting away; at
    -12 the ceiling wins over the target, the sidecar says so, and AAC stays under -1 dBTP."""
    recipe = Recipe.from_dict(short_recipe(1, 7, duration=4.0, script=SCRIPT))
    for target in (-24.0, -12.0):
        out = tmp_path / f"t{-target:g}.mp4"
        result = engine.run(SlotRequest(recipe=recipe, output=out, loudness=LoudnessConfig(target_lufs=target)))
        assert result.success, result.error_msg
        lufs, peak = ebur128(out)
        assert peak <= -1.0 and result.loudness["true_peak_dbtp"] <= -1.0
        if target == -24.0:
            assert abs(lufs - target) <= 1.0 and not any("loudness" in w for w in result.warnings)
        else:  # speech peaks ~20 dB over its loudness: a limiter alone cannot make -12 under -1 dBTP
            assert lufs < target - 1.0 and result.loudness["limited_samples"] > 0
            assert any(w.startswith("loudness:") for w in result.warnings)
        assert json.loads(out.with_suffix(".json").read_text())["loudness"]["target_lufs"] == target


def test_a_channel_airs_its_program_loudness(tmp_path):
    """Two slots of a channel whose program asks -24 LUFS: the aired HLS stream (ffmpeg reading the
    playlist) and the decoded PCM are on it, under the ceiling, and channel.json keeps the figures."""
    from streams import decode

    from vortex.channel.cli import main as channel_main

    folder = tmp_path / "def"
    folder.mkdir()
    for name, voice, seed in (("a.json", "anchor", 5), ("b.json", "rick_c137", 9)):
        (folder / name).write_text(json.dumps(short_recipe(1, seed, duration=3.0, script=SCRIPT, voice=voice)))
    (folder / "channel.yaml").write_text("name: loud\nprogram: {loudness: {target_lufs: -24, true_peak_dbtp: -2}}\n"
                                         "slots:\n  - recipe: a.json\n  - recipe: b.json\n")
    out = tmp_path / "out"
    assert channel_main(["run", str(folder / "channel.yaml"), "--out", str(out), "--pace", "asap"]) == 0
    state = json.loads((out / "channel.json").read_text())
    assert [s["decision"] for s in state["slots"]] == ["aired", "aired"]
    for s in state["slots"]:
        figures = s["attempts"][-1]["loudness"]
        assert figures["target_lufs"] == -24.0 and abs(figures["integrated_lufs"] + 24.0) <= 0.5
    lufs, peak = ebur128(out / "index.m3u8")
    assert abs(lufs + 24.0) <= 1.0 and peak <= -2.0
    _, _, pcm, priming, _ = decode(out)
    aired = pcm[priming:].astype(np.float64)
    assert L.integrated_lufs(aired, SR) == pytest.approx(lufs, abs=0.3) and L.true_peak_dbtp(aired) <= -2.0
