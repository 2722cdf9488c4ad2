"""Profiles and config files: shipped profiles load, bad settings name their field."""

import pytest

from vortex.config import DEFAULT_PROFILE, VortexConfig, available_profiles
from vortex.errors import ConfigError


def test_shipped_profiles():
    assert set(available_profiles()) >= {"rtx3060-12gb", "24gb", "h100", "cpu-miniature", "cpu-preview"}
    assert DEFAULT_PROFILE == "cpu-preview"
    for name in available_profiles():
        cfg = VortexConfig.load(profile=name)
        assert cfg.profile == name and cfg.description


def test_rtx3060_keeps_the_seed_limits_and_t5_on_the_host():
    cfg = VortexConfig.load(profile="rtx3060-12gb")
    assert (cfg.vram.soft_limit_gb, cfg.vram.hard_limit_gb) == (11.0, 11.5)
    assert cfg.models.flux.precision == "nf4" and cfg.models.flux.text_placement == "cpu"
    assert cfg.models.kokoro.precision == "fp32" and cfg.models.clip_b.precision == "int8"
    assert cfg.buffers.video.max_frames == 1080 and cfg.buffers.audio.samples == 1_080_000


def test_default_profile_names_its_stand_ins():
    cfg = VortexConfig.load()
    assert cfg.uses_stand_ins and "STAND-IN" in cfg.description
    assert cfg.models.kokoro.backend == "onnx" and cfg.verification.enforce is False
    assert cfg.pipeline.animation == "preview" and cfg.pipeline.actor == "astronaut" and cfg.faces.framing
    assert cfg.verification.speech_check


def test_extends_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("extends: rtx3060-12gb\nprofile: mine\nvram: {hard_limit_gb: 11.8}\n")
    cfg = VortexConfig.load(path=path)
    assert cfg.vram.hard_limit_gb == 11.8 and cfg.vram.soft_limit_gb == 11.0
    assert cfg.models.flux.precision == "nf4"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("vram: {soft_limit_gb: 12, hard_limit_gb: 11.5}", "soft_limit_gb"),
        ("models: {flux: {precision: int4}}", "models.flux.precision"),
        ("models: {flux: {placemnt: cuda}}", "models.flux.placemnt"),
        ("verification: {weight_b: 0.5, weight_l: 0.6}", "weight_b + weight_l"),
        ("extends: nosuch", "unknown profile 'nosuch'"),
        ("pipeline: {voice_calls: 2}", "'pipeline.voice_calls': more than 1 needs models.kokoro.placement: cpu"),
        ("pipeline: {voice_calls: 0}", "pipeline.voice_calls"),
        ("[1, 2]", "must be a YAML mapping"),
    ],
)
def test_bad_config_names_the_field(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle.replace("+", r"\+")):
        VortexConfig.load(path=path)


def test_unknown_profile_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="rtx3060-12gb"):
        VortexConfig.load(profile="rtx9090")


def test_placement_rule():
    gpu, cpu = VortexConfig.load(profile="rtx3060-12gb"), VortexConfig.load()
    assert gpu.placement_device("cuda") == "cuda:0" and gpu.placement_device("cpu") == "cpu"
    assert cpu.placement_device("cuda") == "cpu"


def test_stand_ins_are_named_by_component():
    assert VortexConfig.load().stand_ins == ["actor (astronaut portrait)", "clip_b", "clip_l",
                                             "animation (preview mesh warp)"]
    cfg = VortexConfig.load(profile="cpu-miniature")
    assert cfg.stand_ins == ["flux", "clip_b", "clip_l", "liveportrait"]
    still = cfg.model_copy(update={"pipeline": cfg.pipeline.model_copy(update={"animation": "still"})})
    assert still.stand_ins == ["flux", "clip_b", "clip_l"]
    assert VortexConfig.load(profile="rtx3060-12gb").stand_ins == []
