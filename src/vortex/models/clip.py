"""Verification: CLIP ViT-B/32 and ViT-L/14 score sampled frames of a slot against its prompt.

Scores are raw cosine similarities between image and text embeddings, with no rescaling: a
matching image/prompt pair scores about 0.2-0.35 on this scale. The slot's published embedding is
the B/32 image embedding averaged over the sampled frames (512-d, unit norm).

Flux's `text_encoder` is the text tower of CLIP ViT-L/14. When the engine hands that tower in
(`SharedTextTower`), the verifier reads only L/14's `text_projection` from the checkpoint instead
of holding a second copy of the tower.
"""

from __future__ import annotations

import json
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn
from transformers import (
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionModelWithProjection,
)
from transformers.utils import logging as hf_logging

from ..config import ClipConfig, VerificationConfig, placement_device
from ..errors import ConfigError, VortexInitializationError, WeightsNotFoundError
from ..result import VerificationReport
from ..weights import resolve_weights
from .miniature.clip import save_miniature_clip

_FLOAT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Config fields that must agree before a borrowed text tower can stand in for L/14's own.
_TEXT_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
                "max_position_embeddings")


@dataclass(frozen=True)
class SharedTextTower:
    """CLIP-L/14's text tower as Flux holds it (its `text_encoder` and `tokenizer`), lent to the verifier."""

    model: CLIPTextModel
    tokenizer: CLIPTokenizer
    device: str


def evenly_spread_indices(n_frames: int, k: int) -> list[int]:
    """The middle frame of each of k equal stretches of the video; every frame when k >= n_frames."""
    if n_frames < 1:
        raise ValueError("verification needs at least one frame")
    if k >= n_frames:
        return list(range(n_frames))
    return [int((i + 0.5) * n_frames / k) for i in range(k)]


# ---- precision ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Precision:
    load_kwargs: dict
    quantize_dynamic_int8: bool  # CPU int8: quantize nn.Linear weights after a float32 load
    pixel_dtype: torch.dtype


def _precision(precision: str, field: str, device: str) -> _Precision:
    if precision == "nf4":
        raise ConfigError(f"{field}: 'nf4' is not supported for CLIP; use int8, fp16, bf16 or fp32")
    if precision in _FLOAT_DTYPES:
        dtype = _FLOAT_DTYPES[precision]
        return _Precision({"dtype": dtype}, False, dtype)
    if precision != "int8":
        raise ConfigError(f"{field}: unknown precision '{precision}'")
    if not device.startswith("cuda"):
        return _Precision({"dtype": torch.float32}, True, torch.float32)
    try:
        import bitsandbytes  # noqa: F401  (transformers needs it for 8-bit weights)
    except ImportError:
        raise VortexInitializationError(
            f"{field}: int8 on CUDA needs bitsandbytes, which is not installed; "
            "run `pip install 'vortex[cuda]'` (or choose fp16)"
        ) from None
    from transformers import BitsAndBytesConfig

    return _Precision(
        {"dtype": torch.float16, "quantization_config": BitsAndBytesConfig(load_in_8bit=True),
         "device_map": {"": device}},
        False, torch.float16,
    )


def _quantize_linear_int8(module: nn.Module) -> nn.Module:
    with warnings.catch_warnings():  # torch marks its eager quantization API deprecated in favour of torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8)


