"""The preview animator: a landmark mesh warp of the framed face crop (no weights, no GPU)."""

from .animator import CROP_SIZE, PreviewAnimator, PreviewSource, PreviewTrack
from .deform import Pose

__all__ = ["CROP_SIZE", "PreviewAnimator", "PreviewSource", "PreviewTrack", "Pose"]
