"""FLOPs and bytes per phase of one slot, counted from the full-size architectures, and the time
floor they imply on a card: max(FLOPs / arithmetic rate, bytes / memory bandwidth).

    python benchmarks/device/flops.py [--json OUT] [--markdown OUT] [--frames 1080] [--audio 45]

Runs anywhere (no GPU): every network except Kokoro is run on PyTorch's meta device, where each
operation computes only its output's shape, under `torch.utils.flop_counter.FlopCounterMode`
(2 FLOPs per multiply-add of matmuls, convolutions and attention; element-wise work, norms and
grid_sample are not counted and are small beside them). Kokoro's alignment depends on predicted
durations, which meta tensors cannot hold, so the full-size KModel runs on the CPU with seeded
random weights on a short input and is scaled by the seconds of audio it made (its cost is the
vocoder's, linear in audio length); its LSTMs are not counted by the counter (< 0.1 % here).

Bytes, two figures. The floor's: the weights as the profile stores them (the VRAM planner's
counts: NF4, int8, fp16...), read once per forward pass, plus each call's inputs read once and
outputs written once: nothing can move less. Beside it, the traffic of an unfused, layer-by-layer
execution: every operation's output, at the compute dtype, written once and read once (on meta,
attention is the unfused math path, so its N^2 scores are in it: flash attention moves far
less). Real kernels land between the two; the FLOP floor is the larger one for every network
that matters here on an RTX 3060.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

# Arithmetic rate and memory bandwidth of the cards the analysis is for.
#   RTX 3060 12 GB (GA106, 28 SMs, 112 tensor cores, boost 1.777 GHz, 192-bit at 15 Gbps):
#     fp16/bf16 tensor, fp32 accumulate, dense: 112 x 128 FLOP/clk x 1.777 GHz = 25.5 TFLOP/s
#     (51 with fp16 accumulate, which PyTorch does not use); TF32 tensor dense and plain fp32 on
#     the CUDA cores: 12.7 TFLOP/s; 360 GB/s.
#   H100 SXM (80 GB HBM3): datasheet 989 TFLOP/s bf16/fp16 dense, 494 TF32, 67 fp32, 3.35 TB/s;
#     measured on this workplace's H100 (KINDS.md, 2026-11-13): 798 TFLOP/s bf16, 3.0 TB/s.
CARDS = {
    "RTX 3060 12 GB": {"fp16": 25.5e12, "bf16": 25.5e12, "tf32": 12.7e12, "fp32": 12.7e12, "bytes_per_s": 360e9},
    "H100 SXM (measured)": {"fp16": 798e12, "bf16": 798e12, "tf32": 399e12, "fp32": 67e12, "bytes_per_s": 3.0e12},
}


@dataclass
class PhaseCost:
    phase: str
    what: str
    calls: float  # forward passes per slot
    flops: float  # per slot
    weight_bytes: float  # per slot (weights re-read on every call)
    io_bytes: float  # per slot: each call's inputs read once and outputs written once
    layer_bytes: float  # per slot: every op's output written and read once (unfused execution)
    math: str  # the arithmetic unit's rate to use: fp16 | bf16 | tf32 | fp32
    where: str = "gpu"  # "host" rows are not part of the GPU floor

    @property
    def min_bytes(self) -> float:
        return self.weight_bytes + self.io_bytes

    def floor_s(self, card: dict[str, float]) -> tuple[float, float]:
        """(FLOP time, minimal-byte time): the floor is the larger."""
        return self.flops / card[self.math], self.min_bytes / card["bytes_per_s"]

    def unfused_s(self, card: dict[str, float]) -> float:
        return (self.weight_bytes + self.layer_bytes) / card["bytes_per_s"]


class OutputBytes(TorchDispatchMode):
    """Sums the bytes of every operation's outputs (views excluded: they allocate nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not getattr(func, "is_view", False):
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    self.total += t.numel() * t.element_size()
        return out