# ---- loading ------------------------------------------------------------------------------------


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Loading one tower from a two-tower checkpoint skips the other tower's keys on purpose, and
    transformers reports each as UNEXPECTED; missing or mismatched keys are checked by us instead."""
    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def _clip_config(component: str, path: Path) -> CLIPConfig:
    model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type != "clip":
        raise VortexInitializationError(
            f"{component}: '{path}' holds a '{model_type}' model; expected a CLIPModel folder (model_type 'clip'), "
            "such as openai/clip-vit-base-patch32"
        )
    config = CLIPConfig.from_pretrained(path, local_files_only=True)
    # The heads' width lives at the top level of a CLIPConfig; sub-configs may carry a stale default.
    config.vision_config.projection_dim = config.projection_dim
    config.text_config.projection_dim = config.projection_dim
    return config


def _load_tower(component: str, cls: type, path: Path, config, precision: _Precision, device: str) -> nn.Module:
    try:
        with _quiet_transformers():
            model, info = cls.from_pretrained(
                path, config=config, local_files_only=True, output_loading_info=True, **precision.load_kwargs
            )
    except (OSError, RuntimeError, ValueError) as exc:
        raise VortexInitializationError(f"{component}: cannot load {cls.__name__} from '{path}': {exc}") from exc
    problems = list(info.get("missing_keys") or []) + [str(k) for k in info.get("mismatched_keys") or []]
    if problems:  # transformers would run with freshly initialised weights in their place
        raise VortexInitializationError(
            f"{component}: '{path}' lacks weights {sorted(problems)[:5]} for {cls.__name__}; "
            "is it a complete CLIP checkpoint?"
        )
    model.eval()
    if precision.quantize_dynamic_int8:
        return _quantize_linear_int8(model)
    return model if "device_map" in precision.load_kwargs else model.to(device)


def _read_checkpoint_tensor(component: str, path: Path, key: str) -> torch.Tensor:
    index = path / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        if key not in weight_map:
            raise VortexInitializationError(f"{component}: '{path}' has no tensor '{key}'")
        file = path / weight_map[key]
    else:
        file = path / "model.safetensors"
    if not file.exists():
        raise WeightsNotFoundError(
            f"{component}: '{file}' is missing; sharing Flux's text tower reads '{key}' from the "
            "checkpoint's safetensors (pull the repo's model.safetensors)"
        )
    with safe_open(str(file), framework="pt") as f:
        if key not in f.keys():
            raise VortexInitializationError(f"{component}: '{file}' has no tensor '{key}'")
        return f.get_tensor(key)


# ---- text ---------------------------------------------------------------------------------------


def _tokenize(tokenizer: CLIPTokenizer, prompt: str, max_length: int, device: torch.device) -> tuple[dict, bool]:
    """Token ids for one prompt, cut to the tower's context; also says whether it was cut."""
    enc = tokenizer([prompt], truncation=True, max_length=max_length, return_overflowing_tokens=True)
    ids, mask = enc["input_ids"][0], enc["attention_mask"][0]
    inputs = {"input_ids": torch.tensor([ids], device=device), "attention_mask": torch.tensor([mask], device=device)}
    return inputs, len(enc["input_ids"]) > 1


class _OwnTextTower:
    """A CLIP text tower with its projection, loaded from the verifier's own checkpoint."""

    def __init__(self, model: nn.Module, tokenizer: CLIPTokenizer, device: str, max_length: int):
        self.model, self.tokenizer, self.device, self.max_length = model, tokenizer, torch.device(device), max_length

    def embed(self, prompt: str, out_device: torch.device) -> tuple[torch.Tensor, bool]:
        inputs, truncated = _tokenize(self.tokenizer, prompt, self.max_length, self.device)
        return self.model(**inputs).text_embeds.float().to(out_device), truncated

    def owned_modules(self) -> dict[str, nn.Module]:
        return {"text": self.model}


class _BorrowedTextTower:
    """Flux's CLIP-L text tower (not ours to hold) followed by L/14's own text projection."""

    def __init__(self, shared: SharedTextTower, projection: nn.Linear):
        self.shared, self.projection = shared, projection
        self.device = torch.device(shared.device)
        self.max_length = shared.model.config.max_position_embeddings

    def embed(self, prompt: str, out_device: torch.device) -> tuple[torch.Tensor, bool]:
        inputs, truncated = _tokenize(self.shared.tokenizer, prompt, self.max_length, self.device)
        pooled = self.shared.model(**inputs).pooler_output
        return self.projection(pooled.float()).to(out_device), truncated

    def owned_modules(self) -> dict[str, nn.Module]:
        return {"text_projection": self.projection}


def _borrow_text_tower(component: str, path: Path, config: CLIPConfig, shared: SharedTextTower) -> _BorrowedTextTower:
    ours, theirs = config.text_config, shared.model.config
    differ = [f"{name} {getattr(theirs, name, None)} != {getattr(ours, name)}"
              for name in _TEXT_FIELDS if getattr(theirs, name, None) != getattr(ours, name)]
    if differ:
        raise VortexInitializationError(
            f"{component}: the shared text tower is not this checkpoint's text tower ({'; '.join(differ)}); "
            "set models.share_clip_l_text_with_flux to false, or point models.clip_l.source at the CLIP "
            "whose text tower Flux uses (openai/clip-vit-large-patch14)"
        )
    weight = _read_checkpoint_tensor(component, path, "text_projection.weight")
    if tuple(weight.shape) != (config.projection_dim, ours.hidden_size):
        raise VortexInitializationError(
            f"{component}: text_projection.weight has shape {tuple(weight.shape)}, "
            f"expected {(config.projection_dim, ours.hidden_size)}"
        )
    projection = nn.Linear(ours.hidden_size, config.projection_dim, bias=False, device=shared.device)
    with torch.no_grad():
        projection.weight.copy_(weight.float())
    return _BorrowedTextTower(shared, projection.eval())


