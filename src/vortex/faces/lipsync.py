"""Does the mouth move with the speech? Inner-lip opening by landmarks against the speech's loudness.

Every `step`-th output frame gets dlib's 68 landmarks, as the frame passes (`LipSyncMeter`: one
float per measured frame is kept, never the frames). The HOG detector costs ~70 ms a frame at
512² (upsampled once), so the face is *tracked*: the next frame's box is placed from this frame's
eyes and nose (points 27-47, which do not move when the jaw drops), in the same relation to them
as the detector's box had when the face was last detected; the predictor is trained on the
detector's boxes, so keeping that convention keeps its landmarks stable. The predictor returns
68 points whatever the box holds (on a blank frame, its mean face), so each tracked box is
confirmed by the detector on a small window around it (~1.6 ms); when that fails, the whole frame is
searched again, and a frame where that fails too has no face.

The opening is the mean gap of the inner-lip pairs 61-67, 62-66, 63-65 along the face's vertical
axis, over the inter-ocular distance (so head size and distance do not matter). The loudness is
the RMS of the samples each measured frame spans. Pearson r is taken at every lag within
±max_lag_ms, in steps of the measured frames' period (step / fps), on the overlapping part; the best is
reported. A positive lag: the lips move after the sound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..contracts.reports import LipSyncReport
from .analyzer import FaceAnalyzer, FaceBox, as_rgb
from .framing import LEFT_EYE, RIGHT_EYE, face_axes

STABLE = slice(27, 48)  # nose bridge, nose, both eyes
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper, lower
# The detector's window is 80 px: the confirmation window is scaled so the face is ~90 px wide,
# with a quarter of the box added on each side (1.6 ms a frame, against 3.4 ms for ~100 px and a
# half; both confirmed all 60 sampled frames of the test's talking astronaut).
CONFIRM_FACE_PX = 90.0
CONFIRM_MARGIN = 0.25
CONFIRM_IOU = 0.3  # the least overlap of the detector's box with the tracked one
MIN_PAIRS = 10  # fewer overlapping measurements than this: no r


@dataclass(frozen=True)
class _Anchor:
    """Where the detector's box sits relative to the stable points, in inter-ocular units."""

    dx: float
    dy: float
    width: float
    height: float

    @classmethod
    def of(cls, box: FaceBox, points: np.ndarray) -> "_Anchor":
        centre, scale = _stable_frame(points)
        cx, cy = box.center
        return cls((cx - centre[0]) / scale, (cy - centre[1]) / scale, box.width / scale, box.height / scale)

    def place(self, points: np.ndarray) -> FaceBox:
        centre, scale = _stable_frame(points)
        cx, cy = centre[0] + self.dx * scale, centre[1] + self.dy * scale
        hw, hh = self.width * scale / 2, self.height * scale / 2
        return FaceBox(int(round(cx - hw)), int(round(cy - hh)), int(round(cx + hw)), int(round(cy + hh)))


def _stable_frame(points: np.ndarray) -> tuple[np.ndarray, float]:
    pts = np.asarray(points, dtype=np.float64)
    return pts[STABLE].mean(0), max(_interocular(pts), 1.0)


def _interocular(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[LEFT_EYE].mean(0) - points[RIGHT_EYE].mean(0)))


def lip_opening(points: np.ndarray) -> float:
    """Mean inner-lip gap along the face's vertical axis, in inter-ocular distances (0: closed)."""
    pts = np.asarray(points, dtype=np.float64)
    _, uy = face_axes(pts)
    gaps = [float((pts[lower] - pts[upper]) @ uy) for upper, lower in INNER_LIP_PAIRS]
    return max(float(np.mean(gaps)), 0.0) / max(_interocular(pts), 1.0)


def _iou(a: FaceBox, b: FaceBox) -> float:
    w = min(a.right, b.right) - max(a.left, b.left) + 1
    h = min(a.bottom, b.bottom) - max(a.top, b.top) + 1
    inter = max(w, 0) * max(h, 0)
    return inter / float(a.area + b.area - inter)


