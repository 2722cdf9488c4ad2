"""The preview animator: a framed face crop warped by a piecewise-affine mesh, driven by a
DrivingSequence. No weights and no GPU; named "preview" wherever it appears, never LivePortrait.

    prepare(crop, landmarks)  once per slot: the mesh (Delaunay, computed once), lid colours,
                              the mouth's own inner gap (a smile that already shows teeth keeps them)
    track(source, driving)    a VideoTrack whose render() fills (B, 3, S, S) uint8 crops

Per frame: the vertices move (see `deform`), one dense inverse map is rebuilt inside the moving
triangles' box (`mesh.InverseMap`), one cv2.remap per channel warps that box, and two small paints
finish it: a dark mouth cavity inside the inner lips (60-67) and skin-coloured lids over closing eyes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from ...motion import DrivingSequence
from .deform import Deformer, Pose
from .mesh import FaceMesh, InverseMap, build_mesh

CROP_SIZE = 512
CAVITY_RGB = (30, 12, 15)  # the dark of an open mouth, at its top
TONGUE_RGB = (96, 42, 46)  # ... shading to a hint of tongue at its bottom
TONGUE_FROM = 0.55  # share of the cavity's height where the shading towards the tongue starts
CHAIKIN_PASSES = 2  # corner cutting of the inner-lip polygon: a rounded opening, never outside the lips
TEETH_RGB = (212, 204, 192)  # painted upper teeth, only when the source's mouth shows none
LASH_RGB = (58, 40, 36)  # the line of a closed eye's lashes
CAVITY_FADE_PX = 4.0  # the cavity fades in over the first 4 px of added opening
TEETH_SHARE = 0.5  # the source's own teeth: the upper half of its inner gap stays warped texture
PAINTED_TEETH = 0.09  # mouth widths of painted upper teeth (a source with closed lips)
TEETH_OVERLAP_PX = 3.0  # the teeth band starts this far above the upper inner lip
OWN_TEETH_PX = 3.0  # a source inner gap above 3 px shows its own teeth
LID_FADE = (0.55, 0.9)  # closure at which the painted lid starts, and where it is fully opaque
LID_SAMPLE = 0.4  # the lid colour: sampled this far from the upper lid towards the brow (and as far below)
AA_SHIFT = 4  # sub-pixel bits for the painted polygons
INNER_LIPS = tuple(range(60, 68))
EYES = (tuple(range(36, 42)), tuple(range(42, 48)))  # each eye's 6 contour points, dlib order
EYE_BROWS = ((37, 38, 19, 20), (43, 44, 23, 24))  # upper-lid points and the brow points above them
LOWER_OF = {37: 41, 38: 40, 43: 47, 44: 46}  # the lower-lid point under each upper-lid one


@dataclass(frozen=True)
class PreviewSource:
    """One framed face, prepared once per slot."""

    pixels: np.ndarray  # (S, S, 3) uint8 RGB crop: what the warp samples
    planes: np.ndarray  # (3, S, S) the same crop as planes: what an unmoved frame copies
    landmarks: np.ndarray  # (68, 2) float32 crop pixels
    mesh: FaceMesh
    lid_rgb: tuple[np.ndarray, np.ndarray]  # (3,) float32 lid colour per eye (skin above and below it)
    source_gap: float  # px: the source's own inner-lip gap (62 to 66)
    deformer: Deformer  # the mesh's vertex moves
    inverse: InverseMap  # its dense inverse map (scratch buffers: one renderer at a time)


class PreviewAnimator:
    """The mesh-warp animator for machines without LivePortrait's weights or a GPU
    (vortex.engine.components.Animator)."""

    name = "preview"
    crops_face = True  # it animates the framed face crop, pasted back into the portrait
    needs_landmarks = True  # the mesh is built over the crop's 68 landmarks
    batches_streams = False  # frame by frame on the CPU: nothing to gain from one call over streams

    def __init__(self, size: int = CROP_SIZE):
        self.size = size

    @classmethod
    def load(cls, cfg: Any = None) -> "PreviewAnimator":
        """The same shape as the LivePortrait animator's `load`; there are no weights to read."""
        return cls()

    def modules(self) -> dict[str, torch.nn.Module]:
        return {}

    def prepare(self, crop: np.ndarray, landmarks: np.ndarray | None) -> PreviewSource:
        s = self.size
        crop = np.asarray(crop)
        if crop.shape != (s, s, 3) or crop.dtype != np.uint8:
            raise ValueError(f"crop must be a ({s}, {s}, 3) uint8 RGB face crop, got {crop.shape} {crop.dtype}")
        if landmarks is None:
            raise ValueError("the preview animator needs the face's 68 landmarks: faces.framing must be on")
        points = np.asarray(landmarks, dtype=np.float32)
        mesh = build_mesh(points, s)
        lid = tuple(_lid_colour(crop, points, upper, brow) for upper, brow in
                    ((EYE_BROWS[0][:2], EYE_BROWS[0][2:]), (EYE_BROWS[1][:2], EYE_BROWS[1][2:])))
        gap = float(max(0.0, points[66, 1] - points[62, 1]))
        return PreviewSource(np.ascontiguousarray(crop), np.ascontiguousarray(crop.transpose(2, 0, 1)), points, mesh,
                             lid, gap, Deformer(mesh), InverseMap(mesh))

    def render(self, source: PreviewSource, driving: DrivingSequence, out: torch.Tensor) -> None:
        """Frames for `driving`'s rows into `out` (B, 3, S, S) uint8 on the CPU."""
        PreviewTrack(source, driving).render(0, out)

    def track(self, source: PreviewSource, driving: DrivingSequence) -> "PreviewTrack":
        return PreviewTrack(source, driving)


