"""Is the output's face still the portrait's person? dlib's 128-d descriptor, frame by frame.

dlib's ResNet descriptor calls two faces the same person when their Euclidean distance is below
0.6 (99.38% on LFW). K output frames are sampled, the middle frame of each of K equal stretches of
the video, so the start, the middle and the end are all seen; every one must hold a face within
max_distance of the portrait's.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..engine.reports import IdentityReport
from .analyzer import FaceAnalyzer, as_rgb


def sample_indices(n_frames: int, k: int) -> list[int]:
    """The middle frame of each of min(k, n) equal stretches of n frames."""
    if n_frames < 1 or k < 1:
        raise ValueError(f"need at least one frame and k >= 1, got {n_frames} frames and k={k}")
    k = min(k, n_frames)
    return [int((2 * i + 1) * n_frames // (2 * k)) for i in range(k)]


def check_identity(analyzer: FaceAnalyzer, portrait: np.ndarray, frames: np.ndarray, k: int,
                   max_distance: float, enforced: bool, why_not: Optional[str] = None) -> IdentityReport:
    """The portrait's primary face against K sampled frames' primary faces; a frame without a face fails."""
    portrait = as_rgb(portrait, "portrait")
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {getattr(frames, 'shape', None)} "
                         f"{getattr(frames, 'dtype', type(frames).__name__)}")
    indices = sample_indices(frames.shape[0], k)
    not_enforced = None if enforced else why_not
    source_box = analyzer.primary_face(portrait)
    if source_box is None:
        return IdentityReport(passed=False, enforced=enforced, why_not_enforced=not_enforced,
                              notes=["no face found in the source portrait: nothing to compare against"],
                              frame_indices=indices, distances=[None] * len(indices), max_distance=max_distance)
    reference = analyzer.descriptor(portrait, source_box)
    distances: list[Optional[float]] = []
    notes: list[str] = []
    for i in indices:
        frame = as_rgb(frames[i], "frame")
        box = analyzer.primary_face(frame)
        if box is None:
            distances.append(None)
            notes.append(f"frame {i}: no face found")
            continue
        d = float(np.linalg.norm(analyzer.descriptor(frame, box) - reference))
        distances.append(d)
        if d >= max_distance:
            notes.append(f"frame {i}: distance {d:.3f} >= {max_distance}")
    found = [d for d in distances if d is not None]
    passed = len(found) == len(indices) and all(d < max_distance for d in found)
    return IdentityReport(passed=passed, enforced=enforced, why_not_enforced=not_enforced, notes=notes,
                          frame_indices=indices, distances=distances, max_distance=max_distance,
                          worst=max(found) if found else None, faces_found=len(found))
