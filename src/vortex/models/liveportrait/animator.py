"""The animator: a portrait and a DrivingSequence in, 512² frames out, as a video track.

Once per slot, `prepare` runs F (appearance volume) and M (keypoints, pose, expression) on the
portrait. Per frame, the driving keypoints are composed from the source's own motion and the
sequence's deltas (the contract in `vortex.motion`):

    x_d = (scale_s · scale_factor) · (kp_s @ R(pose_s + rotation_delta) + exp_s + exp_delta)
          + t_s + translation_delta            (t_z stays 0)

then corrected by the stitching MLP, as the public inference does, and W + G render a whole
chunk of frames in one batched call. Frames are converted to uint8 on the device and written
straight into the caller's ring slot; `vortex.engine.render.stream_frames` moves them to the encoder.

Precision is the profile's dtype with no autocast: the networks keep their own fp32 islands
(keypoint geometry, softmax, spectral norm). The keypoint MLPs stay fp32 whatever the profile,
as in the public inference, which runs them outside autocast; they hold 0.23 M parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from ...config import LivePortraitConfig, placement_device
from ...errors import ConfigError
from ...motion import DrivingSequence
from ...weights import resolve_weights
from .camera import headpose_pred_to_degree, transform_keypoint
from .networks import LivePortraitNetworks, load_networks, save_miniature_liveportrait
from .source import SOURCE_SIZE, source_image
from .stitching_retargeting import stitch

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
KEYPOINT_NETWORKS = ("stitching", "retarget_eye", "retarget_lip")


def liveportrait_dtype(precision: str) -> torch.dtype:
    if precision in PRECISIONS:
        return PRECISIONS[precision]
    raise ConfigError(
        f"models.liveportrait.precision: '{precision}' is not supported for LivePortrait (a convolutional "
        f"network; bitsandbytes quantises only Linear layers); use one of {', '.join(PRECISIONS)}"
    )


@dataclass
class SourceState:
    """What F and M say about one portrait; computed once per slot and reused by every frame."""

    image_256: Tensor  # (1, 3, 256, 256) in [0, 1], the network dtype: the crop fed to F and M
    feature: Tensor  # (1, C, D, 64, 64) F's appearance volume, the network dtype
    kp_info: dict[str, Tensor]  # fp32: kp, exp (1, 21, 3); pitch, yaw, roll degrees (1,); t (1, 3); scale (1, 1)
    x_s: Tensor  # (1, 21, 3) fp32: transform_keypoint(kp_info)


@dataclass(frozen=True)
class DrivingRows:
    """A DrivingSequence's per-frame deltas as fp32 tensors on the animator's device (uploaded once)."""

    exp_delta: Tensor  # (n, 21, 3)
    rotation_delta: Tensor  # (n, 3) degrees: pitch, yaw, roll
    translation_delta: Tensor  # (n, 3)
    scale_factor: Tensor  # (n,)

    @classmethod
    def upload(cls, driving: DrivingSequence, device: torch.device | str) -> "DrivingRows":
        arrays = {name: getattr(driving, name) for name in ("exp_delta", "rotation_delta", "translation_delta",
                                                             "scale_factor")}
        for name, array in arrays.items():
            if not np.all(np.isfinite(array)):
                raise ValueError(f"DrivingSequence.{name} holds NaN or infinite values")
        if np.any(arrays["scale_factor"] <= 0):
            raise ValueError("DrivingSequence.scale_factor must be positive (1.0 keeps the source's scale)")
        return cls(**{name: torch.as_tensor(np.asarray(array, dtype=np.float32)).to(device)
                      for name, array in arrays.items()})

    def __len__(self) -> int:
        return self.scale_factor.shape[0]

    def rows(self, start: int, stop: int) -> "DrivingRows":
        return DrivingRows(self.exp_delta[start:stop], self.rotation_delta[start:stop],
                           self.translation_delta[start:stop], self.scale_factor[start:stop])


def compose_driving_keypoints(kp_info: Mapping[str, Tensor], rows: DrivingRows) -> Tensor:
    """(b, 21, 3) fp32 driving keypoints: the source's motion plus each row's deltas."""
    b = len(rows)
    pose = rows.rotation_delta
    driving = {
        "kp": kp_info["kp"].expand(b, -1, -1),
        "pitch": kp_info["pitch"] + pose[:, 0],
        "yaw": kp_info["yaw"] + pose[:, 1],
        "roll": kp_info["roll"] + pose[:, 2],
        "exp": kp_info["exp"] + rows.exp_delta,
        "t": kp_info["t"] + rows.translation_delta,  # transform_keypoint drops t_z
        "scale": kp_info["scale"] * rows.scale_factor[:, None],
    }
    return transform_keypoint(driving)


class LivePortraitAnimator:
    """Holds the networks (and adjusts them: keypoint MLPs to fp32, G to NHWC if asked);
    a vortex.engine.components.Animator."""

    name = "liveportrait"
    crops_face = True  # F and M see the framed face crop; the frames are pasted back into the portrait
    needs_landmarks = False
    batches_streams = True  # W and G take any mix of sources in one batch: concurrent streams share calls

    def __init__(self, networks: LivePortraitNetworks, cfg: LivePortraitConfig, device: str,
                 channels_last: bool = False):
        self.networks = networks
        self.cfg = cfg
        self.device = torch.device(device)
        self.dtype = networks.G.fc.weight.dtype
        for name in KEYPOINT_NETWORKS:
            getattr(networks, name).float()
        # G in NHWC (channels_last): an option for cuDNN's tensor-core kernels, off by default until
        # benchmarks/bench_render.py --channels-last both shows a gain on the card; on the CPU the
        # miniature gained nothing measurable.
        self.channels_last = channels_last
        if channels_last:
            _to_channels_last(networks.G)
        self.output_size = SOURCE_SIZE * networks.config.spade_generator.upscale

    @classmethod
    def load(cls, cfg: LivePortraitConfig, device: str, cache_dir: Path) -> "LivePortraitAnimator":
        """Read the weights named by `cfg.source` (HF repo id, local folder or "miniature") onto the
        device that `cfg.placement` selects: `device` for "cuda" when it is a CUDA device, else the CPU."""
        dtype = liveportrait_dtype(cfg.precision)
        placed = placement_device(cfg.placement, str(device))
        folder = resolve_weights(cfg.source, component="liveportrait", cache_dir=Path(cache_dir),
                                 revision=cfg.revision, build_miniature=save_miniature_liveportrait)
        networks = load_networks(folder, device=placed, dtype=dtype)
        animator = cls(networks, cfg, placed, channels_last=cfg.channels_last)
        if cfg.compile != "off":
            # Static shapes: a slot renders full chunks of batch_frames and at most one shorter tail.
            networks.W = torch.compile(networks.W, mode=cfg.compile, dynamic=False)
            networks.G = torch.compile(networks.G, mode=cfg.compile, dynamic=False)
        return animator

    def modules(self) -> dict[str, nn.Module]:
        return dict(self.networks.named_networks())

    @torch.inference_mode()
    def prepare(self, portrait: np.ndarray, landmarks: np.ndarray | None = None) -> SourceState:
        """F and M on the portrait's 256² crop (see `source.py`: the whole square portrait, resized);
        the landmarks are not needed (M finds its own keypoints)."""
        image = source_image(portrait, self.device, self.dtype)
        feature = self.networks.F(image)
        motion = {k: v.float() for k, v in self.networks.M(image).items()}  # the public code does this too
        kp_info = {
            "kp": motion["kp"].reshape(1, -1, 3),
            "exp": motion["exp"].reshape(1, -1, 3),
            "pitch": headpose_pred_to_degree(motion["pitch"]),
            "yaw": headpose_pred_to_degree(motion["yaw"]),
            "roll": headpose_pred_to_degree(motion["roll"]),
            "t": motion["t"],
            "scale": motion["scale"],
        }
        return SourceState(image_256=image, feature=feature, kp_info=kp_info, x_s=transform_keypoint(kp_info))

    def track(self, source: SourceState, driving: DrivingSequence) -> "LivePortraitTrack":
        return LivePortraitTrack(self, source, DrivingRows.upload(driving, self.device))

    def render(self, source: SourceState, driving: DrivingSequence, out: Tensor) -> None:
        """Frames for `driving`'s rows into `out` (B, 3, 512, 512) uint8, in chunks of batch_frames."""
        self.track(source, driving).render(0, out)

    @torch.inference_mode()
    def render_many(self, items: list[tuple[SourceState, DrivingSequence, Tensor]]) -> None:
        """Several streams' frames through W + G together: each call takes up to batch_frames frames,
        whichever portraits they animate (the warp and the generator are per-frame networks)."""
        x_s, x_d, features, outs = [], [], [], []
        for source, driving, out in items:
            rows = DrivingRows.upload(driving, self.device)
            b = len(rows)
            xs = source.x_s.expand(b, -1, -1)
            xd = compose_driving_keypoints(source.kp_info, rows)
            if self.cfg.stitching:
                xd = stitch(self.networks.stitching, xs, xd)
            x_s.append(xs)
            x_d.append(xd)
            features.append(source.feature.expand(b, *source.feature.shape[1:]))
            outs.extend(out[i] for i in range(b))
        x_s, x_d = torch.cat(x_s), torch.cat(x_d)
        chunk = self.cfg.batch_frames
        for first in range(0, len(outs), chunk):
            last = min(first + chunk, len(outs))
            feature = torch.cat(_frames_of(features, first, last))
            warped = self.networks.W(feature, kp_source=x_s[first:last], kp_driving=x_d[first:last])["out"]
            if self.channels_last:
                warped = warped.contiguous(memory_format=torch.channels_last)
            frames = to_uint8(self.networks.G(warped))
            for i in range(first, last):
                outs[i].copy_(frames[i - first])

    @torch.inference_mode()
    def render_frames(self, source: SourceState, rows: DrivingRows) -> Tensor:
        """One batched W + G call: (b, 3, 512, 512) in [0, 1], the network dtype, for `rows`."""
        b = len(rows)
        x_s = source.x_s.expand(b, -1, -1)
        x_d = compose_driving_keypoints(source.kp_info, rows)
        if self.cfg.stitching:
            x_d = stitch(self.networks.stitching, x_s, x_d)
        feature = source.feature.expand(b, *source.feature.shape[1:])
        warped = self.networks.W(feature, kp_source=x_s, kp_driving=x_d)["out"]
        if self.channels_last:
            warped = warped.contiguous(memory_format=torch.channels_last)
        return self.networks.G(warped)


