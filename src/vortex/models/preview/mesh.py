"""The preview's face mesh: a Delaunay triangulation of the 68 landmarks plus anchors, computed once
per portrait, and the dense inverse map (destination pixel → source pixel) for moved vertices.

Vertices, in this order:
    0..67       dlib's 68 landmarks (crop pixels)
    68..72      forehead points above the brows: they carry the forehead and hair with the head
    inner ring  the face's hull pushed out by a margin (more below the chin, where the jaw drops):
                it follows 60 % of the head's move, so the stretch is shared by two bands
    outer ring  the hull pushed out further, held: neck and background stay (both rings come in
                where the crop's edge is near, so moving triangles stay off the edge)
    border      held anchors along the crop's edge, so the edge pixels never move

Only triangles with a moving vertex (a face point or the inner ring) can differ from the identity;
the map is rebuilt per frame inside the bounding box of those triangles, and everything else is a
copy of the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

N_LANDMARKS = 68
BROW_FOREHEAD = (17, 19, 21, 24, 26)  # the brow points lifted into the 5 forehead points
FOREHEAD_RISE = 0.22  # forehead points sit this many face widths above the brows
FOREHEAD_TOP = 0.12  # forehead points stay this fraction of the crop below its top: room for the rings
RING_POINTS = (20, 32)  # inner, outer: the outer ring dense enough that no moving triangle reaches the edge
INNER_MARGIN = 0.25  # face widths from the face's hull to the inner ring
OUTER_MARGIN = 0.5  # ... and to the held outer ring (both less where the crop's edge is nearer)
CHIN_EXTRA = 0.8  # straight below the face the margins grow by 80 %: the jaw drops 0.36 mouth widths
RING_FOLLOW = 0.6  # share of the head's (and the nearest face point's) move the inner ring takes
BORDER_STEPS = 8  # anchors per crop side, corners included
EDGE_KEEP = 0.03  # the outer ring keeps this fraction of the crop from its edge
MIN_ROOM = 4.0  # px: an inner ring point closer than this to the face is dropped
MIN_SEPARATION = 1.0  # px: vertices closer than this are nudged apart (dlib's closed inner lips meet)
SUBPIXEL = 4  # cv2.fillPoly fractional bits: triangles rasterised at 1/16 px
MAP_STEP = 2  # the inverse map is evaluated every 2nd pixel and resized up
MAP_PAD = 1  # coarse samples beyond the moving box on each side


@dataclass(frozen=True)
class FaceMesh:
    size: int  # S: the crop is S × S
    vertices: np.ndarray  # (V, 2) float64 source positions
    triangles: np.ndarray  # (T, 3) int32 vertex indices, every one counter-clockwise in image axes
    n_face: int  # vertices [0, n_face): landmarks and forehead, moved by the face and the head
    n_moving: int  # vertices [0, n_moving) move (face and inner ring); the rest are held
    follow: np.ndarray  # (n_moving,) share of the head's move each moving vertex takes
    moving_triangles: np.ndarray  # (M,) int32 indices of triangles with at least one moving vertex

    @property
    def source_areas(self) -> np.ndarray:
        return signed_areas(self.vertices, self.triangles)


def signed_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(T,) signed areas in px² (positive: counter-clockwise as drawn, x right and y down)."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def build_mesh(landmarks: np.ndarray, size: int) -> FaceMesh:
    """The mesh for one framed face: (68, 2) landmarks in S × S crop pixels."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (N_LANDMARKS, 2) or not np.all(np.isfinite(points)):
        raise ValueError(f"landmarks must be (68, 2) finite crop pixels (dlib's 68 points), got {points.shape}")
    if points.min() < 0 or points.max() > size - 1:
        raise ValueError(f"landmarks must lie inside the {size}×{size} crop, got range "
                         f"{points.min():.1f}..{points.max():.1f}")
    width = points[:17, 0].max() - points[:17, 0].min()
    if width < 0.1 * size:
        raise ValueError(f"the face is {width:.0f} px wide in a {size} px crop; frame it first (≈ S/2.3)")
    forehead = points[list(BROW_FOREHEAD)] - np.array([0.0, FOREHEAD_RISE * width])
    forehead[:, 1] = np.maximum(forehead[:, 1], FOREHEAD_TOP * size)
    face = _separate(np.concatenate([points, forehead]))
    inner, outer = _rings(face, width, size)
    inner = _apart(inner, face)
    held = _apart(np.concatenate([outer, _border(size)]), np.concatenate([face, inner]))
    vertices = np.concatenate([face, inner, held])
    n_moving = len(face) + len(inner)
    triangles = _delaunay(vertices, size)
    moving_tris = np.flatnonzero((triangles < n_moving).any(axis=1)).astype(np.int32)
    follow = np.concatenate([np.ones(len(face)), np.full(len(inner), RING_FOLLOW)])
    return FaceMesh(size, vertices, triangles, len(face), n_moving, follow, moving_tris)