def confirm_face(analyzer: FaceAnalyzer, frame: np.ndarray, box: FaceBox) -> Optional[FaceBox]:
    """The detector's box overlapping `box`, found in a small window around it, or None."""
    import cv2

    h, w = frame.shape[:2]
    mx, my = CONFIRM_MARGIN * box.width, CONFIRM_MARGIN * box.height
    x0, y0 = max(int(box.left - mx), 0), max(int(box.top - my), 0)
    x1, y1 = min(int(box.right + mx) + 1, w), min(int(box.bottom + my) + 1, h)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    f = CONFIRM_FACE_PX / max(box.width, 1)
    window = frame[y0:y1, x0:x1]
    size = (max(int(round((x1 - x0) * f)), 1), max(int(round((y1 - y0) * f)), 1))
    small = cv2.resize(window, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    found = analyzer.detect_at(small, upsample=0)
    boxes = [FaceBox(int(round(b.left / f)) + x0, int(round(b.top / f)) + y0, int(round(b.right / f)) + x0,
                     int(round(b.bottom / f)) + y0, b.score) for b in found]
    best = max(boxes, key=lambda b: _iou(b, box), default=None)
    return best if best is not None and _iou(best, box) >= CONFIRM_IOU else None


@dataclass
class _Tracker:
    analyzer: FaceAnalyzer
    box: Optional[FaceBox]
    anchor: Optional[_Anchor] = None

    def points(self, frame: np.ndarray) -> Optional[np.ndarray]:
        """This frame's 68 landmarks, or None when it holds no face."""
        if self.box is not None:
            found = confirm_face(self.analyzer, frame, self.box)
            if found is not None and self.anchor is None:  # a hint: measure on the detector's own box
                return self._measure(frame, found, detected=found)
            if found is not None:
                return self._measure(frame, self.box, detected=None)
        found = self.analyzer.primary_face(frame)  # lost (or never found): search the whole frame
        if found is None:
            return None
        return self._measure(frame, found, detected=found)

    def _measure(self, frame: np.ndarray, box: FaceBox, detected: Optional[FaceBox]) -> np.ndarray:
        pts = self.analyzer.landmarks(frame, box)
        if detected is not None:  # a detector's box: learn where it sits relative to the face
            self.anchor = _Anchor.of(detected, pts)
        self.box = self.anchor.place(pts)
        return pts


def frame_envelope(waveform: np.ndarray, sample_rate: int, fps: float, frame_indices: np.ndarray) -> np.ndarray:
    """RMS of the samples each listed video frame spans, [i/fps, (i+1)/fps) (zero past the end)."""
    squares = np.concatenate([[0.0], np.cumsum(np.asarray(waveform, dtype=np.float64) ** 2)])
    n = len(waveform)
    a = np.clip(np.round(frame_indices * sample_rate / fps), 0, n).astype(np.int64)
    b = np.clip(np.round((frame_indices + 1) * sample_rate / fps), 0, n).astype(np.int64)
    span = np.maximum(b - a, 1)
    return np.sqrt(np.maximum(squares[b] - squares[a], 0.0) / span)


def pearson(x: np.ndarray, y: np.ndarray) -> Optional[float]:
    """Pearson r over the pairs where both are finite; None with too few pairs or a flat series."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < MIN_PAIRS:
        return None
    x, y = x[ok] - x[ok].mean(), y[ok] - y[ok].mean()
    denom = np.sqrt((x @ x) * (y @ y))
    return None if denom < 1e-12 else float((x @ y) / denom)


def best_lag(opening: np.ndarray, envelope: np.ndarray, max_lag: int) -> tuple[Optional[float], int]:
    """(r, lag) maximising r of opening[j] against envelope[j - lag] for |lag| <= max_lag."""
    best: tuple[Optional[float], int] = (None, 0)
    n = len(opening)
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            r = pearson(opening[lag:], envelope[:n - lag])
        else:
            r = pearson(opening[:n + lag], envelope[-lag:])
        if r is not None and (best[0] is None or r > best[0]):
            best = (r, lag)
    return best


class LipSyncMeter:
    """The lip-sync check as the frames pass: the opening of every step-th frame as it is made,
    and at the end (`report`) its correlation with the speech's loudness. Holds one float per
    measured frame, never the frames."""

    def __init__(self, analyzer: FaceAnalyzer, n_frames: int, *, step: int, box_hint: Optional[FaceBox] = None):
        if n_frames < 1 or step < 1:
            raise ValueError(f"n_frames and step must be positive, got {n_frames}, {step}")
        self.step = step
        self.indices = np.arange(0, n_frames, step)
        self.opening = np.full(len(self.indices), np.nan)
        self._tracker = _Tracker(analyzer, box_hint)
        self._next = 0  # the next index of `indices` to measure

    def wants(self, index: int) -> bool:
        return index % self.step == 0

    def steady(self) -> bool:
        """A face found on every frame measured so far (and at least two measured)."""
        return self._next >= 2 and not np.isnan(self.opening[:self._next]).any()

    def measure(self, index: int, frame: np.ndarray) -> None:
        """Frame `index` (one that `wants`), in order."""
        k = index // self.step
        if k != self._next:
            raise ValueError(f"lip sync: frame {index} arrived out of order (expected {self._next * self.step})")
        pts = self._tracker.points(as_rgb(frame, "frame"))
        if pts is not None:
            self.opening[k] = lip_opening(pts)
        self._next += 1

    def report(self, waveform: np.ndarray, sample_rate: int, fps: float, *, max_lag_ms: float, floor: float,
               enforced: bool, why_not: Optional[str] = None) -> LipSyncReport:
        wave = np.asarray(waveform, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"waveform must be 1-D (mono samples), got shape {wave.shape}")
        if sample_rate <= 0 or fps <= 0:
            raise ValueError(f"sample_rate and fps must be positive, got {sample_rate}, {fps}")
        if self._next != len(self.indices):
            raise ValueError(f"lip sync: {self._next} of {len(self.indices)} frames were measured")
        envelope = frame_envelope(wave, sample_rate, fps, self.indices)
        missing = int(np.isnan(self.opening).sum())
        max_lag = int(np.floor(max_lag_ms / 1000 * fps / self.step + 1e-9))
        r, lag = best_lag(self.opening, envelope, max_lag)
        notes = []
        if missing:
            notes.append(f"no face in {missing} of {len(self.indices)} measured frames")
        if r is None:
            notes.append("no r: too few measured frames with a face, or the lips or the speech did not vary")
        elif r < floor:
            notes.append(f"r {r:.2f} is below the floor {floor:.2f}")
        return LipSyncReport(passed=r is not None and r >= floor, enforced=enforced,
                             why_not_enforced=None if enforced else why_not, notes=notes, r=r,
                             lag_ms=lag * self.step / fps * 1000.0, floor=floor, frames_measured=len(self.indices),
                             frames_without_face=missing, step=self.step, max_lag_ms=max_lag_ms)


def measure_lip_sync(analyzer: FaceAnalyzer, frames: np.ndarray, waveform: np.ndarray, sample_rate: int,
                     fps: float, *, step: int, max_lag_ms: float, floor: float, enforced: bool,
                     why_not: Optional[str] = None, box_hint: Optional[FaceBox] = None) -> LipSyncReport:
    """Landmarks on every step-th frame of a whole slot, lip opening vs speech RMS (the meter at once)."""
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, H, W, 3) uint8, got {getattr(frames, 'shape', None)} "
                         f"{getattr(frames, 'dtype', type(frames).__name__)}")
    meter = LipSyncMeter(analyzer, frames.shape[0], step=step, box_hint=box_hint)
    for i in meter.indices:
        meter.measure(int(i), frames[i])
    return meter.report(waveform, sample_rate, fps, max_lag_ms=max_lag_ms, floor=floor, enforced=enforced,
                        why_not=why_not)
