"""Every Vortex component at full size with seeded random weights, built fast, for timing and
memory measurements on a GPU that has no model weights (random weights time the same as real
ones: the same shapes, the same kernels, the same bytes).

Two ways, one per size of problem:

- Flux (12 B + 4.8 B parameters) is assembled in memory: each network is built on the meta device
  from its upstream config, then materialised straight on its device. For an NF4 transformer each
  `nn.Linear` is replaced by a bitsandbytes `Linear4bit` whose random bf16 weight is quantised on
  the GPU layer by layer (diffusers' bitsandbytes quantizer makes the same layers: it converts
  every Linear of FluxTransformer2DModel), so no 24 GB bf16 copy ever exists. The pipeline is
  then handed to `vortex.models.flux.FluxActor`, the class the engine uses.
- Kokoro, both CLIPs and LivePortrait are small enough to write in their upstream on-disk layout
  (a few hundred MB each) and load through Vortex's own loaders, exactly as real weights load.

`size="miniature"` builds the same things from the miniature configs, so `check.py --dry-run`
runs this code end to end on a CPU.
"""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Literal

import torch
from torch import nn

from vortex.config import FluxConfig

Size = Literal["full", "miniature"]
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
QUANT_COMPUTE = torch.bfloat16  # bitsandbytes' compute dtype in Vortex's Flux loader


