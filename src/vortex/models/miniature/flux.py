"""Miniature FLUX.1-schnell: a diffusers `FluxPipeline` folder with seeded random weights.

Every component is the real class in its real on-disk layout (model_index.json, scheduler/,
text_encoder/ + tokenizer/, text_encoder_2/ + tokenizer_2/, transformer/, vae/), so the real
loader reads it. Only the widths shrink. Two things are kept on purpose:

- `text_encoder` is the text tower of the miniature CLIP ViT-L/14 built with the same seed, as
  FLUX.1's text_encoder is openai/clip-vit-large-patch14's: the verifier can share it exactly.
- The VAE downsamples by 8 into 16 latent channels and the transformer takes 2x2-packed latents
  (64 channels) without guidance embeddings, as schnell does, so 512x512 runs the real shapes.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from transformers import CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast
from transformers.utils import logging as transformers_logging

from .clip import L14_TEXT_HIDDEN, save_miniature_clip

T5_HIDDEN = 32  # the transformer's joint_attention_dim must match it
LATENT_CHANNELS = 16

# FLUX.1-schnell's scheduler_config.json: no resolution-dependent shift (dev uses shift 3 + dynamic).
SCHNELL_SCHEDULER = dict(
    num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False,
    base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096,
)
# FLUX.1's VAE latent statistics (vae/config.json).
FLUX_VAE_SCALING_FACTOR = 0.3611
FLUX_VAE_SHIFT_FACTOR = 0.1159


def t5_tokenizer() -> T5TokenizerFast:
    """A T5 Unigram tokenizer over printable characters, built in memory (no hub, no spiece.model).

    Same layout as T5's: <pad>=0, </s>=1, <unk>=2, then pieces; word starts carry the '▁' marker.
    """
    chars = sorted(set(string.printable) - set(string.whitespace))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + c, -2.5) for c in chars] + [(c, -3.0) for c in chars]
    return T5TokenizerFast(vocab=vocab, extra_ids=0)


def _t5_encoder(vocab_size: int) -> T5EncoderModel:
    # T5 v1.1 shape (gated GELU, untied embeddings), as FLUX.1's T5-XXL encoder.
    config = T5Config(
        vocab_size=vocab_size, d_model=T5_HIDDEN, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
        relative_attention_num_buckets=32, relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
    )
    return T5EncoderModel(config).eval()


def _transformer() -> FluxTransformer2DModel:
    return FluxTransformer2DModel(
        patch_size=1, in_channels=4 * LATENT_CHANNELS, num_layers=1, num_single_layers=1,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=T5_HIDDEN,
        pooled_projection_dim=L14_TEXT_HIDDEN, guidance_embeds=False, axes_dims_rope=(4, 6, 6),
    ).eval()


def _vae() -> AutoencoderKL:
    # Four blocks = three 2x downsamplings: the 8x factor of FLUX.1's VAE.
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=8, sample_size=512,
        scaling_factor=FLUX_VAE_SCALING_FACTOR, shift_factor=FLUX_VAE_SHIFT_FACTOR,
        use_quant_conv=False, use_post_quant_conv=False,
    ).eval()


def _clip_l_text_tower(seed: int) -> tuple[CLIPTextModel, CLIPTokenizer]:
    """The text tower and tokenizer of the miniature CLIP ViT-L/14 with this seed."""
    with tempfile.TemporaryDirectory(prefix="vortex-clip-l14-") as tmp:
        clip_dir = save_miniature_clip(tmp, "l14", seed)
        # The vision weights in the folder are meant to be left out: silence the load report.
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()
        try:
            text_encoder = CLIPTextModel.from_pretrained(clip_dir).eval()
        finally:
            transformers_logging.set_verbosity(verbosity)
        return text_encoder, CLIPTokenizer.from_pretrained(clip_dir)


def save_miniature_flux(path: str | Path, seed: int = 0) -> Path:
    """Write a miniature FLUX.1-schnell pipeline folder to `path` and return it."""
    path = Path(path)
    text_encoder, tokenizer = _clip_l_text_tower(seed)
    tokenizer_2 = t5_tokenizer()
    # One seed per module, so that changing one module's shape leaves the others' weights alone;
    # fork_rng leaves the caller's global RNG as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        text_encoder_2 = _t5_encoder(len(tokenizer_2))
        torch.manual_seed(seed + 2)
        transformer = _transformer()
        torch.manual_seed(seed + 3)
        vae = _vae()
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHNELL_SCHEDULER),
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer,
    )
    pipe.save_pretrained(path)
    return path
