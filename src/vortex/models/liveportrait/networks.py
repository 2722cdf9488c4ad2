"""The seven LivePortrait networks as one bundle, and their on-disk format (the public one).

Layout of a weights folder, as in the KwaiVGI/LivePortrait release (`liveportrait/` of the
Hugging Face repo; the repo root is accepted too):

    base_models/appearance_feature_extractor.pth    F   state dict
    base_models/motion_extractor.pth                M   state dict
    base_models/warping_module.pth                  W   state dict
    base_models/spade_generator.pth                 G   state dict
    retargeting_models/stitching_retargeting_module.pth
        {'retarget_shoulder': S, 'retarget_mouth': lip, 'retarget_eye': eye}, keys prefixed 'module.'

A miniature folder adds `vortex_liveportrait_config.json` (its architecture); without it a
folder is read as the public full-size model. Every file loads with strict=True.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import torch
from torch import Tensor, nn

from ...errors import VortexInitializationError, WeightsNotFoundError
from .appearance_feature_extractor import AppearanceFeatureExtractor
from .config import FULL, LivePortraitModelConfig, NetworkSize, model_config
from .convnextv2 import GRN
from .motion_extractor import MotionExtractor
from .spade_generator import SpadeGenerator
from .stitching_retargeting import RetargetingMLP
from .warping_network import WarpingNetwork

CONFIG_FILE = "vortex_liveportrait_config.json"
BASE_FILES = {
    "F": "base_models/appearance_feature_extractor.pth",
    "M": "base_models/motion_extractor.pth",
    "W": "base_models/warping_module.pth",
    "G": "base_models/spade_generator.pth",
}
RETARGETING_FILE = "retargeting_models/stitching_retargeting_module.pth"
RETARGETING_KEYS = {"stitching": "retarget_shoulder", "retarget_lip": "retarget_mouth", "retarget_eye": "retarget_eye"}
DDP_PREFIX = "module."  # the retargeting MLPs were saved from DataParallel
WEIGHT_FILES = (*BASE_FILES.values(), RETARGETING_FILE)


@dataclass
class LivePortraitNetworks:
    """F, M, W, G (the paper's names) and the three keypoint MLPs, all in eval mode, no grad."""

    config: LivePortraitModelConfig
    F: AppearanceFeatureExtractor  # source image → feature volume (once per source)
    M: MotionExtractor  # image → keypoints, pose, expression (once per source / driving frame)
    W: WarpingNetwork  # feature volume, x_s, x_d → warped features (per frame)
    G: SpadeGenerator  # warped features → 512² image (per frame)
    stitching: RetargetingMLP
    retarget_eye: RetargetingMLP
    retarget_lip: RetargetingMLP

    def named_networks(self) -> Iterator[tuple[str, nn.Module]]:
        for f in dataclasses.fields(self):
            if f.name != "config":
                yield f.name, getattr(self, f.name)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "LivePortraitNetworks":
        for _, network in self.named_networks():
            network.to(device=device, dtype=dtype)
        return self

    def parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in net.parameters()) for name, net in self.named_networks()}

    def state_dicts(self) -> dict[str, dict]:
        """What each weight file holds, keyed by its path inside the weights folder."""
        files: dict[str, dict] = {path: getattr(self, name).state_dict() for name, path in BASE_FILES.items()}
        files[RETARGETING_FILE] = {
            file_key: {DDP_PREFIX + k: v for k, v in getattr(self, name).state_dict().items()}
            for name, file_key in RETARGETING_KEYS.items()
        }
        return files


def build_networks(
    size: NetworkSize | LivePortraitModelConfig = "full",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: Optional[int] = None,
) -> LivePortraitNetworks:
    """Construct the networks with fresh weights (on device 'meta' to inspect shapes for free).

    With `seed`, every tensor is seeded-random, BatchNorm statistics and GRN included, so that no
    block of a miniature is an identity; the global RNG is left as it was.
    """
    config = size if isinstance(size, LivePortraitModelConfig) else model_config(size)
    rng = torch.random.fork_rng(devices=[]) if seed is not None else nullcontext()
    with rng, torch.device(device):
        if seed is not None:
            torch.manual_seed(seed)
        sr = config.stitching_retargeting_module
        networks = LivePortraitNetworks(
            config=config,
            F=AppearanceFeatureExtractor(config.appearance_feature_extractor),
            M=MotionExtractor(config.motion_extractor),
            W=WarpingNetwork(config.warping_module),
            G=SpadeGenerator(config.spade_generator),
            stitching=RetargetingMLP(sr.stitching),
            retarget_eye=RetargetingMLP(sr.eye),
            retarget_lip=RetargetingMLP(sr.lip),
        )
        if seed is not None:
            for _, network in networks.named_networks():
                _randomize_statistics(network)
    return _for_inference(networks.to(dtype=dtype))