# ---- filling tensors ------------------------------------------------------------------------------
def _generator(device: torch.device | str, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@torch.no_grad()
def fill_random_(name: str, tensor: torch.Tensor, gen: torch.Generator) -> None:
    """Plausible random values: matrices ~ N(0, 1/fan_in) (unit-variance activations, as trained
    networks keep them), norm scales ~ 1, biases and the rest small. Integer tensors keep zeros."""
    if not tensor.is_floating_point():
        if name.endswith("position_ids"):  # transformers' arange(max_positions) buffer
            tensor.copy_(torch.arange(tensor.shape[-1]).expand(tensor.shape))
        else:
            tensor.zero_()
        return
    # Draw in fp32 on the generator's device and cast: bf16 normal_ is not offered everywhere.
    values = torch.empty(tensor.shape, dtype=torch.float32, device=gen.device)
    leaf = name.rsplit(".", 1)[-1]
    if tensor.ndim >= 2:
        fan_in = math.prod(tensor.shape[1:])
        values.normal_(0.0, fan_in ** -0.5, generator=gen)
    elif leaf == "weight":  # norm scales
        values.normal_(1.0, 0.02, generator=gen)
    else:
        values.normal_(0.0, 0.02, generator=gen)
    tensor.copy_(values)


def materialise_(module: nn.Module, device: torch.device | str, dtype: torch.dtype, gen: torch.Generator,
                 skip: Iterable[nn.Module] = ()) -> None:
    """Replace every meta parameter and buffer of `module` (but those of `skip`) with random values on
    `device`, one tensor at a time, so peak memory is the model plus one tensor."""
    skipped = {id(m) for m in skip}
    for mod_name, sub in module.named_modules():
        if id(sub) in skipped:
            continue
        for pname, param in list(sub.named_parameters(recurse=False)):
            if param.device.type != "meta":
                continue
            new = torch.empty(param.shape, dtype=dtype if param.is_floating_point() else param.dtype, device=device)
            fill_random_(f"{mod_name}.{pname}", new, gen)
            setattr(sub, pname, nn.Parameter(new, requires_grad=False))
        for bname, buf in list(sub.named_buffers(recurse=False)):
            if buf.device.type != "meta":
                continue
            new = torch.empty(buf.shape, dtype=dtype if buf.is_floating_point() else buf.dtype, device=device)
            fill_random_(f"{mod_name}.{bname}", new, gen)
            sub.register_buffer(bname, new, persistent=bname not in sub._non_persistent_buffers_set)


def _moved(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    return tensor if tensor.device == torch.device(device) else tensor.to(device)


# ---- Flux -----------------------------------------------------------------------------------------
def nf4_linears_(module: nn.Module, device: str, gen: torch.Generator) -> list[nn.Module]:
    """Swap every nn.Linear of a meta module for a bitsandbytes NF4 Linear4bit with random weights,
    quantised on `device` (double quantisation, blocksize 64: the settings of Vortex's loader)."""
    import bitsandbytes as bnb

    made = []
    for name, sub in list(module.named_modules()):
        for child_name, child in list(sub.named_children()):
            if type(child) is not nn.Linear:
                continue
            full = f"{name}.{child_name}" if name else child_name
            with torch.device("meta"):
                layer = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                          compute_dtype=QUANT_COMPUTE, compress_statistics=True, quant_type="nf4")
            weight = torch.empty(child.out_features, child.in_features, dtype=QUANT_COMPUTE, device=gen.device)
            fill_random_(f"{full}.weight", weight, gen)
            layer.weight = bnb.nn.Params4bit(_moved(weight, device), requires_grad=False, compress_statistics=True,
                                             quant_type="nf4", module=layer).to(device)
            del weight
            if child.bias is not None:
                bias = torch.empty(child.out_features, dtype=QUANT_COMPUTE, device=device)
                fill_random_(f"{full}.bias", bias, gen)
                layer.bias = nn.Parameter(bias, requires_grad=False)
            setattr(sub, child_name, layer)
            made.append(layer)
    return made


def flux_configs(size: Size) -> dict[str, dict[str, Any]]:
    """Upstream config dicts of the transformer, VAE, T5 and CLIP-L text encoder."""
    if size == "full":
        from vortex.memory.architectures import _upstream_keys, full_size_config

        names = {"transformer": "flux1-schnell-transformer", "vae": "flux1-schnell-vae",
                 "text_encoder_2": "flux1-schnell-text_encoder_2", "text_encoder": "flux1-schnell-text_encoder"}
        return {k: _upstream_keys(full_size_config(v)) for k, v in names.items()}
    from vortex.models.miniature.flux import save_miniature_flux

    with tempfile.TemporaryDirectory(prefix="vortex-flux-configs-") as tmp:
        folder = save_miniature_flux(tmp)
        return {k: json.loads((folder / k / "config.json").read_text())
                for k in ("transformer", "vae", "text_encoder_2", "text_encoder")}


def random_flux_actor(cfg: FluxConfig, device: str, size: Size = "full", seed: int = 0):
    """A `FluxActor` over a FluxPipeline of random networks at `cfg`'s precisions and placements."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from vortex.config import placement_device
    from vortex.models.flux import FluxActor
    from vortex.models.miniature.clip import clip_tokenizer
    from vortex.models.miniature.flux import SCHNELL_SCHEDULER, t5_tokenizer

    configs = flux_configs(size)
    denoise_device = placement_device(cfg.placement, device)
    text_device = placement_device(cfg.text_placement, device)
    # Random numbers are drawn on the GPU when there is one (fast), then copied where they live.
    gen_device = device if device.startswith("cuda") else "cpu"

    def dtype(precision: str) -> torch.dtype:
        return _DTYPES.get(precision, QUANT_COMPUTE)

    with torch.device("meta"):
        transformer = FluxTransformer2DModel.from_config(configs["transformer"])
        vae = AutoencoderKL.from_config(configs["vae"])
        t5 = T5EncoderModel(T5Config(**configs["text_encoder_2"]))
        clip_text = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))

    gen = _generator(gen_device, seed)
    if cfg.precision == "nf4":
        nf4 = nf4_linears_(transformer, denoise_device, gen)
        materialise_(transformer, denoise_device, QUANT_COMPUTE, gen, skip=nf4)
    else:
        materialise_(transformer, denoise_device, dtype(cfg.precision), gen)
    materialise_(vae, denoise_device, dtype(cfg.vae_precision), _generator(gen_device, seed + 1))
    if cfg.t5_precision in ("nf4", "int8"):
        raise NotImplementedError("a quantised T5 is not built here: the profiles the check runs keep T5 in bf16")
    materialise_(t5, text_device, dtype(cfg.t5_precision), _generator(gen_device, seed + 2))
    materialise_(clip_text, text_device, dtype(cfg.clip_text_precision), _generator(gen_device, seed + 3))
    for module in (transformer, vae, t5, clip_text):
        module.eval().requires_grad_(False)
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHNELL_SCHEDULER), vae=vae, text_encoder=clip_text,
        tokenizer=clip_tokenizer(), text_encoder_2=t5, tokenizer_2=t5_tokenizer(), transformer=transformer,
    )
    return FluxActor(pipe, cfg, denoise_device, text_device)


# ---- Kokoro ---------------------------------------------------------------------------------------
# A real phoneme lasts about 3-4 duration units (75-100 ms). With random weights every sigmoid of
# the duration head is ~0.5, so a token would last max_dur / 2 = 25 units (0.6 s) and 45 s of
# script would make 5 minutes of audio: the vocoder would time the wrong amount of work. The head
# is therefore set to predict about REAL_UNITS_PER_TOKEN, as a trained one does.
REAL_UNITS_PER_TOKEN = 3.5


def save_random_kokoro(folder: Path, voices: Iterable[str], size: Size = "full", seed: int = 0) -> Path:
    """config.json, kokoro-v1_0.pth ({submodule: state_dict}) and voices/<name>.pt, hexgrad's layout."""
    from kokoro import KModel

    from vortex.models.miniature.kokoro import VOICE_PACK_SHAPE, VOICE_PACK_STD, miniature_kokoro_config

    if size == "full":
        from vortex.memory.architectures import _upstream_keys, full_size_config

        config = _upstream_keys(full_size_config("kokoro-82m"))
    else:
        config = miniature_kokoro_config()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    empty = folder / ".empty.pth"
    torch.save({}, empty)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        model = KModel(repo_id="hexgrad/Kokoro-82M", config=config, model=str(empty)).eval()
    empty.unlink()
    head = model.predictor.duration_proj.linear_layer
    with torch.no_grad():
        head.weight.mul_(0.01)
        p = REAL_UNITS_PER_TOKEN / config["max_dur"]
        head.bias.fill_(math.log(p / (1 - p)))
    torch.save({name: child.state_dict() for name, child in model.named_children()}, folder / "kokoro-v1_0.pth")
    (folder / "voices").mkdir(exist_ok=True)
    gen = torch.Generator().manual_seed(seed + 1)
    for name in sorted(set(voices)):
        torch.save(torch.randn(VOICE_PACK_SHAPE, generator=gen) * VOICE_PACK_STD, folder / "voices" / f"{name}.pt")
    return folder


# ---- CLIP -----------------------------------------------------------------------------------------
def save_random_clip(folder: Path, which: Literal["b32", "l14"], size: Size = "full", seed: int = 0) -> Path:
    """A transformers CLIPModel folder (fp16 safetensors, tokenizer, image processor) with random weights."""
    if size == "miniature":
        from vortex.models.miniature.clip import save_miniature_clip

        return save_miniature_clip(folder, which, seed)
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    from vortex.memory.architectures import _CLIP_CONFIGS, _upstream_keys, full_size_config
    from vortex.models.miniature.clip import clip_tokenizer

    config = CLIPConfig(**_upstream_keys(full_size_config(_CLIP_CONFIGS[which])))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config).eval().half()  # fp16 on disk: half the bytes to write and read
    model.save_pretrained(folder)
    clip_tokenizer().save_pretrained(folder)  # ids < 49408: the full vocabulary's embedding table takes them
    CLIPImageProcessorPil(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
    ).save_pretrained(folder)
    return Path(folder)


# ---- LivePortrait ---------------------------------------------------------------------------------
def save_random_liveportrait(folder: Path, size: Size = "full", seed: int = 0) -> Path:
    """The five weight files in the public layout (a miniature adds its config file)."""
    from vortex.models.liveportrait import build_networks, save_miniature_liveportrait

    if size == "miniature":
        return save_miniature_liveportrait(folder, seed=seed)
    networks = build_networks("full", seed=seed)
    for relative, state in networks.state_dicts().items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, folder / relative)
    return folder


def random_liveportrait_networks(device: str, dtype: torch.dtype, size: Size = "full", seed: int = 0):
    from vortex.models.liveportrait import build_networks

    return build_networks(size, device=device, dtype=dtype, seed=seed)