def _separate(points: np.ndarray) -> np.ndarray:
    """Nudge coincident points apart vertically (a closed mouth gives 61-63 on top of 65-67)."""
    out = points.copy()
    for _ in range(4):
        gaps = np.linalg.norm(out[:, None] - out[None], axis=2) + np.eye(len(out)) * 1e9
        i, j = np.nonzero(np.triu(gaps < MIN_SEPARATION))
        if len(i) == 0:
            break
        out[i, 1] -= MIN_SEPARATION / 2  # the earlier index is the upper lip in dlib's order
        out[j, 1] += MIN_SEPARATION / 2
    return out


def _apart(points: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """`points` less those within 2 × MIN_SEPARATION of a taken vertex or of an earlier point."""
    kept: list[np.ndarray] = []
    for point in points:
        others = np.concatenate([taken, np.array(kept).reshape(-1, 2)])
        if np.linalg.norm(others - point, axis=1).min() >= 2 * MIN_SEPARATION:
            kept.append(point)
    return np.array(kept).reshape(-1, 2)


def _rings(face: np.ndarray, width: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(inner, outer): the face's convex hull, resampled evenly and pushed outwards; where the crop's
    edge is near (the forehead), the outer ring takes what room there is and the inner one half of
    it, so the held outer ring always stands between the moving vertices and the edge."""
    hull = cv2.convexHull(face.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    closed = np.concatenate([hull, hull[:1]])
    run = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    inner = _ring(face, closed, run, RING_POINTS[0], INNER_MARGIN * width, 0.5, size)
    outer = _ring(face, closed, run, RING_POINTS[1], OUTER_MARGIN * width, 1.0, size)
    return inner, outer


def _ring(face: np.ndarray, closed: np.ndarray, run: np.ndarray, count: int, margin: float, room_share: float,
          size: int) -> np.ndarray:
    at = np.linspace(0, run[-1], count, endpoint=False)
    outline = np.stack([np.interp(at, run, closed[:, 0]), np.interp(at, run, closed[:, 1])], axis=1)
    out = outline - face.mean(axis=0)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    lo, hi = EDGE_KEEP * size, (1 - EDGE_KEEP) * (size - 1)
    with np.errstate(divide="ignore", invalid="ignore"):  # an axis-parallel direction never meets that edge
        reach = np.where(out > 0, (hi - outline) / out, np.where(out < 0, (lo - outline) / out, np.inf))
    grow = 1.0 + CHIN_EXTRA * np.maximum(out[:, 1], 0.0)
    push = np.minimum(margin * grow, room_share * reach.min(axis=1))
    keep = push > MIN_ROOM  # no room at all: the face meets the crop's edge there
    return (outline + push[:, None] * out)[keep]


def _border(size: int) -> np.ndarray:
    steps = np.linspace(0, size - 1, BORDER_STEPS)
    top = np.stack([steps, np.zeros_like(steps)], axis=1)
    bottom = np.stack([steps, np.full_like(steps, size - 1)], axis=1)
    left = np.stack([np.zeros_like(steps[1:-1]), steps[1:-1]], axis=1)
    right = np.stack([np.full_like(steps[1:-1], size - 1), steps[1:-1]], axis=1)
    return np.concatenate([top, bottom, left, right])


def _delaunay(vertices: np.ndarray, size: int) -> np.ndarray:
    subdiv = cv2.Subdiv2D((-1, -1, size + 2, size + 2))
    ids = [subdiv.insert((float(x), float(y))) for x, y in vertices]
    if len(set(ids)) != len(ids):  # Subdiv2D hands a repeated point the first one's id
        raise ValueError("two mesh vertices coincide; the landmarks hold duplicate points")
    lookup = {tuple(np.round(v, 3)): k for k, v in enumerate(vertices)}
    triangles = []
    for tri in subdiv.getTriangleList().reshape(-1, 3, 2):
        keys = [lookup.get(tuple(np.round(p.astype(np.float64), 3))) for p in tri]
        if any(k is None for k in keys):
            continue  # a triangle on Subdiv2D's outer vertices
        triangles.append(keys)
    tris = np.asarray(triangles, dtype=np.int32)
    areas = signed_areas(vertices, tris)
    tris[areas < 0] = tris[areas < 0][:, [0, 2, 1]]  # one orientation for all
    return tris[np.abs(areas) > 1e-6]


class InverseMap:
    """The per-frame dense map destination → source, for cv2.remap, rebuilt only where triangles move.

    The map is piecewise affine, so it is evaluated on a grid of every MAP_STEP-th pixel and
    resized up bilinearly: exact inside each triangle, off by under a pixel only along edges whose
    two triangles stretch differently; a quarter of the per-pixel work (the frame's largest cost)."""

    def __init__(self, mesh: FaceMesh):
        self.mesh = mesh
        coarse = mesh.size // MAP_STEP + 2 * MAP_PAD
        self.labels = np.empty((coarse, coarse), np.int32)  # moving-triangle index per sample; M = identity
        self.source_tris = mesh.vertices[mesh.triangles[mesh.moving_triangles]]  # (M, 3, 2)

    def build(self, destination: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray]:
        """For moved vertices (V, 2): the box (x0, y0, x1, y1) that differs from the identity and the
        float32 (h, w, 2) map over that box: the source pixel (x, y) each destination pixel shows."""
        mesh, step = self.mesh, MAP_STEP
        dst = destination[mesh.triangles[mesh.moving_triangles]]  # (M, 3, 2)
        m = len(dst)
        lo = np.floor(dst.reshape(-1, 2).min(axis=0))
        hi = np.ceil(dst.reshape(-1, 2).max(axis=0)) + 1
        # the coarse grid: MAP_PAD samples beyond the box each side, so the upsampling never clamps
        x0, y0 = (np.maximum(lo, 0) // step * step).astype(int)
        x1, y1 = np.minimum(-(-np.minimum(hi, mesh.size) // step) * step, mesh.size).astype(int)
        cols, rows = (x1 - x0) // step + 2 * MAP_PAD, (y1 - y0) // step + 2 * MAP_PAD
        # affine dest → source per triangle: [sx, sy] = [x, y, 1] @ coef, from the three corners
        dst_h = np.concatenate([dst, np.ones((m, 3, 1))], axis=2)
        coef = np.linalg.solve(dst_h, self.source_tris)  # (M, 3, 2)
        identity = np.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
        # (6, M + 1) contiguous columns: per-column np.take is 2x faster than gathering (M, 3, 2) rows
        table = np.ascontiguousarray(np.concatenate([coef, identity]).transpose(2, 1, 0).reshape(6, m + 1),
                                     dtype=np.float32)
        labels = self.labels[:rows, :cols]
        labels.fill(m)
        # sample (i, j) of the coarse grid sits at full-resolution pixel (x0 + step·(i - PAD) + (step - 1)/2, ...):
        # where cv2.resize's INTER_LINEAR expects the centre of each coarse pixel
        offset = np.array([x0, y0]) + (step - 1) / 2 - step * MAP_PAD
        fixed = np.round((dst - offset) / step * (1 << SUBPIXEL)).astype(np.int32)
        for k in range(m):
            cv2.fillConvexPoly(labels, fixed[k], k, lineType=cv2.LINE_8, shift=SUBPIXEL)
        flat = labels.ravel()  # a copy: the used corner of the buffer is a strided view
        a, b, c, d, e, f = (np.take(row, flat).reshape(rows, cols) for row in table)
        gx = (offset[0] + step * np.arange(cols)).astype(np.float32)[None, :]
        gy = (offset[1] + step * np.arange(rows)).astype(np.float32)[:, None]
        coarse = np.empty((rows, cols, 2), np.float32)  # one 2-channel resize, not two 1-channel ones
        np.add(a * gx + b * gy, c, out=coarse[..., 0])
        np.add(d * gx + e * gy, f, out=coarse[..., 1])
        pad = MAP_PAD * step
        full = cv2.resize(coarse, (cols * step, rows * step), interpolation=cv2.INTER_LINEAR)
        return (int(x0), int(y0), int(x1), int(y1)), full[pad:-pad, pad:-pad]