def _lid_colour(crop: np.ndarray, points: np.ndarray, upper: tuple[int, int], brow: tuple[int, int]) -> np.ndarray:
    """The skin of the lid: the mean of the skin above the upper lid (bright) and below the lower lid
    (shadowed), each a median, so a stray lash or crease does not tint it."""
    lid, above = points[list(upper)].mean(axis=0), points[list(brow)].mean(axis=0)
    lower = points[[LOWER_OF[k] for k in upper]].mean(axis=0)
    reach = LID_SAMPLE * (above - lid)
    half_w = max(2, int(0.25 * abs(points[upper[1], 0] - points[upper[0], 0]) + 2))
    half_h = max(1, int(0.15 * abs(above[1] - lid[1])))
    samples = []
    for centre in (lid + reach, lower - 0.5 * reach):
        x, y = int(round(centre[0])), int(round(centre[1]))
        patch = crop[max(0, y - half_h):y + half_h + 1, max(0, x - half_w):x + half_w + 1].reshape(-1, 3)
        samples.append(np.median(patch, axis=0))
    return np.mean(samples, axis=0).astype(np.float32)


class PreviewTrack:
    """A DrivingSequence rendered on demand into S × S crops: satisfies `vortex.engine.render.VideoTrack`."""

    name = "preview"

    def __init__(self, source: PreviewSource, driving: DrivingSequence):
        self.source = source
        self.poses = _poses(driving)
        self.deformer = source.deformer
        self.inverse = source.inverse
        self.size = source.mesh.size

    @property
    def n_frames(self) -> int:
        return len(self.poses)

    def render(self, start: int, out: torch.Tensor) -> None:
        """Fill `out` (B, 3, S, S) uint8 (CPU) with frames start .. start+B-1."""
        s = self.size
        if out.ndim != 4 or tuple(out.shape[1:]) != (3, s, s) or out.dtype != torch.uint8:
            raise ValueError(f"the frame ring must be (B, 3, {s}, {s}) uint8, got {tuple(out.shape)} {out.dtype}")
        if out.device.type != "cpu":
            raise ValueError(f"the preview renders on the CPU; the frame ring is on {out.device}")
        stop = start + out.shape[0]
        if start < 0 or stop > self.n_frames:
            raise IndexError(f"frames {start}..{stop - 1} asked of a {self.n_frames}-frame driving sequence")
        direct = out.is_contiguous()
        scratch = None if direct else np.empty((3, s, s), np.uint8)
        for i in range(out.shape[0]):
            frame = out[i].numpy() if direct else scratch
            self.render_frame(self.poses[start + i], frame)
            if not direct:
                out[i].copy_(torch.from_numpy(frame))

    def render_frame(self, pose: Pose, frame: np.ndarray) -> np.ndarray:
        """One (3, S, S) uint8 frame for `pose`, written into `frame`."""
        src = self.source
        dst = self.deformer.deform(pose).vertices
        (x0, y0, x1, y1), source_xy = self.inverse.build(dst)
        fixed, fraction = cv2.convertMaps(source_xy, None, cv2.CV_16SC2)  # fixed point: remaps 1.6x faster
        frame[:] = src.planes
        # one 3-channel remap and a transposing copy: 1.6x faster than three 1-channel remaps
        warped = cv2.remap(src.pixels, fixed, fraction, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        frame[:, y0:y1, x0:x1] = warped.transpose(2, 0, 1)
        self._paint_mouth(frame, dst, pose)
        closure = 1.0 - pose.eye_open
        if closure > LID_FADE[0]:
            alpha = min(1.0, (closure - LID_FADE[0]) / (LID_FADE[1] - LID_FADE[0]))
            for eye, colour in zip(EYES, src.lid_rgb):
                self._paint_lid(frame, dst[list(eye)], colour, alpha)
        return frame

    def _paint_mouth(self, frame: np.ndarray, dst: np.ndarray, pose: Pose) -> None:
        src = self.source
        gap = float(dst[66, 1] - dst[62, 1])
        alpha = min(1.0, max(0.0, (gap - src.source_gap) / CAVITY_FADE_PX))
        if alpha <= 0.0:
            return
        lips = _chaikin(dst[list(INNER_LIPS)], CHAIKIN_PASSES)
        box, origin = _box(lips, self.size)
        if box is None:
            return
        cavity = _mask(lips - origin, box)
        # upper teeth: the band under the upper inner lip (60-64), the source's own or painted
        own = src.source_gap > OWN_TEETH_PX
        depth = TEETH_SHARE * src.source_gap if own else PAINTED_TEETH * self.deformer.mouth_width * pose.mouth_open
        upper = dst[[60, 61, 62, 63, 64]]
        # from above the lip line (the rounded cavity cuts inside it) down to the teeth's edge
        band = np.concatenate([upper - [0.0, TEETH_OVERLAP_PX],
                               upper[::-1] + [0.0, min(depth, 0.45 * max(gap, 0.0))]])
        teeth = _mask(band - origin, box) * cavity
        dark = (cavity - teeth) * alpha
        region = frame[:, box[1]:box[3], box[0]:box[2]].astype(np.float32)
        # dark at the top, a hint of tongue towards the bottom: a flat fill reads as a hole in the picture
        top, bottom = lips[:, 1].min() - origin[1], lips[:, 1].max() - origin[1]
        rows = np.arange(box[3] - box[1], dtype=np.float32)
        down = np.clip((rows - top) / max(bottom - top, 1.0), 0.0, 1.0)
        tongue = np.clip((down - TONGUE_FROM) / (1.0 - TONGUE_FROM), 0.0, 1.0) ** 2
        colour = (np.asarray(CAVITY_RGB, np.float32)[:, None] * (1 - tongue)
                  + np.asarray(TONGUE_RGB, np.float32)[:, None] * tongue)[:, :, None]
        region = region * (1.0 - dark) + colour * dark
        if not own:
            painted = teeth * alpha
            region = region * (1.0 - painted) + np.asarray(TEETH_RGB, np.float32)[:, None, None] * painted
        frame[:, box[1]:box[3], box[0]:box[2]] = np.clip(region + 0.5, 0, 255).astype(np.uint8)

    def _paint_lid(self, frame: np.ndarray, eye: np.ndarray, colour: np.ndarray, alpha: float) -> None:
        box, origin = _box(eye, self.size, margin=3)
        if box is None:
            return
        lid = _mask(eye - origin, box) * alpha
        upper = _smooth_open(eye[[0, 1, 2, 3]]) - origin  # the fallen upper lid: the closed eye's lash line
        lash = np.zeros((box[3] - box[1], box[2] - box[0]), np.uint8)
        cv2.polylines(lash, [np.round(upper * (1 << AA_SHIFT)).astype(np.int32)], False, 255,
                      thickness=1, lineType=cv2.LINE_AA, shift=AA_SHIFT)
        lash = lash.astype(np.float32) * (alpha / 255.0)
        region = frame[:, box[1]:box[3], box[0]:box[2]].astype(np.float32)
        region = region * (1.0 - lid) + colour[:, None, None] * lid
        region = region * (1.0 - lash) + np.asarray(LASH_RGB, np.float32)[:, None, None] * lash
        frame[:, box[1]:box[3], box[0]:box[2]] = np.clip(region + 0.5, 0, 255).astype(np.uint8)


def _chaikin(polygon: np.ndarray, passes: int) -> np.ndarray:
    """Chaikin's corner cutting of a closed polygon: each pass replaces an edge by its 1/4 and 3/4 points."""
    for _ in range(passes):
        nxt = np.roll(polygon, -1, axis=0)
        polygon = np.stack([0.75 * polygon + 0.25 * nxt, 0.25 * polygon + 0.75 * nxt], axis=1).reshape(-1, 2)
    return polygon


def _catmull_rom(points: np.ndarray, closed: bool, steps: int = 4) -> np.ndarray:
    """Points on the Catmull-Rom spline through `points`: a lip or lid contour without its corners."""
    p = np.concatenate([points[-1:], points, points[:2]]) if closed else \
        np.concatenate([points[:1], points, points[-1:]])
    n = len(points) if closed else len(points) - 1
    t = np.arange(steps)[:, None] / steps
    out = []
    for i in range(n):
        p0, p1, p2, p3 = p[i], p[i + 1], p[i + 2], p[i + 3]
        out.append(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3))
    if not closed:
        out.append(points[-1:])
    return np.concatenate(out)


