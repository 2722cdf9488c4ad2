"""The actor: FLUX.1-schnell through diffusers' `FluxPipeline`, from an actor prompt to a portrait.

Text encoding (CLIP-L text + T5-XXL) and denoising (transformer + VAE) may live on different
devices: the 12 GB profile keeps T5 on the host. `FluxPipeline` runs everything on its
`_execution_device`, the device of its first module, so we hold two views of one loaded
pipeline, as diffusers' low-VRAM guide does: a text view (no transformer, no VAE) and a denoise
view (no text encoders), sharing the same module objects. The denoise view is called with
prompt embeddings already moved to its device, returns latents, and we decode them ourselves so
the VAE may run in its own precision.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from diffusers import FluxPipeline
from transformers import CLIPTextModel, CLIPTokenizer

from ..config import FluxConfig, placement_device
from ..contracts.cancel import CancelToken
from ..errors import ConfigError, VortexInitializationError
from ..weights import resolve_weights
from .miniature.flux import save_miniature_flux

_FLOAT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_QUANTIZED = ("nf4", "int8")
# bitsandbytes layers compute in bf16, and a quantised model's unquantised parts are stored in it.
_QUANT_COMPUTE_DTYPE = torch.bfloat16

# (config field, pipeline component) pairs that bitsandbytes may quantise.
_QUANTIZABLE = {"precision": "transformer", "t5_precision": "text_encoder_2"}


class FluxActor:
    """FLUX.1-schnell, loaded once, generating one (height, width, 3) uint8 portrait per call."""

    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    text_device: str
    device: str  # where the transformer and VAE run
    dtype: torch.dtype  # the transformer's compute dtype: prompt embeddings are cast to it

    def __init__(self, pipe: FluxPipeline, cfg: FluxConfig, device: str, text_device: str):
        self.cfg = cfg
        self.device = device
        self.text_device = text_device
        self.dtype = _FLOAT_DTYPES.get(cfg.precision, _QUANT_COMPUTE_DTYPE)
        parts = pipe.components
        self._text_pipe = FluxPipeline(**{**parts, "transformer": None, "vae": None})
        self._denoise_pipe = FluxPipeline(
            **{**parts, "text_encoder": None, "text_encoder_2": None, "tokenizer": None, "tokenizer_2": None}
        )
        self._denoise_pipe.set_progress_bar_config(disable=True)
        self.text_encoder = pipe.text_encoder
        self.tokenizer = pipe.tokenizer
        # Per instance, so the cache dies with the actor; a recurring actor prompt skips T5.
        self._encode_cached = functools.lru_cache(maxsize=cfg.prompt_cache_size)(self._encode_uncached)

    # ---- loading ------------------------------------------------------------------------
    @classmethod
    def load(cls, cfg: FluxConfig, device: str, cache_dir: Path) -> "FluxActor":
        denoise_device = placement_device(cfg.placement, device)
        text_device = placement_device(cfg.text_placement, device)
        _check_precisions(cfg, denoise_device, text_device)
        quantization = _quantization_config(cfg)  # imports bitsandbytes only when asked for
        _require_cuda(denoise_device, text_device)
        folder = resolve_weights(
            cfg.source, component="flux", cache_dir=cache_dir, revision=cfg.revision,
            required=["model_index.json"], build_miniature=save_miniature_flux,
        )
        pipe = _load_pipeline(folder, cfg, quantization, denoise_device, text_device)
        return cls(pipe, cfg, denoise_device, text_device)

    def modules(self) -> dict[str, torch.nn.Module]:
        p = self._text_pipe
        return {
            "transformer": self._denoise_pipe.transformer, "vae": self._denoise_pipe.vae,
            "text_encoder": p.text_encoder, "text_encoder_2": p.text_encoder_2,
        }

    # ---- text ---------------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(T5 prompt_embeds [1, max_sequence_length, d], CLIP pooled [1, d]) on the text device.

        Cached by prompt (cfg.prompt_cache_size entries, least recently used out). The tensors
        are shared with the cache: do not modify them in place.
        """
        return self._encode_cached(prompt)

    def prompt_cache_info(self) -> Any:
        """functools' CacheInfo(hits, misses, maxsize, currsize) of the prompt cache."""
        return self._encode_cached.cache_info()

    @torch.no_grad()
    def _encode_uncached(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        prompt_embeds, pooled, _ = self._text_pipe.encode_prompt(
            prompt=prompt, prompt_2=None, device=torch.device(self.text_device),
            max_sequence_length=self.cfg.max_sequence_length,
        )
        return prompt_embeds, pooled

    # ---- image --------------------------------------------------------------------------
    def generate(self, prompt: str, seed: int, cancel: Optional[CancelToken] = None) -> np.ndarray:
        """A (cfg.height, cfg.width, 3) uint8 portrait; the same prompt and seed give the same image
        on the same device. Raises SlotCancelled within one denoising step of `cancel` firing."""
        _check(cancel)
        prompt_embeds, pooled = self.encode_prompt(prompt)
        _check(cancel)  # T5 on the host can take seconds
        latents = self._denoise(prompt_embeds, pooled, seed, cancel)
        _check(cancel)
        return self._decode(latents)

    @torch.no_grad()
    def _denoise(
        self, prompt_embeds: torch.Tensor, pooled: torch.Tensor, seed: int, cancel: Optional[CancelToken]
    ) -> torch.Tensor:
        def on_step_end(pipe: FluxPipeline, step: int, timestep: torch.Tensor, tensors: dict) -> dict:
            _check(cancel)
            return tensors

        cfg = self.cfg
        (latents,) = self._denoise_pipe(
            prompt_embeds=prompt_embeds.to(self.device, self.dtype),
            pooled_prompt_embeds=pooled.to(self.device, self.dtype),
            num_inference_steps=cfg.steps, guidance_scale=cfg.guidance_scale,
            height=cfg.height, width=cfg.width, max_sequence_length=cfg.max_sequence_length,
            generator=torch.Generator(self.device).manual_seed(seed),
            output_type="latent", return_dict=False, callback_on_step_end=on_step_end,
        )
        return latents

    @torch.no_grad()
    def _decode(self, packed_latents: torch.Tensor) -> np.ndarray:
        pipe, cfg = self._denoise_pipe, self.cfg
        vae = pipe.vae
        # The decode FluxPipeline does after its loop, with the latents cast to the VAE's dtype.
        latents = pipe._unpack_latents(packed_latents, cfg.height, cfg.width, pipe.vae_scale_factor)
        latents = latents / vae.config.scaling_factor + vae.config.shift_factor
        image = vae.decode(latents.to(vae.dtype), return_dict=False)[0]
        image = pipe.image_processor.postprocess(image, output_type="np")[0]  # HWC float in [0, 1]
        return (image * 255).round().astype(np.uint8)  # as diffusers' numpy_to_pil


def _check(cancel: Optional[CancelToken]) -> None:
    if cancel is not None:
        cancel.raise_if_cancelled()


# ---- setup checks ---------------------------------------------------------------------------
def _check_precisions(cfg: FluxConfig, denoise_device: str, text_device: str) -> None:
    devices = {"precision": (denoise_device, "placement"), "t5_precision": (text_device, "text_placement")}
    for field, (device, placement_field) in devices.items():
        value = getattr(cfg, field)
        if value in _QUANTIZED and not device.startswith("cuda"):
            raise ConfigError(
                f"models.flux.{field}: {value} needs a CUDA placement (models.flux.{placement_field} "
                f"resolves to {device}); use bf16/fp32 on CPU"
            )
    for field, what in (("clip_text_precision", "the CLIP-L text encoder"), ("vae_precision", "the VAE")):
        value = getattr(cfg, field)
        if value not in _FLOAT_DTYPES:
            raise ConfigError(f"models.flux.{field}: {value} is not supported for {what}; use fp32, bf16 or fp16")


def _require_cuda(*devices: str) -> None:
    for device in devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise VortexInitializationError(
                f"flux: placement on '{device}' needs a CUDA GPU and a CUDA build of PyTorch "
                "(torch.cuda.is_available() is False); use a CPU profile such as cpu-miniature"
            )


def _quantization_config(cfg: FluxConfig) -> Any:
    """diffusers' PipelineQuantizationConfig for the components asked to be nf4/int8, or None."""
    wanted = {field: getattr(cfg, field) for field in _QUANTIZABLE if getattr(cfg, field) in _QUANTIZED}
    if not wanted:
        return None
    try:
        import bitsandbytes  # noqa: F401  (only CUDA profiles need it)
    except ImportError as exc:
        field, value = next(iter(wanted.items()))
        raise VortexInitializationError(
            f"models.flux.{field}: {value} quantisation needs bitsandbytes, which is not installed; "
            "run pip install 'vortex[cuda]'"
        ) from exc
    from diffusers import BitsAndBytesConfig as DiffusersBnbConfig
    from diffusers import PipelineQuantizationConfig
    from transformers import BitsAndBytesConfig as TransformersBnbConfig

    config_class = {"transformer": DiffusersBnbConfig, "text_encoder_2": TransformersBnbConfig}
    mapping = {}
    for field, value in wanted.items():
        component = _QUANTIZABLE[field]
        mapping[component] = config_class[component](**_bnb_kwargs(value))
    return PipelineQuantizationConfig(quant_mapping=mapping)


def _bnb_kwargs(precision: str) -> dict[str, Any]:
    if precision == "nf4":
        return dict(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=_QUANT_COMPUTE_DTYPE,
        )
    return dict(load_in_8bit=True)


def _component_dtypes(cfg: FluxConfig) -> dict[str, torch.dtype]:
    def dtype(precision: str) -> torch.dtype:
        return _FLOAT_DTYPES.get(precision, _QUANT_COMPUTE_DTYPE)

    return {
        "transformer": dtype(cfg.precision), "text_encoder_2": dtype(cfg.t5_precision),
        "text_encoder": dtype(cfg.clip_text_precision), "vae": dtype(cfg.vae_precision),
    }


def _load_pipeline(
    folder: Path, cfg: FluxConfig, quantization: Any, denoise_device: str, text_device: str
) -> FluxPipeline:
    quantized = {component for field, component in _QUANTIZABLE.items() if getattr(cfg, field) in _QUANTIZED}
    # bitsandbytes puts the modules it quantises on the *current* CUDA device as it loads them.
    target = torch.cuda.device(denoise_device) if quantized else contextlib.nullcontext()
    try:
        with target:
            pipe = FluxPipeline.from_pretrained(
                folder, local_files_only=True, dtype=_component_dtypes(cfg), quantization_config=quantization
            )
        devices = {"transformer": denoise_device, "vae": denoise_device,
                   "text_encoder": text_device, "text_encoder_2": text_device}
        for name, device in devices.items():
            if name not in quantized:  # quantised modules are already placed and refuse .to()
                getattr(pipe, name).to(device)
    except torch.cuda.OutOfMemoryError as exc:
        raise VortexInitializationError(
            f"flux: out of GPU memory while loading '{folder}' ({exc}); choose a profile with nf4 "
            "precision or text_placement: cpu"
        ) from exc
    except Exception as exc:  # corrupt or incompatible files: say which folder, keep the cause
        raise VortexInitializationError(
            f"flux: cannot load a FluxPipeline from '{folder}': {type(exc).__name__}: {exc}"
        ) from exc
    for module in (pipe.transformer, pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        module.eval()
    return pipe
