"""One DrivingSequence row → where the mesh's vertices go (the preview's motion model).

Local moves first, in the framed face's own axes (eyes level): the jaw and lower lip drop with
`mouth_open`, the lip corners move out with `mouth_spread` and in with `mouth_round`, the upper lids
fall to the lower ones as `eye_open` goes to 0. Then the head: a similarity transform of the face's
points about the face centre (roll, scale, translation) plus a depth parallax for yaw and pitch;
the inner ring follows 60 % of the head (and of its nearest face point's local move); the
outer ring and border anchors are held.

If a move would fold a triangle it is scaled back until every triangle keeps at least
MIN_AREA_RATIO of its source area: the head's move first, since the lips and eyes matter more, and
the local moves only if they fold a triangle on their own. At the driver's own bounds at least 95 %
of every move stays (tests/test_preview.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mesh import N_LANDMARKS, FaceMesh, signed_areas

# mouth_open = 1 adds this many mouth widths of inner-lip gap (the brief asks 0.35-0.5)
OPEN_GAP = 0.42
LOWER_SHARE = 0.85  # of that gap the jaw and lower lip take; the upper lip lifts the rest
SPREAD_OUT = 0.10  # mouth widths each corner moves out at mouth_spread = 1 ("eee")
ROUND_IN = 0.13  # mouth widths each corner moves in at mouth_round = 1 ("ooo")
ROUND_PUCKER = 0.03  # mouth widths the lip middles push up/down when rounded
LID_TRAVEL = 0.9  # the upper lid covers this share of the eye's opening (the painted lid does the rest)
PARALLAX_PIVOT = 0.15  # face widths behind the face plane: the axis yaw and pitch turn about
MIN_AREA_RATIO = 0.05  # a warped triangle keeps ≥ 5 % of its source area (never flips or collapses)
CLAMP_STEPS = 10  # bisection steps when a move has to be scaled back (1/1024 resolution)

# Each tuple: (landmark, weight). The jaw (5-11) and lower lip (55-59 outer, 65-67 inner) drop with
# the chin; the corners (48, 54, 60, 64) go a third of the way, so the opening reads as a U.
JAW_DROP = ((4, 0.15), (5, 0.35), (6, 0.6), (7, 0.85), (8, 1.0), (9, 0.85), (10, 0.6), (11, 0.35), (12, 0.15),
            (55, 0.7), (56, 0.95), (57, 1.0), (58, 0.95), (59, 0.7), (65, 1.0), (66, 1.0), (67, 1.0),
            (48, 0.3), (54, 0.3), (60, 0.3), (64, 0.3), (49, 0.08), (53, 0.08))
# the upper lip's middle lifts; its outer points (49, 53) drop a little with the corners instead
UPPER_LIFT = ((61, 0.9), (62, 1.0), (63, 0.9), (50, 0.4), (51, 0.5), (52, 0.4))
# corner moves: (landmark, side, weight): side -1 the image-left corner, +1 the right
CORNERS = ((48, -1, 1.0), (60, -1, 0.9), (54, 1, 1.0), (64, 1, 0.9), (49, -1, 0.5), (59, -1, 0.5),
           (61, -1, 0.4), (67, -1, 0.4), (53, 1, 0.5), (55, 1, 0.5), (63, 1, 0.4), (65, 1, 0.4))
UPPER_LIDS = ((37, 41), (38, 40), (43, 47), (44, 46))  # (upper-lid landmark, the lower-lid one below it)


@dataclass(frozen=True)
class Pose:
    """One frame's driving values (a DrivingSequence row)."""

    mouth_open: float = 0.0
    mouth_spread: float = 0.0
    mouth_round: float = 0.0
    eye_open: float = 1.0
    pitch: float = 0.0  # degrees
    yaw: float = 0.0
    roll: float = 0.0
    tx: float = 0.0  # normalised grid [-1, 1]: × S/2 pixels
    ty: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True)
class Deformed:
    vertices: np.ndarray  # (V, 2) destination positions
    local_kept: float  # share of the local (mouth, eye) moves applied: 1 unless clamped
    head_kept: float  # share of the head move applied: 1 unless clamped


