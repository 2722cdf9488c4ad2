"""The torch backend: kokoro.KModel on hexgrad/Kokoro-82M's files, with a strict key-set check."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from ...config import KokoroConfig
from ...errors import ConfigError, VortexInitializationError
from ...weights import resolve_weights
from ..miniature.kokoro import save_miniature_kokoro
from .common import CONTEXT_PHONEMES, _check_pack_shape, _few, _missing_packs


class TorchKokoro:
    CHECKPOINT = "kokoro-v1_0.pth"

    def __init__(self, kmodel: torch.nn.Module, packs: dict[str, torch.Tensor], device: str) -> None:
        self.kmodel = kmodel
        self.packs = packs
        self.device = device
        self.vocab: dict[str, int] = dict(kmodel.vocab)
        self.context = min(kmodel.context_length - 2, CONTEXT_PHONEMES)

    @classmethod
    def load(cls, cfg: KokoroConfig, device: str, cache_dir: Path, pack_names: list[str]) -> "TorchKokoro":
        if cfg.precision != "fp32":
            raise ConfigError(f"models.kokoro.precision: the torch backend runs Kokoro in fp32 (got '{cfg.precision}')")
        folder = resolve_weights(
            cfg.source, component="kokoro", cache_dir=cache_dir, revision=cfg.revision,
            required=["config.json", cls.CHECKPOINT], build_miniature=save_miniature_kokoro,
        )
        packs = _load_voice_packs(folder, pack_names)  # first: a misnamed pack fails before the slow part
        kmodel = _load_kmodel(folder, cfg.source)
        try:
            kmodel.to(device)
        except (RuntimeError, AssertionError) as exc:  # e.g. a CUDA device that is not there
            raise VortexInitializationError(f"kokoro: cannot move the model to '{device}': {exc}") from None
        return cls(kmodel, {name: pack.to(device) for name, pack in packs.items()}, device)

    def raw_durations(self, token_ids: tuple[int, ...], pack: str) -> np.ndarray:
        """(len + 2,) float32: the duration predictor's output before the speed divides it (pads
        included), computed by KModel's own submodules as `forward_with_tokens` does, so that
        max(1, round(raw / speed)) are the durations a synthesis at that speed will have."""
        k = self.kmodel
        style = self.packs[pack][len(token_ids) - 1]
        tokens = torch.tensor([[0, *token_ids, 0]], dtype=torch.long, device=self.device)
        lengths = torch.full((1,), tokens.shape[-1], dtype=torch.long, device=self.device)
        mask = torch.zeros_like(tokens, dtype=torch.bool)  # one sentence, no padding
        with torch.inference_mode():
            d_en = k.bert_encoder(k.bert(tokens, attention_mask=(~mask).int())).transpose(-1, -2)
            d = k.predictor.text_encoder(d_en, style[:, 128:], lengths, mask)
            x, _ = k.predictor.lstm(d)
            raw = torch.sigmoid(k.predictor.duration_proj(x)).sum(axis=-1)
        return raw.float().cpu().numpy().reshape(-1)

    def call_handle(self) -> None:
        return None  # a torch call (a CUDA kernel queue) runs to its end: it cannot be stopped

    def infer(self, token_ids: tuple[int, ...], pack: str, speed: float, seed: int,
              wide: bool = False, handle: None = None) -> tuple[np.ndarray, np.ndarray]:
        """`wide` and `handle` are the onnx backend's (more threads for one call; a stoppable call)."""
        style = self.packs[pack][len(token_ids) - 1]  # (1, 256): the row for this sentence length
        tokens = torch.tensor([[0, *token_ids, 0]], dtype=torch.long, device=self.device)
        cuda = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
        # The harmonic source draws noise from the global RNG: seed it without disturbing others'.
        with torch.random.fork_rng(devices=cuda), torch.inference_mode():
            torch.manual_seed(seed)
            audio, durations = self.kmodel.forward_with_tokens(tokens, style, speed)
        return audio.float().cpu().numpy().reshape(-1), durations.cpu().numpy().astype(np.int64).reshape(-1)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"kokoro": self.kmodel}


def _load_kmodel(folder: Path, source: str) -> torch.nn.Module:
    from kokoro import KModel

    checkpoint = folder / TorchKokoro.CHECKPOINT
    saved = _checkpoint_keys(checkpoint)
    try:
        with warnings.catch_warnings():  # KModel's own construction warnings (weight_norm, LSTM dropout)
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            kmodel = KModel(repo_id="hexgrad/Kokoro-82M", config=str(folder / "config.json"), model=str(checkpoint))
    except (AssertionError, RuntimeError, KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise VortexInitializationError(
            f"kokoro: '{folder}' (models.kokoro.source '{source}') cannot be loaded by kokoro.KModel: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    _check_keys(kmodel, saved, checkpoint)
    return kmodel.eval()


def _checkpoint_keys(path: Path) -> dict[str, set[str]]:
    """Each submodule's saved key names, read without loading the tensors (mmap)."""
    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a legacy (non-zip) checkpoint cannot be memory-mapped
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VortexInitializationError(f"kokoro: cannot read '{path}': {type(exc).__name__}: {exc}") from None
    if not isinstance(checkpoint, dict) or not all(isinstance(v, dict) for v in checkpoint.values()):
        raise VortexInitializationError(f"kokoro: '{path}' is not a {{submodule: state_dict}} checkpoint")
    return {name: {k.removeprefix("module.") for k in sd} for name, sd in checkpoint.items()}


def _check_keys(kmodel: torch.nn.Module, saved: dict[str, set[str]], path: Path) -> None:
    problems = []
    children = dict(kmodel.named_children())
    for name in sorted(set(saved) - set(children)):
        problems.append(f"unexpected submodule '{name}'")
    for name, child in children.items():
        if name not in saved:
            problems.append(f"missing submodule '{name}'")
            continue
        expected = set(child.state_dict())
        missing, unexpected = sorted(expected - saved[name]), sorted(saved[name] - expected)
        if missing:
            problems.append(f"{name}: missing {_few(missing)}")
        if unexpected:
            problems.append(f"{name}: unexpected {_few(unexpected)}")
    if problems:
        raise VortexInitializationError(
            f"kokoro: '{path}' does not match the architecture in its config.json "
            f"(kokoro.KModel would load it partially, leaving random weights): {'; '.join(problems)}"
        )


def _load_voice_packs(folder: Path, names: list[str]) -> dict[str, torch.Tensor]:
    voices = folder / "voices"
    missing = [n for n in names if not (voices / f"{n}.pt").is_file()]
    if missing:
        available = sorted(p.stem for p in voices.glob("*.pt")) if voices.is_dir() else []
        raise _missing_packs(missing, f"'{voices}'", available)
    packs = {}
    for name in names:
        pack = torch.load(voices / f"{name}.pt", map_location="cpu", weights_only=True)
        _check_pack_shape(name, tuple(pack.shape))
        packs[name] = pack.float()
    return packs