def count(fn, *inputs: torch.Tensor) -> tuple[float, float, float]:
    """(FLOPs, bytes written by every op, bytes of `inputs` + the call's outputs) of one call of `fn`."""
    bytes_mode, flops_mode = OutputBytes(), FlopCounterMode(display=False)
    with flops_mode, bytes_mode, torch.no_grad():
        out = fn()
    return float(flops_mode.get_total_flops()), float(bytes_mode.total), float(_nbytes(inputs) + _nbytes(out))


def _nbytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return sum(_nbytes(v) for v in vars(value).values()) if hasattr(value, "__dict__") else 0


def _plan_bytes(profile: str) -> dict[str, int]:
    from vortex.config import VortexConfig
    from vortex.memory.plan import compute_plan

    plan = compute_plan(VortexConfig.load(profile))
    return {r.component.split(" ")[0]: r.bytes for r in plan.rows if r.params is not None}


# ---- each network, full size ---------------------------------------------------------------------------
def flux_costs(steps: int, height: int, width: int, seq: int, weight: dict[str, int]) -> list[PhaseCost]:
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from vortex.memory.architectures import _upstream_keys, full_size_config

    bf16 = torch.bfloat16
    with torch.device("meta"):
        tr = FluxTransformer2DModel.from_config(_upstream_keys(full_size_config("flux1-schnell-transformer"))).to(bf16)
        vae = AutoencoderKL.from_config(_upstream_keys(full_size_config("flux1-schnell-vae"))).to(bf16)
        t5 = T5EncoderModel(T5Config(**_upstream_keys(full_size_config("flux1-schnell-text_encoder_2")))).to(bf16)
        clip = CLIPTextModel(CLIPTextConfig(**_upstream_keys(full_size_config("flux1-schnell-text_encoder"))))
        c = tr.config
        n = (height // 16) * (width // 16)
        args = dict(hidden_states=torch.empty(1, n, c.in_channels, dtype=bf16),
                    encoder_hidden_states=torch.empty(1, seq, c.joint_attention_dim, dtype=bf16),
                    pooled_projections=torch.empty(1, c.pooled_projection_dim, dtype=bf16),
                    timestep=torch.ones(1), img_ids=torch.zeros(n, 3), txt_ids=torch.zeros(seq, 3))
        latents = torch.empty(1, vae.config.latent_channels, height // 8, width // 8, dtype=bf16)
        ids = torch.zeros(1, seq, dtype=torch.long)
        clip_ids = torch.zeros(1, 77, dtype=torch.long)
    f_tr, a_tr, io_tr = count(lambda: tr(**args, return_dict=False), *args.values())
    f_vae, a_vae, io_vae = count(lambda: vae.decode(latents, return_dict=False), latents)
    f_t5, a_t5, io_t5 = count(lambda: t5(input_ids=ids).last_hidden_state, ids)
    f_clip, a_clip, io_clip = count(lambda: clip(input_ids=clip_ids).pooler_output, clip_ids)
    return [
        PhaseCost("actor", "T5-XXL encoder, 1 prompt (host on the 12 GB profile; cached per prompt)", 1, f_t5,
                  weight["flux.t5_xxl"], io_t5, 2 * a_t5, "bf16", "host"),
        PhaseCost("actor", "CLIP-L text encoder, 1 prompt (host; cached)", 1, f_clip, weight["flux.clip_l_text"],
                  io_clip, 2 * a_clip, "fp32", "host"),
        PhaseCost("actor", f"Flux transformer, {steps} steps x {n + seq} tokens (NF4 weights, bf16 math)", steps,
                  steps * f_tr, steps * weight["flux.transformer"], steps * io_tr, steps * 2 * a_tr, "bf16"),
        PhaseCost("actor", f"VAE decode {height}x{width}", 1, f_vae, weight["flux.vae"], io_vae, 2 * a_vae, "bf16"),
    ]


def kokoro_costs(audio_s: float, weight: dict[str, int], seed: int = 0) -> tuple[list[PhaseCost], float]:
    """Kokoro on the CPU (short input, seeded random weights), scaled to `audio_s` seconds."""
    from kokoro import KModel

    from vortex.memory.architectures import _upstream_keys, full_size_config

    config = _upstream_keys(full_size_config("kokoro-82m"))
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        torch.manual_seed(seed)
        model = KModel(repo_id="hexgrad/Kokoro-82M", config=config, model=str(empty)).eval()
    tokens = torch.tensor([[0, *([50, 60, 70, 80] * 3), 0]])
    style = torch.randn(1, 256, generator=torch.Generator().manual_seed(seed)) * 0.15
    out = {}

    def run():
        out["audio"], _ = model.forward_with_tokens(tokens, style, 1.0)
        return out["audio"]

    flops, act, io = count(run, tokens, style)
    seconds = out["audio"].numel() / 24000
    scale = audio_s / seconds
    return [PhaseCost("voice", f"Kokoro-82M, {audio_s:g} s of speech (scaled from {seconds:.1f} s)", 1,
                      flops * scale, weight["kokoro"], io * scale, 2 * act * scale, "tf32")], flops / seconds


def liveportrait_costs(frames: int, weight: dict[str, int]) -> list[PhaseCost]:
    from vortex.models.liveportrait import build_networks

    nets = build_networks("full", device="meta", dtype=torch.float16)
    h = torch.float16
    with torch.device("meta"):
        image = torch.empty(1, 3, 256, 256, dtype=h)
        feature = torch.empty(1, 32, 16, 64, 64, dtype=h)
        kp = torch.empty(1, 21, 3)
    f_fm, a_fm, io_fm = count(lambda: (nets.F(image), nets.M(image)), image)
    f_w, a_w, io_w = count(lambda: nets.W(feature, kp_source=kp, kp_driving=kp)["out"], feature, kp, kp)
    warped = torch.empty(1, 256, 64, 64, dtype=h, device="meta")
    f_g, a_g, io_g = count(lambda: nets.G(warped), warped)
    params = nets.parameter_counts()
    per = weight["liveportrait"] / sum(params.values())  # bytes per parameter as the plan stores them
    wg_weights = per * (params["W"] + params["G"])
    return [
        PhaseCost("animate", "LivePortrait F + M, once per slot", 1, f_fm, per * (params["F"] + params["M"]), io_fm,
                  2 * a_fm, "fp16"),
        PhaseCost("animate", f"LivePortrait W (warp), {frames} frames", frames, frames * f_w,
                  frames * per * params["W"], frames * io_w, frames * 2 * a_w, "fp16"),
        PhaseCost("animate", f"LivePortrait G (SPADE generator), {frames} frames", frames, frames * f_g,
                  frames * per * params["G"], frames * io_g, frames * 2 * a_g, "fp16"),
        PhaseCost("animate", f"  W + G batched 8 frames a call ({frames // 8} calls): weights read 8x less",
                  frames / 8, frames * (f_w + f_g), frames / 8 * wg_weights, frames * (io_w + io_g),
                  frames * 2 * (a_w + a_g), "fp16"),
    ]


def clip_costs(k: int, weight: dict[str, int]) -> list[PhaseCost]:
    from vortex.memory import architectures as arch

    rows = []
    for size, key in (("b32", "clip_b32"), ("l14", "clip_l14")):
        model = arch.clip_model(size)  # meta, fp32: activations counted at fp16 below (LLM.int8 computes in fp16)
        v = model.config.vision_config
        with torch.device("meta"):
            pixels = torch.empty(k, 3, v.image_size, v.image_size)
            ids = torch.zeros(1, 77, dtype=torch.long)
        f_img, a_img, io_img = count(lambda: model.vision_model(pixel_values=pixels).pooler_output, pixels)
        f_txt, a_txt, io_txt = count(lambda: model.text_model(input_ids=ids).pooler_output, ids)
        # counted in fp32 on meta; LLM.int8 computes in fp16: half the bytes
        rows.append(PhaseCost("verify", f"CLIP {size.upper()} vision x {k} frames + text (int8 weights, fp16 math)",
                              1, f_img + f_txt, weight[key], (io_img + io_txt) / 2, a_img + a_txt, "fp16"))
    return rows


def all_costs(profile: str, frames: int, audio_s: float, k: int) -> tuple[list[PhaseCost], dict]:
    from vortex.config import VortexConfig

    cfg = VortexConfig.load(profile)
    f = cfg.models.flux
    weight = _plan_bytes(profile)
    weight["flux.clip_l_text"] = weight.get("flux.clip_l_text", 0)
    kokoro, per_second = kokoro_costs(audio_s, weight)
    rows = (flux_costs(f.steps, f.height, f.width, f.max_sequence_length, weight) + kokoro
            + liveportrait_costs(frames, weight) + clip_costs(k, weight))
    return rows, {"kokoro_flops_per_audio_second": per_second}


# ---- the table ---------------------------------------------------------------------------------------------
def markdown(rows: list[PhaseCost], frames: int) -> str:
    names = list(CARDS)
    head = ("| phase | what | GFLOP | min GB (weights + I/O) | unfused GB | "
            + " | ".join(f"{n}: floor s (FLOP / min bytes / unfused bytes)" for n in names) + " |")
    lines = [head, "|" + "---|" * (5 + len(names))]
    for r in rows:
        floors = []
        for n in names:
            fs, bs = r.floor_s(CARDS[n])
            floors.append(f"**{max(fs, bs):.3f}** ({fs:.3f} / {bs:.3f} / {r.unfused_s(CARDS[n]):.3f})")
        lines.append(f"| {r.phase} | {r.what} | {r.flops / 1e9:,.0f} | {r.min_bytes / 1e9:.2f} | "
                     f"{(r.weight_bytes + r.layer_bytes) / 1e9:.1f} | " + " | ".join(floors) + " |")
    # the GPU floor of one slot: every GPU row except the batched alternative, voice beside actor
    gpu = [r for r in rows if r.where == "gpu" and not r.what.startswith("  ")]
    for n in names:
        card = CARDS[n]
        floor = {r.what: max(r.floor_s(card)) for r in gpu}
        by_phase: dict[str, float] = {}
        for r in gpu:
            by_phase[r.phase] = by_phase.get(r.phase, 0.0) + floor[r.what]
        serial = by_phase.get("animate", 0) + by_phase.get("verify", 0)
        total = max(by_phase.get("actor", 0), by_phase.get("voice", 0)) + serial
        lines.append(f"\n**{n}: GPU floor of one {frames}-frame slot** (voice ‖ actor, then animate, then verify): "
                     + ", ".join(f"{p} {s:.2f} s" for p, s in by_phase.items()) + f" → **{total:.2f} s**")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="rtx3060-12gb", help="whose precisions and weight bytes to use")
    parser.add_argument("--frames", type=int, default=1080)
    parser.add_argument("--audio", type=float, default=45.0, help="seconds of speech")
    parser.add_argument("--verify-frames", type=int, default=8)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    rows, extra = all_costs(args.profile, args.frames, args.audio, args.verify_frames)
    text = markdown(rows, args.frames)
    print(f"FLOPs and bytes per phase, profile {args.profile} precisions, {args.frames} frames, {args.audio:g} s audio")
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        data = {"profile": args.profile, "frames": args.frames, "audio_s": args.audio, "cards": CARDS, **extra,
                "rows": [{**asdict(r), "floors_s": {n: r.floor_s(c) for n, c in CARDS.items()},
                          "unfused_s": {n: r.unfused_s(c) for n, c in CARDS.items()}} for r in rows]}
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
