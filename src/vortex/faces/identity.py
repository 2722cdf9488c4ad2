"""Is the output's face still the portrait's person? dlib's 128-d descriptor, frame by frame.

dlib's ResNet descriptor calls two faces the same person when their Euclidean distance is below
0.6 (99.38% on LFW). K output frames are sampled, the middle frame of each of K equal stretches of
the video, so the start, the middle and the end are all seen; every one must hold a face within
max_distance of the portrait's.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..contracts.reports import IdentityReport
from .analyzer import FaceAnalyzer, as_rgb


def sample_indices(n_frames: int, k: int) -> list[int]:
    """The middle frame of each of min(k, n) equal stretches of n frames."""
    if n_frames < 1 or k < 1:
        raise ValueError(f"need at least one frame and k >= 1, got {n_frames} frames and k={k}")
    k = min(k, n_frames)
    return [int((2 * i + 1) * n_frames // (2 * k)) for i in range(k)]


class IdentityMeter:
    """The identity check as the frames pass: the sampled frames' descriptors are computed when
    those frames are made; `report` judges the K evenly spread ones. Holds distances, never frames.
    `extra` frames are measured too (a live insert's one frame per chunk), outside the report."""

    def __init__(self, analyzer: FaceAnalyzer, portrait: np.ndarray, n_frames: int, k: int, max_distance: float,
                 extra: tuple[int, ...] = ()):
        self.analyzer, self.max_distance = analyzer, max_distance
        self.indices = sample_indices(n_frames, k)
        self._wanted = set(self.indices) | set(extra)
        self.distances: dict[int, Optional[float]] = {}
        self.notes: list[str] = []
        portrait = as_rgb(portrait, "portrait")
        source_box = analyzer.primary_face(portrait)
        self.reference = None if source_box is None else analyzer.descriptor(portrait, source_box)

    def wants(self, index: int) -> bool:
        return index in self._wanted

    def measure(self, index: int, frame: np.ndarray) -> None:
        if self.reference is None:
            return
        frame = as_rgb(frame, "frame")
        box = self.analyzer.primary_face(frame)
        if box is None:
            self.distances[index] = None
            self.notes.append(f"frame {index}: no face found")
            return
        d = float(np.linalg.norm(self.analyzer.descriptor(frame, box) - self.reference))
        self.distances[index] = d
        if d >= self.max_distance:
            self.notes.append(f"frame {index}: distance {d:.3f} >= {self.max_distance}")

    def report(self, enforced: bool, why_not: Optional[str] = None) -> IdentityReport:
        not_enforced = None if enforced else why_not
        if self.reference is None:
            return IdentityReport(passed=False, enforced=enforced, why_not_enforced=not_enforced,
                                  notes=["no face found in the source portrait: nothing to compare against"],
                                  frame_indices=self.indices, distances=[None] * len(self.indices),
                                  max_distance=self.max_distance)
        missing = [i for i in self.indices if i not in self.distances]  # the report: the K spread frames only
        if missing:
            raise ValueError(f"identity: sampled frames {missing} were never measured")
        distances = [self.distances[i] for i in self.indices]
        found = [d for d in distances if d is not None]
        passed = len(found) == len(self.indices) and all(d < self.max_distance for d in found)
        return IdentityReport(passed=passed, enforced=enforced, why_not_enforced=not_enforced, notes=list(self.notes),
                              frame_indices=self.indices, distances=distances, max_distance=self.max_distance,
                              worst=max(found) if found else None, faces_found=len(found))


def check_identity(analyzer: FaceAnalyzer, portrait: np.ndarray, frames: np.ndarray, k: int,
                   max_distance: float, enforced: bool, why_not: Optional[str] = None) -> IdentityReport:
    """The portrait's primary face against K sampled frames' primary faces; a frame without a face fails."""
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {getattr(frames, 'shape', None)} "
                         f"{getattr(frames, 'dtype', type(frames).__name__)}")
    meter = IdentityMeter(analyzer, portrait, frames.shape[0], k, max_distance)
    for i in meter.indices:
        meter.measure(i, frames[i])
    return meter.report(enforced, why_not)