def _smooth_open(points: np.ndarray) -> np.ndarray:
    return _catmull_rom(points, closed=False)


def _box(points: np.ndarray, size: int, margin: int = 2):
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + margin + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    if x1 <= x0 or y1 <= y0:
        return None, None
    return (x0, y0, x1, y1), np.array([x0, y0], np.float64)


def _mask(polygon: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """An anti-aliased coverage mask in [0, 1] of `polygon` (box-relative pixels) over the box
    (drawn in uint8: OpenCV anti-aliases only 8-bit images)."""
    mask = np.zeros((box[3] - box[1], box[2] - box[0]), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * (1 << AA_SHIFT)).astype(np.int32)], 255,
                 lineType=cv2.LINE_AA, shift=AA_SHIFT)
    return mask.astype(np.float32) * (1.0 / 255.0)


def _poses(driving: DrivingSequence) -> list[Pose]:
    rows = {name: np.asarray(getattr(driving, name), np.float64) for name in
            ("mouth_open", "mouth_spread", "mouth_round", "eye_open", "rotation_delta", "translation_delta",
             "scale_factor")}
    for name, values in rows.items():
        if not np.all(np.isfinite(values)):
            raise ValueError(f"DrivingSequence.{name} holds NaN or infinite values")
    if np.any(rows["scale_factor"] <= 0):
        raise ValueError("DrivingSequence.scale_factor must be positive (1.0 keeps the source's scale)")
    unit = {k: np.clip(rows[k], 0.0, 1.0) for k in ("mouth_open", "mouth_spread", "mouth_round", "eye_open")}
    rot, shift = rows["rotation_delta"], rows["translation_delta"]
    return [Pose(float(unit["mouth_open"][i]), float(unit["mouth_spread"][i]), float(unit["mouth_round"][i]),
                 float(unit["eye_open"][i]), float(rot[i, 0]), float(rot[i, 1]), float(rot[i, 2]),
                 float(shift[i, 0]), float(shift[i, 1]), float(rows["scale_factor"][i]))
            for i in range(driving.n_frames)]