def load_networks(
    folder: str | Path,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    config: Optional[LivePortraitModelConfig] = None,
) -> LivePortraitNetworks:
    """Read the five weight files of `folder` (strict=True) into networks on `device` / `dtype`.

    The architecture is `config` if given, else the folder's miniature config file if present,
    else the public full-size one. Missing files raise WeightsNotFoundError; files whose keys or
    shapes differ raise VortexInitializationError naming the file and the keys.
    """
    root = weights_root(folder)
    if config is None:
        config_path = root / CONFIG_FILE
        config = LivePortraitModelConfig.from_json(config_path.read_text()) if config_path.exists() else FULL
    networks = build_networks(config, device="meta")  # no time spent initialising weights that get replaced

    for name, relative in BASE_FILES.items():
        _load_into(getattr(networks, name), _read(root, relative), relative, device, dtype)
    retargeting = _read(root, RETARGETING_FILE)
    for name, file_key in RETARGETING_KEYS.items():
        if file_key not in retargeting:
            raise VortexInitializationError(
                f"LivePortrait weights: {root / RETARGETING_FILE} lacks the state dict '{file_key}' "
                f"(holds {sorted(retargeting)}); expected {sorted(RETARGETING_KEYS.values())}"
            )
        state = {_strip_prefix(k): v for k, v in retargeting[file_key].items()}
        _load_into(getattr(networks, name), state, f"{RETARGETING_FILE}['{file_key}']", device, dtype)
    return _for_inference(networks)


def save_miniature_liveportrait(folder: str | Path, seed: int = 0) -> Path:
    """Write seeded-random miniature networks in the public on-disk layout; returns `folder`."""
    folder = Path(folder)
    networks = build_networks("miniature", seed=seed)
    for relative, state in networks.state_dicts().items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, folder / relative)
    (folder / CONFIG_FILE).write_text(networks.config.to_json())
    return folder


def weights_root(folder: str | Path) -> Path:
    """The folder holding base_models/: `folder` itself or its `liveportrait/` (the HF repo root)."""
    folder = Path(folder).expanduser()
    for candidate in (folder, folder / "liveportrait"):
        if (candidate / "base_models").is_dir():
            return candidate
    raise WeightsNotFoundError(
        f"LivePortrait weights: no base_models/ folder in '{folder}' (nor in its liveportrait/). Expected "
        f"{', '.join(WEIGHT_FILES)} as in the KwaiVGI/LivePortrait release "
        "(`huggingface-cli download KwaiVGI/LivePortrait` while online)."
    )


def _read(root: Path, relative: str) -> dict:
    path = root / relative
    if not path.is_file():
        raise WeightsNotFoundError(f"LivePortrait weights: '{path}' is missing (expected {', '.join(WEIGHT_FILES)})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated download, wrong format, pickle with foreign objects
        raise VortexInitializationError(f"LivePortrait weights: cannot read '{path}': {exc}") from exc
    if not isinstance(state, dict):
        raise VortexInitializationError(
            f"LivePortrait weights: '{path}' holds a {type(state).__name__}, not a state dict"
        )
    return state


def _load_into(network: nn.Module, state: dict[str, Tensor], label: str, device, dtype: torch.dtype) -> None:
    expected = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, Tensor)}
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    wrong_shape = [f"{k} {found[k]} (expected {expected[k]})" for k in sorted(expected.keys() & found.keys())
                   if found[k] != expected[k]]
    if missing or unexpected or wrong_shape:
        problems = [f"{title} ({len(keys)}): {', '.join(keys[:8])}{' …' if len(keys) > 8 else ''}"
                    for title, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                        ("wrong shapes", wrong_shape)) if keys]
        raise VortexInitializationError(
            f"LivePortrait weights: {label} does not match {type(network).__name__}: " + "; ".join(problems)
            + ". Is it the human model of KwaiVGI/LivePortrait (or a miniature with its config file)?"
        )
    converted = {  # integer buffers (num_batches_tracked) keep their dtype
        k: v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device) for k, v in state.items()
    }
    network.load_state_dict(converted, strict=True, assign=True)


def _strip_prefix(key: str) -> str:
    return key[len(DDP_PREFIX):] if key.startswith(DDP_PREFIX) else key


def _for_inference(networks: LivePortraitNetworks) -> LivePortraitNetworks:
    for _, network in networks.named_networks():
        network.eval().requires_grad_(False)
    return networks


@torch.no_grad()
def _randomize_statistics(network: nn.Module) -> None:
    """Seeded, plausible BatchNorm statistics and GRN gains (their defaults make identities)."""
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_(0.0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
        elif isinstance(module, GRN):
            module.gamma.normal_(0.0, 0.1)
            module.beta.normal_(0.0, 0.1)
