"""The full-size architectures, built on the meta device: every shape is real, no memory is used.

Each config is the upstream `config.json`, stored in `vortex/models/configs/` (its `_source` key
says where it came from). Building on meta takes well under a second per model, and the result
is cached per process because the planner re-plans candidate changes.
"""

from __future__ import annotations

import json
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

ClipSize = Literal["b32", "l14"]

_CLIP_CONFIGS = {"b32": "clip-vit-base-patch32", "l14": "clip-vit-large-patch14"}


def full_size_config(name: str) -> dict[str, Any]:
    """An upstream config.json as shipped in vortex/models/configs (with its `_source` key)."""
    text = (resources.files("vortex") / "models" / "configs" / f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def _upstream_keys(config: dict[str, Any]) -> dict[str, Any]:
    # `_source` is ours; diffusers ignores its own `_`-keys but transformers would keep ours.
    return {k: v for k, v in config.items() if k != "_source"}


@lru_cache(maxsize=None)
def flux_transformer() -> nn.Module:
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        return FluxTransformer2DModel.from_config(_upstream_keys(full_size_config("flux1-schnell-transformer"))).eval()


@lru_cache(maxsize=None)
def flux_vae() -> nn.Module:
    from diffusers import AutoencoderKL

    with torch.device("meta"):
        return AutoencoderKL.from_config(_upstream_keys(full_size_config("flux1-schnell-vae"))).eval()


@lru_cache(maxsize=None)
def t5_xxl_encoder() -> nn.Module:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(**_upstream_keys(full_size_config("flux1-schnell-text_encoder_2")))
    with torch.device("meta"):
        return T5EncoderModel(config).eval()


@lru_cache(maxsize=None)
def clip_l_text() -> nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(**_upstream_keys(full_size_config("flux1-schnell-text_encoder")))
    with torch.device("meta"):
        return CLIPTextModel(config).eval()


@lru_cache(maxsize=None)
def clip_model(size: ClipSize) -> nn.Module:
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(**_upstream_keys(full_size_config(_CLIP_CONFIGS[size])))
    with torch.device("meta"):
        return CLIPModel(config).eval()


@lru_cache(maxsize=None)
def kokoro() -> nn.Module:
    """kokoro.KModel at full size. KModel always torch.load()s `model=`: an empty dict loads nothing."""
    from kokoro import KModel

    config = _upstream_keys(full_size_config("kokoro-82m"))
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        with torch.device("meta"):
            return KModel(repo_id="hexgrad/Kokoro-82M", config=config, model=str(empty)).eval()


@lru_cache(maxsize=None)
def liveportrait() -> Any:
    """The seven LivePortrait networks at full size (the public models.yaml), as the animator holds them."""
    from ..models.liveportrait import build_networks

    return build_networks("full", device="meta")


def liveportrait_manifest() -> dict[str, dict[str, list[int]]]:
    """Every key and shape of the five public LivePortrait weight files, flattened per file."""
    text = (resources.files("vortex") / "data" / "liveportrait_state_dicts.json").read_text(encoding="utf-8")
    files = json.loads(text)["files"]
    return {name: dict(_flatten(entries)) for name, entries in files.items()}


def _flatten(entries: dict[str, Any], prefix: str = ""):
    # The stitching file nests three state dicts (shoulder, mouth, eye).
    for key, value in entries.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", list(value)