class Deformer:
    def __init__(self, mesh: FaceMesh):
        self.mesh = mesh
        src = mesh.vertices
        self.source = src
        self.n = mesh.n_moving
        self.n_face = mesh.n_face
        lm = src[:68]
        self.mouth_width = float(np.linalg.norm(lm[54] - lm[48]))
        self.face_width = float(lm[:17, 0].max() - lm[:17, 0].min())
        self.centre = lm.mean(axis=0)
        self.min_areas = MIN_AREA_RATIO * mesh.source_areas
        self.depth = _depths(self.n_face, self.n) * self.face_width
        self.follow = mesh.follow[:, None]
        # the three unit moves, (n, 2) each: per unit of mouth_open, spread and round
        w = self.mouth_width
        self.open_move = np.zeros((self.n, 2))
        for k, weight in JAW_DROP:
            self.open_move[k, 1] += OPEN_GAP * LOWER_SHARE * w * weight
        for k, weight in UPPER_LIFT:
            self.open_move[k, 1] -= OPEN_GAP * (1 - LOWER_SHARE) * w * weight
        self.spread_move = np.zeros((self.n, 2))
        for k, side, weight in CORNERS:
            self.spread_move[k, 0] = side * SPREAD_OUT * w * weight
        self.round_move = -self.spread_move * (ROUND_IN / SPREAD_OUT)
        self.round_move[51, 1] -= ROUND_PUCKER * w
        self.round_move[57, 1] += ROUND_PUCKER * w
        self.lid_move = np.zeros((self.n, 2))
        for upper, lower in UPPER_LIDS:
            self.lid_move[upper] = LID_TRAVEL * (lm[lower] - lm[upper])
        # the inner ring takes its share of its nearest face point's move too: a dropping chin
        # stretches the neck over two bands, not one (a low-framed chin has little room below)
        ring = src[self.n_face:self.n]
        nearest = np.argmin(np.linalg.norm(ring[:, None] - src[None, :self.n_face], axis=2), axis=1)
        for move in (self.open_move, self.spread_move, self.round_move, self.lid_move):
            move[self.n_face:] = mesh.follow[self.n_face:, None] * move[nearest]

    def local(self, pose: Pose) -> np.ndarray:
        return (pose.mouth_open * self.open_move + pose.mouth_spread * self.spread_move
                + pose.mouth_round * self.round_move + (1.0 - pose.eye_open) * self.lid_move)

    def head(self, points: np.ndarray, pose: Pose, keep: float) -> np.ndarray:
        """The head's similarity transform (plus yaw/pitch parallax) of the face points, `keep` of it."""
        roll = np.radians(pose.roll * keep)
        yaw, pitch = np.radians(pose.yaw * keep), np.radians(pose.pitch * keep)
        scale = 1.0 + (pose.scale - 1.0) * keep
        shift = np.array([pose.tx, pose.ty]) * keep * self.mesh.size / 2
        rel = points - self.centre
        # foreshortening across the turn, parallax along it: nearer points (the nose) move further
        rel = rel * np.array([np.cos(yaw), np.cos(pitch)])
        lever = self.depth + PARALLAX_PIVOT * self.face_width
        rel = rel + np.stack([lever * np.sin(yaw), -lever * np.sin(pitch)], axis=1)
        c, s = np.cos(roll), np.sin(roll)
        rotated = rel @ np.array([[c, s], [-s, c]])  # +roll turns the face clockwise on screen
        moved = self.centre + scale * rotated + shift
        return points + self.follow * (moved - points)  # the inner ring takes its share only

    def deform(self, pose: Pose) -> Deformed:
        local = self.local(pose)
        face = self.source[: self.n]
        out = self.source.copy()

        def place(local_keep: float, head_keep: float) -> np.ndarray:
            out[: self.n] = self.head(face + local_keep * local, pose, head_keep)
            return out

        def ok(vertices: np.ndarray) -> bool:
            return bool(np.all(signed_areas(vertices, self.mesh.triangles) >= self.min_areas))

        if ok(place(1.0, 1.0)):
            return Deformed(out.copy(), 1.0, 1.0)
        # the lips and eyes matter more than the head's sway: the head gives way first
        if ok(place(1.0, 0.0)):
            head_kept = _largest(lambda t: ok(place(1.0, t)))
            return Deformed(place(1.0, head_kept).copy(), 1.0, head_kept)
        local_kept = _largest(lambda t: ok(place(t, 0.0)))
        head_kept = _largest(lambda t: ok(place(local_kept, t)))
        return Deformed(place(local_kept, head_kept).copy(), local_kept, head_kept)


def _largest(fine) -> float:
    """The largest t in [0, 1] with fine(t), given fine(0) (bisection)."""
    if fine(1.0):
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(CLAMP_STEPS):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fine(mid) else (lo, mid)
    return lo


def _depths(n_face: int, n: int) -> np.ndarray:
    """Rough depth of each face point in face widths, in front of the jaw's outline (0); the ring 0."""
    z = np.zeros(n)
    z[0:17] = 0.25 * np.sin(np.pi * np.arange(17) / 16)  # the jaw: the chin is nearer than the ears
    z[17:27] = 0.3  # brows
    z[27:31] = (0.35, 0.5, 0.65, 0.8)  # nose bridge to tip
    z[31:36] = (0.6, 0.65, 0.7, 0.65, 0.6)  # nostrils
    z[36:48] = 0.3  # eyes
    z[48:68] = 0.55  # lips
    z[N_LANDMARKS:n_face] = 0.25  # forehead
    return z
