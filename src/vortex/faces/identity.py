"""Is the output's face still the portrait's person? dlib's 128-d descriptor, frame by frame.

dlib's ResNet descriptor calls two faces the same person when their Euclidean distance is below
0.6 (99.38% on LFW). K output frames are sampled, the middle frame of each of K equal stretches of
the video, so the start, the middle and the end are all seen; every one must hold a face within
max_distance of the portrait's.

Cost (2 cores, 512² frames): HOG detection at upsample 1 on the whole frame 88 ms, the descriptor
77 ms. Two things make it cheaper without judging less: the portrait's own descriptor is the same
for every slot of that portrait (kept, by the image's digest); and where the frames are the
portrait with only the face region animated (`region`: the paste-back's footprint), the face is
looked for in that region first (15-20 ms), the whole frame only when it holds none there.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..contracts.reports import IdentityReport
from .analyzer import FaceAnalyzer, FaceBox, as_rgb
from .memo import PortraitMemo, portrait_key

_REFERENCES = PortraitMemo(16)  # portraits (a channel's actors); 512 bytes each


def portrait_descriptor(analyzer: FaceAnalyzer, portrait: np.ndarray) -> Optional[np.ndarray]:
    """The portrait's primary face descriptor (None: no face), computed once per portrait image."""
    portrait = as_rgb(portrait, "portrait")

    def compute() -> Optional[np.ndarray]:
        box = analyzer.primary_face(portrait)
        return None if box is None else analyzer.descriptor(portrait, box)

    return _REFERENCES.get((id(analyzer), portrait_key(portrait)), compute)


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
                 extra: tuple[int, ...] = (), region: Optional[tuple[int, int, int, int]] = None,
                 steady_k: int = 0):
        """`region` (left, top, right, bottom; right and bottom exclusive): where the frames can
        differ from the portrait, searched first for the face. `steady_k`: of the K sampled
        frames, this many (evenly spread) are always measured; the caller may `skip` the others
        while the face track is steady."""
        self.analyzer, self.max_distance = analyzer, max_distance
        self.region = region
        self.indices = sample_indices(n_frames, k)
        self.required = set(_spread(self.indices, steady_k)) if 0 < steady_k < len(self.indices) else set(self.indices)
        self.skipped: list[int] = []
        self._wanted = set(self.indices) | set(extra)
        self.distances: dict[int, Optional[float]] = {}
        self.notes: list[str] = []
        self.reference = portrait_descriptor(analyzer, portrait)

    def wants(self, index: int) -> bool:
        return index in self._wanted

    def optional(self, index: int) -> bool:
        """A sampled frame that may be skipped while the face track is steady."""
        return index in self._wanted and index not in self.required and index in self.indices

    def skip(self, index: int) -> None:
        self.skipped.append(index)

    def measure(self, index: int, frame: np.ndarray) -> None:
        if self.reference is None:
            return
        frame = as_rgb(frame, "frame")
        box = self._face(frame)
        if box is None:
            self.distances[index] = None
            self.notes.append(f"frame {index}: no face found")
            return
        d = float(np.linalg.norm(self.analyzer.descriptor(frame, box) - self.reference))
        self.distances[index] = d
        if d >= self.max_distance:
            self.notes.append(f"frame {index}: distance {d:.3f} >= {self.max_distance}")

    def _face(self, frame: np.ndarray) -> Optional[FaceBox]:
        if self.region is not None:
            left, top, right, bottom = self.region
            box = self.analyzer.primary_face(np.ascontiguousarray(frame[top:bottom, left:right]))
            if box is not None:
                return FaceBox(box.left + left, box.top + top, box.right + left, box.bottom + top, box.score)
        return self.analyzer.primary_face(frame)

    def report(self, enforced: bool, why_not: Optional[str] = None) -> IdentityReport:
        not_enforced = None if enforced else why_not
        if self.reference is None:
            return IdentityReport(passed=False, enforced=enforced, why_not_enforced=not_enforced,
                                  notes=["no face found in the source portrait: nothing to compare against"],
                                  frame_indices=self.indices, distances=[None] * len(self.indices),
                                  max_distance=self.max_distance)
        # the report: the K spread frames only, less those skipped on a steady track
        missing = [i for i in self.indices if i not in self.distances and i not in self.skipped]
        if missing:
            raise ValueError(f"identity: sampled frames {missing} were never measured")
        indices = [i for i in self.indices if i in self.distances]
        distances = [self.distances[i] for i in indices]
        found = [d for d in distances if d is not None]
        passed = len(found) == len(indices) and all(d < self.max_distance for d in found)
        notes = list(self.notes)
        if self.skipped:
            notes.append(f"{len(self.skipped)} of {len(self.indices)} sampled frames not measured: the face track "
                         "was steady (lip-sync landmarks found on every frame before them)")
        return IdentityReport(passed=passed, enforced=enforced, why_not_enforced=not_enforced, notes=notes,
                              frame_indices=indices, distances=distances, max_distance=self.max_distance,
                              worst=max(found) if found else None, faces_found=len(found))


def _spread(indices: list[int], k: int) -> list[int]:
    """k of `indices`, evenly spread, the first and the last among them."""
    if k == 1:
        return [indices[len(indices) // 2]]
    return sorted({indices[round(j * (len(indices) - 1) / (k - 1))] for j in range(k)})


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
