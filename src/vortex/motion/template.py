"""LivePortrait motion templates (.pkl) as a driving source: head and eye motion from real footage.

The public LivePortrait writes a template per driving video:
``{n_frames, output_fps, motion: [{scale, R, exp, t, kp, x_s}], c_eyes_lst, c_lip_lst}``; older
files name the rotation ``R_d`` and the ratio lists ``c_d_eyes_lst`` / ``c_d_lip_lst``. Like the
public pipeline's relative mode, motion is taken relative to the template's first frame: rotation
as pitch/yaw/roll differences (the inverse of `camera.get_rotation_matrix`), translation and
expression as differences, scale as a ratio.

The template is resampled to the slot's fps by linear interpolation; a slot longer than the
template plays it forwards and backwards (ping-pong), which keeps the motion continuous.

A template is a pickle, which can run code when loaded: it is only ever read from the path the
user gave in their recipe (their own file), never fetched.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RecipeError

FIELD = "visual_track.driving_source"
# Real footage moves more than the idle driver, but a template must not tear the face either.
ANGLE_BOUND_DEG = 25.0
TRANSLATION_BOUND = 0.15
SCALE_BOUNDS = (0.8, 1.25)


@dataclass(frozen=True)
class MotionTemplate:
    fps: float
    angles: np.ndarray  # (m, 3) degrees: pitch, yaw, roll
    exp: np.ndarray  # (m, 21, 3)
    translation: np.ndarray  # (m, 3)
    scale: np.ndarray  # (m,)
    eye_ratio: np.ndarray | None  # (m,) mean eye-open ratio of both eyes, when the template has it

    @property
    def n_frames(self) -> int:
        return len(self.scale)


@dataclass(frozen=True)
class TemplateMotion:
    """Deltas from the template's first frame, one row per slot frame."""

    rotation: np.ndarray  # (n, 3) degrees
    translation: np.ndarray  # (n, 3), z zero
    scale: np.ndarray  # (n,)
    exp: np.ndarray  # (n, 21, 3)
    eye_open: np.ndarray | None  # (n,) 0..1 from the template's eye ratios


def rotation_to_degrees(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) row-vector rotations built as (Rz·Ry·Rx)ᵀ → (..., 3) pitch, yaw, roll degrees."""
    M = np.swapaxes(np.asarray(R, dtype=np.float64), -1, -2)  # Rz · Ry · Rx
    pitch = np.arctan2(M[..., 2, 1], M[..., 2, 2])
    yaw = np.arctan2(-M[..., 2, 0], np.hypot(M[..., 2, 1], M[..., 2, 2]))
    roll = np.arctan2(M[..., 1, 0], M[..., 0, 0])
    return np.degrees(np.stack([pitch, yaw, roll], axis=-1))


def load_template(path: str | Path) -> MotionTemplate:
    path = Path(path).expanduser()
    if not path.is_file():
        raise RecipeError(FIELD, f"motion template {str(path)!r} does not exist (give the path of a LivePortrait .pkl template)")
    try:
        with path.open("rb") as handle:
            data = pickle.load(handle)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means the file is not a template
        raise RecipeError(FIELD, f"cannot read motion template {str(path)!r}: {type(error).__name__}: {error}") from None
    try:
        return _parse(data)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise RecipeError(FIELD, f"{str(path)!r} is not a LivePortrait motion template ({error})") from None


def _parse(data: object) -> MotionTemplate:
    if not isinstance(data, dict) or "motion" not in data:
        raise ValueError("expected a dict with a 'motion' list of per-frame dicts")
    frames = list(data["motion"])
    if not frames:
        raise ValueError("'motion' is empty")

    def stacked(key: str, *alternatives: str, shape: tuple[int, ...]) -> np.ndarray:
        name = next((k for k in (key, *alternatives) if k in frames[0]), None)
        if name is None:
            raise KeyError(f"frames have no {' / '.join((key, *alternatives))!r}")
        values = np.stack([np.asarray(f[name], dtype=np.float64).reshape(shape) for f in frames])
        if not np.isfinite(values).all():
            raise ValueError(f"'{name}' holds non-finite values")
        return values

    rotations = stacked("R", "R_d", shape=(3, 3))
    fps = float(data.get("output_fps", 25))
    if not fps > 0:
        raise ValueError(f"output_fps must be positive (got {fps})")
    eyes = data.get("c_eyes_lst", data.get("c_d_eyes_lst"))
    eye_ratio = None
    if eyes is not None and len(eyes) == len(frames):
        eye_ratio = np.array([float(np.mean(np.asarray(e, dtype=np.float64))) for e in eyes])
    return MotionTemplate(
        fps=fps, angles=rotation_to_degrees(rotations), exp=stacked("exp", shape=(21, 3)),
        translation=stacked("t", shape=(3,)), scale=stacked("scale", shape=()), eye_ratio=eye_ratio,
    )


def follow_template(template: MotionTemplate, n_frames: int, fps: int) -> TemplateMotion:
    position = _ping_pong(np.arange(n_frames) / fps * template.fps, template.n_frames)

    def sample(values: np.ndarray) -> np.ndarray:
        flat = values.reshape(len(values), -1)
        if len(values) == 1:
            return np.repeat(flat, n_frames, axis=0).reshape((n_frames, *values.shape[1:]))
        steps = np.arange(len(values))
        cols = [np.interp(position, steps, flat[:, j]) for j in range(flat.shape[1])]
        return np.stack(cols, axis=1).reshape((n_frames, *values.shape[1:]))

    rotation = np.clip(sample(template.angles - template.angles[0]), -ANGLE_BOUND_DEG, ANGLE_BOUND_DEG)
    translation = np.clip(sample(template.translation - template.translation[0]), -TRANSLATION_BOUND, TRANSLATION_BOUND)
    translation[:, 2] = 0.0  # t_z is not used by LivePortrait
    first_scale = template.scale[0] if template.scale[0] > 0 else 1.0
    scale = np.clip(sample(template.scale / first_scale), *SCALE_BOUNDS)
    exp = sample(template.exp - template.exp[0])
    eye_open = None
    if template.eye_ratio is not None:
        reference = max(float(np.percentile(template.eye_ratio, 90)), 1e-3)  # the eyes' usual open ratio
        eye_open = np.clip(sample(template.eye_ratio) / reference, 0.0, 1.0)
    return TemplateMotion(rotation, translation, scale, exp, eye_open)


def _ping_pong(position: np.ndarray, length: int) -> np.ndarray:
    if length <= 1:
        return np.zeros_like(position)
    period = 2 * (length - 1)
    folded = np.mod(position, period)
    return np.where(folded > length - 1, period - folded, folded)
