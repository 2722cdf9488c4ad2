"""Activation peaks per activity: documented estimates, derived from the architectures' own configs.

These are the transient tensors of one forward pass, not weights. No GPU is needed to compute
them, and none is used: each formula names the tensors it counts and why, so a measurement (the
monitor, `vortex bench`) can confirm or replace it; `compute_plan(measured_activations=...)`
takes such measurements and marks the rows "measured". Every formula lives in this file.

All shapes are inference shapes (batch 1 unless said), under `torch.no_grad()`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from .counting import ELEMENT_BYTES, NF4, Placement

# An architecture's config, read by attribute (the fields each function names): the upstream
# config object, or the same fields as the planner's census keeps them (no module built).
Config = Any

Activity = Literal["text_encoders", "flux_denoise", "vae_decode", "kokoro", "clip_verify", "liveportrait"]

# Live (N x hidden) maps inside one Flux block at its peak, in units of one bf16 map: qkv (3),
# RoPE'd q/k computed in fp32 (x.float(), rotated.float(), their products: ~8), attention out (1),
# the single-block MLP hidden and its GELU (2 x 4), the [attn, mlp] concat (5), proj_out and the
# gated residual (2). Memory-efficient / flash SDPA (PyTorch on sm80+ in bf16) never materialises
# the N x N score matrix, so no N^2 term.
FLUX_LIVE_HIDDEN_MAPS = 24
# A diffusers ResnetBlock2D / Upsample2D at full resolution holds its input, the GroupNorm output,
# the SiLU output and the conv output at once (the interpolated map and its conv in Upsample2D).
VAE_LIVE_MAPS = 4
# Kokoro's vocoder stage (istftnet Generator, last upsampling stage): the stage input x, the
# source branch x_source, the running sum xs over the 3 MRF resblocks, the resblock's running x,
# xt, and ~3 temporaries of AdaIN ((1+gamma)*norm(x)+beta) and Snake (x + sin(a x)^2 / a).
KOKORO_LIVE_MAPS = 8
# A SPADE ResBlock at one resolution: x, the normalised x, gamma, beta, the shared-MLP activation
# and the conv output.
SPADE_LIVE_MAPS = 6
# Dense-motion hourglass at full volume resolution: its input, the decoder output, the mask
# logits and the deformed source features.
WARP_LIVE_MAPS = 4
# LivePortrait geometry (public models.yaml): a 16 x 64 x 64 feature volume; G starts at 64^2 and
# doubles twice (64 -> 128 -> 256), then pixel-shuffles to 512^2.
LIVEPORTRAIT_VOLUME = (16, 64, 64)
LIVEPORTRAIT_G_RESOLUTIONS = {"G_middle": 64, "up_0": 128, "up_1": 256}


@dataclass(frozen=True)
class ActivationEstimate:
    activity: Activity
    label: str
    placement: Placement
    dtype: str
    bytes: int
    formula: str


def compute_bytes(precision: str, placement: Placement = "cuda") -> int:
    """Width of an activation element: nf4 computes in bf16, LLM.int8 in fp16, and torch's dynamic
    int8 quantisation on the host in fp32."""
    return ELEMENT_BYTES[compute_dtype_name(precision, placement)]


def compute_dtype_name(precision: str, placement: Placement = "cuda") -> str:
    if precision == "int8":
        return "fp16" if placement == "cuda" else "fp32"
    return NF4.compute_dtype if precision == "nf4" else precision


def flux_denoise(cfg: Config, largest_linear: int, height: int, width: int, max_sequence_length: int,
                 precision: str, placement: Placement) -> ActivationEstimate:
    """One transformer forward at HxW: the joint sequence is the packed latent tokens (VAE /8, 2x2
    patches: /16) plus the T5 tokens. bitsandbytes dequantises one NF4 Linear at a time to the
    compute dtype before its matmul, so the largest such weight (`largest_linear` elements) is
    live on top. `cfg`: the transformer's config (num_attention_heads, attention_head_dim)."""
    hidden = cfg.num_attention_heads * cfg.attention_head_dim
    tokens = (height // 16) * (width // 16) + max_sequence_length
    width_b = compute_bytes(precision, placement)
    maps = FLUX_LIVE_HIDDEN_MAPS * tokens * hidden * width_b
    dequant = 0
    if precision == "nf4":
        dequant = largest_linear * width_b
    formula = (f"{FLUX_LIVE_HIDDEN_MAPS} live maps x tokens {tokens} ((H/16)(W/16)+{max_sequence_length}) "
               f"x hidden {hidden} x {width_b} B; SDPA without N^2 scores")
    if dequant:
        formula += f"; + largest NF4 Linear dequantised ({dequant / 2**20:.0f} MiB)"
    return ActivationEstimate("flux_denoise", f"flux denoise {height}x{width}", placement,
                              compute_dtype_name(precision, placement), maps + dequant, formula)


def vae_decode(cfg: Config, height: int, width: int, precision: str, placement: Placement) -> ActivationEstimate:
    """VAE decode at HxW: dominated by the largest conv feature map at full size. Walk the up
    blocks (`cfg.block_out_channels` reversed, each but the last ending in a 2x upsampler)."""
    channels = list(reversed(cfg.block_out_channels))
    scale = 2 ** (len(cfg.block_out_channels) - 1)
    res_h, res_w = height // scale, width // scale
    largest, where = 0, ""
    for i, c in enumerate(channels):
        last = i == len(channels) - 1
        out_h, out_w = (res_h, res_w) if last else (res_h * 2, res_w * 2)
        if c * out_h * out_w > largest:
            largest, where = c * out_h * out_w, f"{c} ch at {out_h}x{out_w}"
        res_h, res_w = out_h, out_w
    width_b = compute_bytes(precision, placement)
    return ActivationEstimate("vae_decode", f"vae decode {height}x{width}", placement, compute_dtype_name(precision, placement),
                              VAE_LIVE_MAPS * largest * width_b,
                              f"{VAE_LIVE_MAPS} live maps x largest decoder map ({where}) x {width_b} B")


def kokoro(config: dict, seconds: float, sample_rate: int, precision: str, placement: Placement) -> ActivationEstimate:
    """One utterance of `seconds` in a single pass (the worst case: no chunking). The vocoder's
    upsampling stages dominate; stage i has upsample_initial_channel / 2^(i+1) channels at
    seconds * sample_rate / hop / prod(later rates) steps."""
    ist = config["istftnet"]
    rates = ist["upsample_rates"]
    frames_out = seconds * sample_rate / ist["gen_istft_hop_size"]
    largest, where = 0, ""
    for i in range(len(rates)):
        ch = ist["upsample_initial_channel"] // 2 ** (i + 1)
        steps = math.ceil(frames_out / math.prod(rates[i + 1:]))
        if ch * steps > largest:
            largest, where = ch * steps, f"{ch} ch x {steps} steps"
    width_b = 4 if precision in ("int8", "nf4") else compute_bytes(precision, placement)  # int8 ONNX computes in fp32
    return ActivationEstimate("kokoro", f"kokoro {seconds:g} s utterance", placement,
                              "fp32" if width_b == 4 else compute_dtype_name(precision, placement),
                              KOKORO_LIVE_MAPS * largest * width_b,
                              f"{KOKORO_LIVE_MAPS} live maps x last vocoder stage ({where}) x {width_b} B")


def clip_verify(models: dict[str, tuple[Config, str]], frames: int, frame_hw: tuple[int, int],
                placement: Placement) -> ActivationEstimate:
    """K sampled frames through each CLIP vision tower, one model after the other: per layer the
    residual stream and attention tensors (6 x D), the MLP hidden and its activation (2 x I),
    int32 accumulators of the int8 matmul (I x 4 B), eager attention scores (heads x T^2). The K
    frames at full size (fp16) and their 224^2 pixel batch (fp32) are live alongside."""
    peaks = []
    for name, (v, precision) in models.items():  # v: the model's vision_config
        tokens = (v.image_size // v.patch_size) ** 2 + 1
        width_b = compute_bytes(precision, placement)
        layer = frames * tokens * (6 * v.hidden_size + 2 * v.intermediate_size) * width_b
        layer += frames * v.num_attention_heads * tokens * tokens * width_b
        if precision == "int8" and placement == "cuda":
            layer += frames * tokens * v.intermediate_size * 4
        pixels = frames * 3 * v.image_size * v.image_size * 4
        peaks.append((layer + pixels, name, tokens))
    peak, name, tokens = max(peaks)
    frames_bytes = frames * 3 * frame_hw[0] * frame_hw[1] * 2
    dtype = compute_dtype_name(models[name][1], placement)
    return ActivationEstimate("clip_verify", f"clip verify {frames} frames", placement, dtype, peak + frames_bytes,
                              f"K={frames} x T={tokens} tokens through {name}'s widest layer "
                              f"+ K frames at {frame_hw[0]}x{frame_hw[1]} fp16")


def liveportrait(manifest: dict[str, dict[str, list[int]]], batch_frames: int, precision: str,
                 placement: Placement) -> ActivationEstimate:
    """Per-frame W + G at `batch_frames` frames per call (models.liveportrait.batch_frames), at the
    animator's dtype. Channel widths come from the weight manifest; resolutions from LivePortrait's
    geometry. W and G run one after the other."""
    gen = manifest["base_models/spade_generator.pth"]
    warp = manifest["base_models/warping_module.pth"]
    spade = {"G_middle": gen["G_middle_0.conv_0.weight_orig"][1], "up_0": gen["up_0.conv_0.weight_orig"][1],
             "up_1": gen["up_1.conv_0.weight_orig"][1]}
    g_peak, g_where = max((c * LIVEPORTRAIT_G_RESOLUTIONS[k] ** 2, f"{k}: {c} ch at {LIVEPORTRAIT_G_RESOLUTIONS[k]}^2")
                          for k, c in spade.items())
    hourglass_out = warp["dense_motion_network.hourglass.decoder.conv.weight"][0]
    w_peak = hourglass_out * math.prod(LIVEPORTRAIT_VOLUME)
    width = ELEMENT_BYTES[precision]
    per_frame = max(SPADE_LIVE_MAPS * g_peak, WARP_LIVE_MAPS * w_peak) * width
    return ActivationEstimate("liveportrait", f"liveportrait {batch_frames} frames/call", placement, precision,
                              batch_frames * per_frame,
                              f"{batch_frames} frames x max(G {SPADE_LIVE_MAPS} maps x {g_where}, "
                              f"W {WARP_LIVE_MAPS} maps x {hourglass_out} ch x 16x64x64) x {width} B")


def text_encoders(c: Config, t5_precision: str, v: Config, clip_precision: str,
                  max_sequence_length: int, placement: Placement) -> ActivationEstimate:
    """Encoding one prompt (batch 1): T5 at max_sequence_length tokens, then CLIP-L at 77 — one
    after the other, so the larger wins. Per T5 layer: the gated FFN's two d_ff maps and their
    product (3 x d_ff), ~6 d_model maps, and the eager attention scores with position bias
    (heads x N^2, fp32). `c`: T5's config (d_ff, d_model, num_heads); `v`: CLIP-L text's config
    (hidden_size, intermediate_size, num_attention_heads)."""
    n = max_sequence_length
    t5_bytes = n * (3 * c.d_ff + 6 * c.d_model) * compute_bytes(t5_precision, placement) + c.num_heads * n * n * 4
    clip_bytes = 77 * (6 * v.hidden_size + 2 * v.intermediate_size) * compute_bytes(clip_precision, placement)
    clip_bytes += v.num_attention_heads * 77 * 77 * 4
    return ActivationEstimate("text_encoders", "text encoders (one prompt)", placement, compute_dtype_name(t5_precision, placement),
                              max(t5_bytes, clip_bytes),
                              f"T5: N={n} x (3 d_ff + 6 d_model) + {c.num_heads} heads x N^2 fp32; CLIP-L at 77 tokens")
