"""Every GPU profile's precisions end to end on the CPU (vortex.cpu_check): the engine built by the
real loaders from the profile's config with the device forced to cpu, miniature weights, NF4 made
bf16 (its compute dtype), each loaded module's dtype asserted against what the *shipped* profile
asks for, and a 1 s slot written to a real MP4 with exact frame and sample counts.

So a dtype or device mistake in a loader fails here, not on the first GPU. What a CPU cannot
check: NF4 and bitsandbytes LLM.int8 (CUDA layers; CLIP int8 runs torch's dynamic int8 on the CPU),
and the speed: fp16 convolutions have no oneDNN kernel on a CPU without AVX512-FP16 and run on
torch's reference kernels (`aten::slow_conv3d_forward`, ~4 CPU s a miniature frame against 0.1 in
bf16), which is why the slot is 4 frames (1 s at 4 fps).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from vortex.config import VortexConfig, available_profiles
from vortex.cpu_check import FLUX_CPU_PRECISION, WHISPER_CPU_COMPUTE, as_cpu_check
from vortex.engine.factory import build_engine
from vortex.media import probe_mp4

GPU_PROFILES = [name for name in available_profiles() if VortexConfig.load(name).device.is_cuda]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
FPS, SECONDS = 4, 1.0  # 4 frames: fp16 LivePortrait costs ~4 CPU s a frame on reference kernels


def test_every_gpu_profile_is_covered():
    assert set(GPU_PROFILES) >= {"rtx3060-12gb", "24gb", "h100"}


@pytest.mark.parametrize("name", GPU_PROFILES)
def test_only_what_a_cpu_cannot_run_is_changed_and_each_change_is_named(name):
    base = VortexConfig.load(name)
    check = as_cpu_check(base)
    print(check.describe())
    cfg = check.config
    assert cfg.device.name == "cpu" and cfg.extends == name and cfg.profile == f"{name}-cpu-check"
    pairs = [(f"models.flux.{f}", getattr(base.models.flux, f), getattr(cfg.models.flux, f))
             for f in ("precision", "t5_precision", "clip_text_precision", "vae_precision")]
    pairs += [(f"models.{c}.precision", getattr(base.models, c).precision, getattr(cfg.models, c).precision)
              for c in ("kokoro", "clip_b", "clip_l", "liveportrait")]
    pairs.append(("models.whisper.compute_type", base.models.whisper.compute_type, cfg.models.whisper.compute_type))
    for field, before, after in pairs:
        named = [s for s in check.substitutions if s.startswith(f"{field}: ")]
        if before == after:
            assert not named, field
        else:  # only NF4/int8 Flux and CUDA-only CTranslate2 types change, and the change says so
            assert (after == FLUX_CPU_PRECISION.get(before) or after == WHISPER_CPU_COMPUTE.get(before)), field
            assert len(named) == 1 and named[0].startswith(f"{field}: {before} -> {after} ("), field
    if base.models.flux.precision == "nf4":
        assert cfg.models.flux.precision == "bf16"


@pytest.fixture(scope="module", params=GPU_PROFILES)
def engine(request):
    base = VortexConfig.load(request.param)
    check = as_cpu_check(base)
    print(check.describe())
    pipe = build_engine(check.config)
    yield base, pipe
    pipe.close()


def _dtypes(module: nn.Module) -> set[torch.dtype]:
    return {p.dtype for p in module.parameters()}


def _cpu_dtype(precision: str) -> torch.dtype:
    return DTYPES[FLUX_CPU_PRECISION.get(precision, precision)]


def test_loaded_modules_have_the_profiles_dtypes_on_the_cpu(engine):
    base, pipe = engine
    m, registry = base.models, pipe.registry
    for name in registry.names:
        for part, module in getattr(registry.get_model(name), "modules", dict)().items():
            assert {p.device.type for p in module.parameters()} <= {"cpu"}, f"{name}.{part}"

    flux = registry.get_model("flux").modules()
    wanted = {"transformer": m.flux.precision, "vae": m.flux.vae_precision,
              "text_encoder": m.flux.clip_text_precision, "text_encoder_2": m.flux.t5_precision}
    for part, precision in wanted.items():
        assert _dtypes(flux[part]) == {_cpu_dtype(precision)}, f"flux.{part} ({precision})"

    assert _dtypes(registry.get_model("kokoro").modules()["kokoro"]) == {DTYPES[m.kokoro.precision]}

    clip = registry.get_model("clip").modules()
    for name, cfg in (("clip_b", m.clip_b), ("clip_l", m.clip_l)):
        towers = {part: mod for part, mod in clip.items() if part.startswith(name) and part != "clip_l_text_projection"}
        assert f"{name}_vision" in towers
        for part, tower in towers.items():
            if cfg.precision == "int8":  # torch dynamic int8: every Linear swapped, the rest float32
                quantized = [q for q in tower.modules() if isinstance(q, torch.ao.nn.quantized.dynamic.Linear)]
                assert quantized and all(q.weight().dtype == torch.qint8 for q in quantized), part
                assert not any(type(q) is nn.Linear for q in tower.modules()), part
                assert _dtypes(tower) == {torch.float32}, part
            else:
                assert _dtypes(tower) == {DTYPES[cfg.precision]}, f"{part} ({cfg.precision})"
    if m.share_clip_l_text_with_flux:  # L/14 reads Flux's text tower and keeps only its projection, in fp32
        assert "clip_l_text" not in clip and _dtypes(clip["clip_l_text_projection"]) == {torch.float32}

    lp = registry.get_model("liveportrait").modules()
    for part in ("F", "M", "W", "G"):
        assert _dtypes(lp[part]) == {DTYPES[m.liveportrait.precision]}, f"liveportrait.{part}"
    for part in ("stitching", "retarget_eye", "retarget_lip"):  # the keypoint MLPs stay fp32 (public inference)
        assert _dtypes(lp[part]) == {torch.float32}, f"liveportrait.{part}"

    whisper = registry.get_model("whisper")
    wanted_ct2 = WHISPER_CPU_COMPUTE.get(m.whisper.compute_type, m.whisper.compute_type)
    assert whisper.device == "cpu" and whisper._model.model.compute_type == wanted_ct2


def test_a_one_second_slot_is_a_real_mp4_with_exact_counts(engine, tmp_path):
    base, pipe = engine
    recipe = {"slot_params": {"slot_id": 9, "duration_sec": SECONDS, "fps": FPS, "seed": 5},
              "audio_track": {"script": "Hello there.", "voice_id": "rick_c137"},
              "visual_track": {"prompt": "studio portrait of a news anchor"}}
    out = tmp_path / "slot.mp4"
    result = pipe.generate_slot_sync(recipe, output=out, keep_frames=True)
    assert result.success, result.error_msg
    n_frames, n_samples = round(SECONDS * FPS), round(SECONDS * 24000)
    assert result.animation == "liveportrait" and result.video_frames.shape == (n_frames, 512, 512, 3)
    assert float(np.std(result.video_frames.astype(np.float32))) > 1.0  # rendered, not a constant
    assert "speech_check" in result.timings_ms  # tiny.en heard the slot at the CPU stand-in compute type
    info = probe_mp4(out)
    assert (info.n_frames, info.n_audio_samples, info.width, info.height) == (n_frames, n_samples, 512, 512)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["profile"] == f"{base.profile}-cpu-check"
