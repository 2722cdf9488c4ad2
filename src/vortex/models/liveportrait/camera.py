"""Keypoint geometry of LivePortrait: pose bins → degrees → rotation, and the keypoint transform.

These compute the same functions of the same inputs as the public inference
(`src/utils/camera.py` and `LivePortraitWrapper.transform_keypoint`):

    degrees = Σ softmax(66 logits)ᵢ · i · 3 − 97.5
    R       = (Rz(roll) · Ry(yaw) · Rx(pitch))ᵀ, applied to row vectors: x · R
    x       = scale · (kp · R + exp) + (t_x, t_y, 0)
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import NUM_POSE_BINS

BIN_DEGREES = 3.0
BIN_OFFSET_DEGREES = 97.5  # bin i covers [3i − 99, 3i − 96); the expectation is shifted to match


def headpose_pred_to_degree(logits: Tensor) -> Tensor:
    """(B, 66) pose-bin logits → (B,) degrees: the softmax expectation of the bin index."""
    if logits.ndim != 2 or logits.shape[1] != NUM_POSE_BINS:
        raise ValueError(f"expected (B, {NUM_POSE_BINS}) pose logits, got shape {tuple(logits.shape)}")
    probabilities = F.softmax(logits.float(), dim=1)
    index = torch.arange(NUM_POSE_BINS, device=logits.device, dtype=torch.float32)
    degrees = (probabilities * index).sum(dim=1) * BIN_DEGREES - BIN_OFFSET_DEGREES
    return degrees.to(logits.dtype)


def degrees_of(pose: Tensor) -> Tensor:
    """Pose as (B,) degrees, from either 66-bin logits or degrees shaped (B,) / (B, 1)."""
    if pose.ndim == 2 and pose.shape[1] == NUM_POSE_BINS:
        return headpose_pred_to_degree(pose)
    return pose.reshape(pose.shape[0] if pose.ndim else 1)


def get_rotation_matrix(pitch: Tensor, yaw: Tensor, roll: Tensor) -> Tensor:
    """Degrees, each (B,) or (B, 1), → (B, 3, 3) rotation for row vectors: x · R.

    pitch turns about x, yaw about y, roll about z; the matrix is (Rz · Ry · Rx)ᵀ. Computed in
    at least fp32 (half-precision sines would blur small head motions).
    """
    dtype = torch.promote_types(pitch.dtype, torch.float32)
    x, y, z = (degrees_of(angle).to(dtype) * (math.pi / 180) for angle in (pitch, yaw, roll))
    one, zero = torch.ones_like(x), torch.zeros_like(x)

    def matrix(*rows: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)  # (B, 3, 3)

    rot_x = matrix((one, zero, zero), (zero, x.cos(), -x.sin()), (zero, x.sin(), x.cos()))
    rot_y = matrix((y.cos(), zero, y.sin()), (zero, one, zero), (-y.sin(), zero, y.cos()))
    rot_z = matrix((z.cos(), -z.sin(), zero), (z.sin(), z.cos(), zero), (zero, zero, one))
    return (rot_z @ rot_y @ rot_x).transpose(1, 2)


def transform_keypoint(kp_info: Mapping[str, Tensor]) -> Tensor:
    """Canonical keypoints posed, deformed and placed: x = scale · (kp · R + exp) + (t_x, t_y, 0).

    `kp_info` holds 'kp' and 'exp' ((B, 63) or (B, 21, 3)), 'pitch' / 'yaw' / 'roll' (66-bin
    logits or degrees), 't' (B, 3) and 'scale' (B, 1). The depth translation t_z is ignored, as
    in the public inference. Returns (B, 21, 3).
    """
    kp = kp_info["kp"]
    b = kp.shape[0]
    kp = kp.reshape(b, -1, 3)
    rotation = get_rotation_matrix(kp_info["pitch"], kp_info["yaw"], kp_info["roll"]).to(kp.dtype)
    posed = kp @ rotation + kp_info["exp"].reshape(b, -1, 3)
    scaled = posed * kp_info["scale"].reshape(b, 1, 1)
    return scaled + F.pad(kp_info["t"].reshape(b, 1, 3)[..., :2], (0, 1))
