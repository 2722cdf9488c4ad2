"""Face analysis with dlib: LivePortrait-style framing and paste-back, the identity and lip-sync checks.

Light on import: dlib, cv2 and torch load only when a function that needs them runs, so `vortex`
commands start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .analyzer import FaceAnalyzer, FaceBox
    from .framing import Framing, frame_portrait
    from .identity import check_identity
    from .lipsync import measure_lip_sync

_EXPORTS = {
    "FaceAnalyzer": "analyzer",
    "FaceBox": "analyzer",
    "models_folder": "analyzer",
    "Framing": "framing",
    "frame_portrait": "framing",
    "framing_from_landmarks": "framing",
    "check_identity": "identity",
    "IdentityMeter": "identity",
    "sample_indices": "identity",
    "measure_lip_sync": "lipsync",
    "LipSyncMeter": "lipsync",
    "lip_opening": "lipsync",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vortex.faces' has no attribute '{name}'")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
