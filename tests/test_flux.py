"""The actor (FLUX.1-schnell) through the real loader, on the miniature pipeline folder."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import CLIPModel

from vortex.config import FluxConfig
from vortex.contracts.cancel import CancelToken, SlotCancelled
from vortex.errors import ConfigError, VortexInitializationError, WeightsNotFoundError
from vortex.models.flux import FluxActor, _quantization_config
from vortex.models.miniature.clip import L14_TEXT_HIDDEN, save_miniature_clip
from vortex.models.miniature.flux import save_miniature_flux

PROMPT = "a portrait of a scientist with wild grey hair, studio light"
CPU_FP32 = dict(
    source="miniature", precision="fp32", t5_precision="fp32", clip_text_precision="fp32", vae_precision="fp32",
    placement="cpu", text_placement="cpu", max_sequence_length=64,
)


def _cfg(**overrides) -> FluxConfig:
    return FluxConfig(**{**CPU_FP32, **overrides})


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("vortex-cache")


@pytest.fixture(scope="session")
def actor(cache_dir) -> FluxActor:
    return FluxActor.load(_cfg(), "cpu", cache_dir)


class _CallCounter:
    """Counts a module's forward passes through a real forward hook."""

    def __init__(self, module: torch.nn.Module, on_call=None):
        self.calls = 0
        self._on_call = on_call
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.calls += 1
        if self._on_call is not None:
            self._on_call()

    def remove(self) -> None:
        self._handle.remove()


# ---- output ---------------------------------------------------------------------------------
def test_generate_returns_a_uint8_portrait_of_the_configured_size(actor):
    image = actor.generate(PROMPT, seed=7)
    assert image.shape == (512, 512, 3)
    assert image.dtype == np.uint8
    assert image.std() > 0  # a decoded picture, not a constant fill


def test_same_seed_same_image_other_seed_other_image(actor):
    first = actor.generate(PROMPT, seed=11)
    again = actor.generate(PROMPT, seed=11)
    other = actor.generate(PROMPT, seed=12)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_prompt_changes_the_image(actor):
    assert not np.array_equal(actor.generate(PROMPT, seed=3), actor.generate("a quiet harbour at dawn", seed=3))


def test_components_sit_on_their_placements_in_their_precisions(actor):
    modules = actor.modules()
    assert set(modules) == {"transformer", "vae", "text_encoder", "text_encoder_2"}
    for module in modules.values():
        param = next(module.parameters())
        assert param.device.type == "cpu" and param.dtype == torch.float32
        assert not module.training
    assert actor.text_device == "cpu" and actor.device == "cpu"
    assert actor.text_encoder is modules["text_encoder"]


def test_mixed_precisions_generate(cache_dir):
    # bf16 transformer and T5 with an fp32 VAE: latents must be cast for the decode.
    mixed = FluxActor.load(_cfg(precision="bf16", t5_precision="bf16"), "cpu", cache_dir)
    assert next(mixed.modules()["transformer"].parameters()).dtype == torch.bfloat16
    assert next(mixed.modules()["vae"].parameters()).dtype == torch.float32
    image = mixed.generate(PROMPT, seed=1)
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8


# ---- sharing with the verifier ------------------------------------------------------------------
def test_text_encoder_is_the_miniature_clip_l14_text_tower(actor, tmp_path):
    clip = CLIPModel.from_pretrained(save_miniature_clip(tmp_path / "clip-l14", "l14", seed=0))
    expected = clip.text_model.state_dict()
    got = actor.text_encoder.state_dict()
    assert set(got) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=0, msg=name)
    ids = actor.tokenizer(PROMPT).input_ids
    assert ids[0] == actor.tokenizer.bos_token_id and len(ids) > 10


# ---- prompt cache ---------------------------------------------------------------------------
def test_repeated_prompt_skips_the_text_encoders(cache_dir):
    fresh = FluxActor.load(_cfg(), "cpu", cache_dir)
    t5 = _CallCounter(fresh.modules()["text_encoder_2"])
    clip_text = _CallCounter(fresh.modules()["text_encoder"])
    try:
        first = fresh.generate(PROMPT, seed=5)
        second = fresh.generate(PROMPT, seed=5)
        assert (t5.calls, clip_text.calls) == (1, 1)
        np.testing.assert_array_equal(first, second)
        fresh.encode_prompt("someone else")
        assert (t5.calls, clip_text.calls) == (2, 2)
    finally:
        t5.remove()
        clip_text.remove()
    info = fresh.prompt_cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 2, 2)


def test_prompt_cache_evicts_least_recently_used(cache_dir):
    small = FluxActor.load(_cfg(prompt_cache_size=1), "cpu", cache_dir)
    t5 = _CallCounter(small.modules()["text_encoder_2"])
    try:
        for prompt in ("a", "a", "b", "a"):
            small.encode_prompt(prompt)
    finally:
        t5.remove()
    assert t5.calls == 3


def test_cached_embeddings_have_flux_shapes(actor):
    prompt_embeds, pooled = actor.encode_prompt(PROMPT)
    assert prompt_embeds.shape == (1, 64, 32)  # (batch, max_sequence_length, T5 width)
    assert pooled.shape == (1, L14_TEXT_HIDDEN)