class LivePortraitTrack:
    """A DrivingSequence rendered on demand: satisfies `vortex.engine.render.VideoTrack`."""

    name = "liveportrait"

    def __init__(self, animator: LivePortraitAnimator, source: SourceState, rows: DrivingRows):
        self.animator = animator
        self.source = source
        self.rows = rows

    @property
    def n_frames(self) -> int:
        return len(self.rows)

    def render(self, start: int, out: Tensor) -> None:
        """Fill `out` (B, 3, 512, 512) uint8 with frames start .. start+B-1, in chunks of batch_frames."""
        a = self.animator
        size = a.output_size
        if out.ndim != 4 or tuple(out.shape[1:]) != (3, size, size) or out.dtype != torch.uint8:
            raise ValueError(f"the frame ring must be (B, 3, {size}, {size}) uint8 (buffers.video), "
                             f"got {tuple(out.shape)} {out.dtype}")
        stop = start + out.shape[0]
        if start < 0 or stop > self.n_frames:
            raise IndexError(f"frames {start}..{stop - 1} asked of a {self.n_frames}-frame driving sequence")
        chunk = a.cfg.batch_frames
        with torch.inference_mode():
            for first in range(start, stop, chunk):
                last = min(first + chunk, stop)
                frames = a.render_frames(self.source, self.rows.rows(first, last))
                out[first - start:last - start].copy_(to_uint8(frames))


def _frames_of(features: list[Tensor], first: int, last: int) -> list[Tensor]:
    """Rows first..last-1 of the streams' (b_k, C, D, H, W) feature views taken as one batch."""
    picked, offset = [], 0
    for f in features:
        a, b = max(first - offset, 0), min(last - offset, f.shape[0])
        if a < b:
            picked.append(f[a:b])
        offset += f.shape[0]
    return picked


def to_uint8(frames: Tensor) -> Tensor:
    """[0, 1] images → uint8, rounded to the nearest level (in fp32: fp16 cannot place x·255 to ±0.5)."""
    return frames.float().clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)


def _to_channels_last(module: nn.Module) -> None:
    with torch.no_grad():
        for param in module.parameters():
            if param.ndim == 4:
                param.data = param.data.contiguous(memory_format=torch.channels_last)