# ---- one CLIP model -----------------------------------------------------------------------------


@dataclass
class _Clip:
    name: str
    vision: nn.Module
    text: Union[_OwnTextTower, _BorrowedTextTower]
    processor: CLIPImageProcessorPil
    device: torch.device
    pixel_dtype: torch.dtype

    @classmethod
    def load(cls, name: str, cfg: ClipConfig, device: str, cache_dir: Path, size: str,
             shared: Optional[SharedTextTower] = None) -> "_Clip":
        field = f"models.{name}.precision"
        precision = _precision(cfg.precision, field, device)
        path = resolve_weights(
            cfg.source, component=name, cache_dir=cache_dir, revision=cfg.revision, required=["config.json"],
            build_miniature=lambda p: save_miniature_clip(p, size, seed=0),
        )
        config = _clip_config(name, path)
        vision = _load_tower(name, CLIPVisionModelWithProjection, path, config.vision_config, precision, device)
        if shared is not None:
            text = _borrow_text_tower(name, path, config, shared)
        else:
            tokenizer = CLIPTokenizer.from_pretrained(path, local_files_only=True)
            text_model = _load_tower(name, CLIPTextModelWithProjection, path, config.text_config, precision, device)
            text = _OwnTextTower(text_model, tokenizer, device, config.text_config.max_position_embeddings)
        # The PIL backend on purpose: scores must not depend on whether torchvision is installed.
        processor = CLIPImageProcessorPil.from_pretrained(path, local_files_only=True)
        return cls(name, vision, text, processor, torch.device(device), precision.pixel_dtype)

    def pixels(self, images: list[np.ndarray]) -> torch.Tensor:
        batch = self.processor(images=images, return_tensors="pt", input_data_format="channels_last")
        return batch["pixel_values"]

    def image_embeds(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.vision(pixel_values=pixels.to(self.device, self.pixel_dtype))
        return out.image_embeds.float()

    def modules(self) -> dict[str, nn.Module]:
        owned = {"vision": self.vision, **self.text.owned_modules()}
        return {f"{self.name}_{part}": module for part, module in owned.items()}


# ---- the verifier -------------------------------------------------------------------------------


class ClipVerifier:
    """Scores K evenly spread frames against the prompt with both CLIPs, in one batch per model."""

    def __init__(self, clip_b: _Clip, clip_l: _Clip, verification: VerificationConfig):
        self.clip_b, self.clip_l, self.verification = clip_b, clip_l, verification
        # Real B/32 and L/14 preprocess identically (224², same mean/std): process the frames once.
        self._same_pixels = clip_b.processor.to_dict() == clip_l.processor.to_dict()

    @classmethod
    def load(cls, b: ClipConfig, l: ClipConfig, verification: VerificationConfig, device: str, cache_dir: Path,
             shared_l_text: Optional[SharedTextTower] = None) -> "ClipVerifier":
        b_device, l_device = placement_device(b.placement, device), placement_device(l.placement, device)
        _precision(b.precision, "models.clip_b.precision", b_device)  # refuse a bad setting before any loading
        _precision(l.precision, "models.clip_l.precision", l_device)
        clip_b = _Clip.load("clip_b", b, b_device, Path(cache_dir), "b32")
        clip_l = _Clip.load("clip_l", l, l_device, Path(cache_dir), "l14", shared=shared_l_text)
        return cls(clip_b, clip_l, verification)

    @property
    def shares_l_text(self) -> bool:
        return isinstance(self.clip_l.text, _BorrowedTextTower)

    def sample_indices(self, n_frames: int) -> list[int]:
        return evenly_spread_indices(n_frames, self.verification.frames)

    def modules(self) -> dict[str, nn.Module]:
        """The modules this verifier holds (a borrowed text tower is Flux's, so it is not listed)."""
        return {**self.clip_b.modules(), **self.clip_l.modules()}

    def verify(self, frames: np.ndarray, prompt: str, threshold: Optional[float] = None,
               reference: Optional[np.ndarray] = None) -> tuple[VerificationReport, np.ndarray]:
        """Score a whole slot's frames against the prompt: `verify_samples` on its sampled frames."""
        _check_frames(frames)
        indices = self.sample_indices(len(frames))
        return self.verify_samples({i: frames[i] for i in indices}, len(frames), prompt, threshold, reference)

    def verify_samples(self, samples: dict[int, np.ndarray], n_frames: int, prompt: str,
                       threshold: Optional[float] = None,
                       reference: Optional[np.ndarray] = None) -> tuple[VerificationReport, np.ndarray]:
        """Score the sampled frames ({index: (H, W, 3) uint8}, the `sample_indices(n_frames)` taken as
        the slot streamed) against the prompt; return the report and the (512,) B/32 embedding.

        With `reference` (the source portrait, (H, W, 3) uint8), also score each sampled frame's
        image embedding against the portrait's: a collapsed or smeared animation drifts away from
        its own source and fails the identity check."""
        v = self.verification
        threshold = v.ensemble_threshold if threshold is None else float(threshold)
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold}")
        indices = self.sample_indices(n_frames)
        missing = [i for i in indices if i not in samples]
        if missing:
            raise ValueError(f"verification needs the sampled frames {missing} of {n_frames}")
        images = [np.ascontiguousarray(samples[i]) for i in indices]
        _check_frames(np.stack(images[:1]))
        if reference is not None:
            _check_frames(reference[None])
            images.append(np.ascontiguousarray(reference))  # one batch: frames, then the portrait

        with torch.inference_mode():
            pixels_b = self.clip_b.pixels(images)
            pixels_l = pixels_b if self._same_pixels else self.clip_l.pixels(images)
            image_b = F.normalize(self.clip_b.image_embeds(pixels_b), dim=-1)
            image_l = F.normalize(self.clip_l.image_embeds(pixels_l), dim=-1)
            identity = None
            if reference is not None:
                (image_b, ref_b), (image_l, ref_l) = (image_b[:-1], image_b[-1]), (image_l[:-1], image_l[-1])
                identity = (v.weight_b * (image_b @ ref_b) + v.weight_l * (image_l @ ref_l)).cpu().tolist()
            text_b, cut_b = self.clip_b.text.embed(prompt, self.clip_b.device)
            text_l, cut_l = self.clip_l.text.embed(prompt, self.clip_l.device)
            cosine_b = (image_b @ F.normalize(text_b, dim=-1).T).squeeze(1).cpu().tolist()
            cosine_l = (image_l @ F.normalize(text_l, dim=-1).T).squeeze(1).cpu().tolist()
            embedding = F.normalize(image_b.mean(dim=0), dim=0).cpu().numpy().astype(np.float32)

        mean_b, mean_l = float(np.mean(cosine_b)), float(np.mean(cosine_l))
        ensemble = v.weight_b * mean_b + v.weight_l * mean_l
        notes = []
        if len(indices) < v.frames:
            notes.append(f"only {len(indices)} frames to sample (verification.frames is {v.frames})")
        if cut_b or cut_l:
            notes.append("prompt longer than CLIP's 77-token context: scored on its first 77 tokens")
        if threshold > 0.5:
            notes.append(
                f"threshold {threshold:.2f} is on the raw-cosine scale, where a matching image/prompt pair "
                "scores about 0.2-0.35: it will reject nearly everything (honoured as given)"
            )
        identity_ok = identity is None or min(identity) >= v.identity_threshold
        report = VerificationReport(
            frame_indices=indices, cosine_b=cosine_b, cosine_l=cosine_l, mean_b=mean_b, mean_l=mean_l,
            ensemble=ensemble, threshold_b=v.threshold_b, threshold_l=v.threshold_l, threshold=threshold,
            passed=ensemble >= threshold and mean_b >= v.threshold_b and mean_l >= v.threshold_l and identity_ok,
            enforced=v.enforce, notes=notes, clip_identity=identity,
            clip_identity_threshold=None if identity is None else v.identity_threshold,
        )
        return report, embedding


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        shape = getattr(frames, "shape", None)
        dtype = getattr(frames, "dtype", type(frames).__name__)
        raise ValueError(f"frames must be a (N, H, W, 3) uint8 array, got shape {shape} of {dtype}")
    if len(frames) == 0:
        raise ValueError("verification needs at least one frame")