# ---- cancellation ---------------------------------------------------------------------------
def test_cancelled_token_stops_before_any_step(actor):
    token = CancelToken()
    token.cancel("deadline")
    steps = _CallCounter(actor.modules()["transformer"])
    try:
        with pytest.raises(SlotCancelled, match="deadline"):
            actor.generate(PROMPT, seed=1, cancel=token)
    finally:
        steps.remove()
    assert steps.calls == 0


def test_cancel_during_denoising_stops_within_one_step(actor):
    token = CancelToken()
    # The slot is cancelled while the first denoising step runs.
    steps = _CallCounter(actor.modules()["transformer"], on_call=lambda: token.cancel("slot aborted"))
    try:
        with pytest.raises(SlotCancelled, match="slot aborted"):
            actor.generate(PROMPT, seed=1, cancel=token)
    finally:
        steps.remove()
    assert steps.calls == 1  # of the 4 steps, only the one already running


# ---- configuration and weights errors ---------------------------------------------------------
def test_nf4_transformer_on_cpu_is_a_config_error(cache_dir):
    with pytest.raises(ConfigError, match=r"models\.flux\.precision: nf4 needs a CUDA placement"):
        FluxActor.load(_cfg(precision="nf4"), "cpu", cache_dir)


def test_nf4_t5_on_host_is_a_config_error(cache_dir):
    # The engine has a GPU but T5 is placed on the host, as in the 12 GB profile.
    with pytest.raises(ConfigError, match=r"models\.flux\.t5_precision: nf4 .*text_placement"):
        FluxActor.load(_cfg(t5_precision="nf4", placement="cuda", text_placement="cpu"), "cuda:0", cache_dir)


def test_int8_vae_is_a_config_error(cache_dir):
    with pytest.raises(ConfigError, match=r"models\.flux\.vae_precision"):
        FluxActor.load(_cfg(vae_precision="int8"), "cpu", cache_dir)


def test_nf4_without_bitsandbytes_says_how_to_install_it(cache_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as on a machine without it: import fails
    with pytest.raises(VortexInitializationError, match=r"vortex\[cuda\]"):
        FluxActor.load(_cfg(precision="nf4", placement="cuda"), "cuda:0", cache_dir)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_placement_without_cuda_is_an_initialization_error(cache_dir):
    with pytest.raises(VortexInitializationError, match="CUDA"):
        FluxActor.load(_cfg(placement="cuda"), "cuda:0", cache_dir)


def test_nf4_maps_to_bitsandbytes_for_transformer_and_t5():
    pytest.importorskip("bitsandbytes")
    from diffusers import BitsAndBytesConfig as DiffusersBnb
    from transformers import BitsAndBytesConfig as TransformersBnb

    mapping = _quantization_config(_cfg(precision="nf4", t5_precision="nf4")).quant_mapping
    assert set(mapping) == {"transformer", "text_encoder_2"}
    assert isinstance(mapping["transformer"], DiffusersBnb)
    assert isinstance(mapping["text_encoder_2"], TransformersBnb)
    for config in mapping.values():
        assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
        assert config.bnb_4bit_use_double_quant and config.bnb_4bit_compute_dtype == torch.bfloat16
    assert _quantization_config(_cfg()) is None


def test_repo_id_absent_from_the_hf_cache(cache_dir):
    with pytest.raises(WeightsNotFoundError, match="not in the Hugging Face cache"):
        FluxActor.load(_cfg(source="vortex-tests/flux-absent"), "cpu", cache_dir)


def test_empty_folder_names_the_missing_model_index(cache_dir, tmp_path):
    with pytest.raises(WeightsNotFoundError, match="model_index.json"):
        FluxActor.load(_cfg(source=str(tmp_path)), "cpu", cache_dir)


def test_broken_component_is_an_initialization_error(actor, cache_dir, tmp_path):
    folder = Path(shutil.copytree(cache_dir / "miniature" / "flux", tmp_path / "flux"))
    (folder / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(VortexInitializationError, match="cannot load a FluxPipeline"):
        FluxActor.load(_cfg(source=str(folder)), "cpu", cache_dir)


# ---- the miniature itself ---------------------------------------------------------------------
def test_miniature_keeps_schnells_shape_and_is_reproducible(actor, cache_dir, tmp_path):
    first = cache_dir / "miniature" / "flux"  # built by the loader for the `actor` fixture
    second = save_miniature_flux(tmp_path / "again", seed=0)
    size = sum(f.stat().st_size for f in first.rglob("*") if f.is_file())
    assert size < 5_000_000
    for weights in first.rglob("*.safetensors"):
        twin = load_file(second / weights.relative_to(first))
        for name, tensor in load_file(weights).items():
            assert torch.equal(tensor, twin[name]), f"{weights.parent.name}/{name}"

    scheduler = json.loads((first / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "FlowMatchEulerDiscreteScheduler"
    assert scheduler["shift"] == 1.0 and scheduler["use_dynamic_shifting"] is False
    transformer = json.loads((first / "transformer" / "config.json").read_text())
    assert transformer["guidance_embeds"] is False
    assert transformer["pooled_projection_dim"] == L14_TEXT_HIDDEN
    vae = json.loads((first / "vae" / "config.json").read_text())
    assert vae["latent_channels"] == 16 and len(vae["block_out_channels"]) == 4
