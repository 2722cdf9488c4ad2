"""Speech → per-frame driving parameters for LivePortrait (lips, blinks, head, breathing, expression).

The contract between the motion driver (this package) and the animator
(vortex.models.liveportrait.animator): deltas relative to the source portrait's own motion
parameters, in LivePortrait's canonical keypoint space, one row per output frame. The animator
composes, for frame i,

    x_d = (scale_s · scale_factor[i]) · (kp_s @ R(pose_s + rotation_delta[i]) + exp_s + exp_delta[i])
          + t_s + translation_delta[i]          (t_z stays 0)

then applies the stitching module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DrivingSequence:
    fps: int
    exp_delta: np.ndarray  # (n, 21, 3) float32, added to the source expression (order 0.01-0.05)
    rotation_delta: np.ndarray  # (n, 3) float32 degrees: pitch, yaw, roll added to the source pose
    translation_delta: np.ndarray  # (n, 3) float32 in the normalised grid [-1, 1]; z is ignored
    scale_factor: np.ndarray  # (n,) float32 multiplying the source scale (breathing: 1 ± a little)
    mouth_open: np.ndarray  # (n,) float32 in [0, 1]: the lip signal that drove exp_delta
    eye_open: np.ndarray  # (n,) float32 in [0, 1]: 1 open, 0 closed
    # The lip-corner signals that drove exp_delta, at frame rate (post-smoothing, gated by speech):
    # None (hand-built sequences) means neutral corners, zeros.
    mouth_spread: np.ndarray | None = None  # (n,) float32 in [0, 1]: "eee", corners pulled out
    mouth_round: np.ndarray | None = None  # (n,) float32 in [0, 1]: "ooo", corners pushed in
    from_template: bool = False  # True when a driving_source template supplied head and eye motion

    @property
    def n_frames(self) -> int:
        return int(self.exp_delta.shape[0])

    def slice(self, start: int, stop: int) -> "DrivingSequence":
        """Frames start..stop-1 (a batch for the renderer)."""
        return DrivingSequence(fps=self.fps, exp_delta=self.exp_delta[start:stop],
                               rotation_delta=self.rotation_delta[start:stop],
                               translation_delta=self.translation_delta[start:stop],
                               scale_factor=self.scale_factor[start:stop], mouth_open=self.mouth_open[start:stop],
                               eye_open=self.eye_open[start:stop], mouth_spread=self.mouth_spread[start:stop],
                               mouth_round=self.mouth_round[start:stop], from_template=self.from_template)

    def __post_init__(self) -> None:
        n = self.exp_delta.shape[0]
        for name in ("mouth_spread", "mouth_round"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.zeros(n, np.float32))  # frozen: set once, here
        shapes = {
            "exp_delta": (self.exp_delta.shape, (n, 21, 3)),
            "rotation_delta": (self.rotation_delta.shape, (n, 3)),
            "translation_delta": (self.translation_delta.shape, (n, 3)),
            "scale_factor": (self.scale_factor.shape, (n,)),
            "mouth_open": (self.mouth_open.shape, (n,)),
            "eye_open": (self.eye_open.shape, (n,)),
            "mouth_spread": (self.mouth_spread.shape, (n,)),
            "mouth_round": (self.mouth_round.shape, (n,)),
        }
        for name, (got, want) in shapes.items():
            if tuple(got) != want:
                raise ValueError(f"DrivingSequence.{name} has shape {tuple(got)}, expected {want}")
