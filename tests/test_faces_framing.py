"""dlib's face models and LivePortrait-style framing on the public-domain astronaut portrait."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from skimage import data

from vortex.config import FacesConfig
from vortex.errors import VortexInitializationError
from vortex.faces.analyzer import DESCRIPTOR, LANDMARKS_5, LANDMARKS_68, FaceAnalyzer, FaceBox, models_folder
from vortex.faces.framing import frame_portrait, soft_mask

CFG = FacesConfig()


@pytest.fixture(scope="module")
def analyzer():
    return FaceAnalyzer.load(CFG)


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.fixture(scope="module")
def framing(analyzer, astronaut):
    return frame_portrait(analyzer, astronaut, CFG)


def test_a_missing_model_file_names_the_file_and_the_package(tmp_path):
    for name in (LANDMARKS_5, DESCRIPTOR):  # everything but the 68-point predictor
        shutil.copy(models_folder() / name, tmp_path / name)
    with pytest.raises(VortexInitializationError) as err:
        FaceAnalyzer.load(CFG, folder=tmp_path)
    assert LANDMARKS_68 in str(err.value) and "face_recognition_models" in str(err.value)


def test_the_package_imports_without_torch_dlib_or_cv2():
    code = "import sys, vortex.faces; print(sorted({'torch', 'dlib', 'cv2'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_astronauts_face_is_found_where_it_is(analyzer, astronaut):
    box = analyzer.primary_face(astronaut)
    # DESIGN.md: a face about 95 px wide whose box starts near x 177, y 66.
    assert abs(box.left - 177) < 15 and abs(box.top - 66) < 20 and 80 <= box.width <= 110
    assert box.score > 0.5
    points = analyzer.landmarks(astronaut, box)
    assert points.shape == (68, 2) and points.dtype == np.float32
    # The eyes (36-47) lie above the inner lips (60-67), the nose tip (30) between them.
    assert points[36:48, 1].mean() < points[30, 1] < points[60:68, 1].mean()
    descriptor = analyzer.descriptor(astronaut, box)
    assert descriptor.shape == (128,) and descriptor.dtype == np.float32
    assert 0.5 < np.linalg.norm(descriptor) < 2.0  # dlib's descriptors are of norm ~1


def test_primary_face_prefers_the_largest_face(analyzer, astronaut):
    # Two astronauts side by side, the right one half size: the left (larger) one is primary.
    small = astronaut[::2, ::2]
    canvas = np.full((512, 768, 3), 200, np.uint8)
    canvas[:, :512] = astronaut
    canvas[128:384, 512:] = small
    boxes = analyzer.detect(canvas)
    assert len(boxes) >= 2
    box = analyzer.primary_face(canvas)
    assert box.right < 512 and box.width > 80


def test_coffee_holds_no_face(analyzer):
    assert analyzer.detect(data.coffee()) == []
    assert frame_portrait(analyzer, data.coffee(), CFG) is None


def test_wrong_images_are_refused_with_what_was_given(analyzer):
    with pytest.raises(ValueError, match="uint8"):
        analyzer.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(64, 64\)"):
        analyzer.detect(np.zeros((64, 64), np.uint8))


def test_the_crop_holds_the_face_levelled_with_hair_and_chin(framing, astronaut):
    s = CFG.crop_size
    m = framing.matrix
    corners = np.array([[framing.box.left, framing.box.top], [framing.box.right, framing.box.top],
                        [framing.box.left, framing.box.bottom], [framing.box.right, framing.box.bottom]], float)
    in_crop = corners @ m[:, :2].T + m[:, 2]
    assert np.all(in_crop > 0.1 * s) and np.all(in_crop < 0.9 * s)  # the face box lies well inside
    lm = framing.landmarks
    eyes_dy = lm[42:48, 1].mean() - lm[36:42, 1].mean()
    assert abs(eyes_dy) < 1.0  # levelled
    # scale 2.3: the landmarks span about 1/2.3 of the crop
    assert 0.38 < (lm[:, 0].max() - lm[:, 0].min()) / s < 0.48
    # vy -0.125 moves the crop up: more room above the brows (hair) than below the chin, yet the chin
    # (point 8) has room for some neck below it.
    above, below = lm[17:27, 1].min(), s - lm[8, 1]
    assert above > below > 0.08 * s
    assert framing.crop(astronaut).shape == (s, s, 3)
    np.testing.assert_allclose(framing.inverse[:, :2] @ framing.matrix[:, :2], np.eye(2), atol=1e-9)


def test_the_mask_is_one_over_the_head_and_zero_inside_the_border():
    mask = soft_mask(512)
    assert mask.dtype == np.float32 and mask.min() == 0.0 and mask.max() == 1.0
    assert mask[256, 256] == 1.0 and mask[150:400, 150:360].min() == 1.0
    border = 20  # 4% of the crop from every edge is pure portrait
    assert mask[:border].max() == 0 and mask[-border:].max() == 0
    assert mask[:, :border].max() == 0 and mask[:, -border:].max() == 0
    assert np.abs(np.diff(mask, axis=1)).max() < 0.05  # feathered: no step anywhere


def _tensors(framing, astronaut):
    crop = torch.from_numpy(framing.crop(astronaut)).permute(2, 0, 1)[None].contiguous()
    return crop, torch.from_numpy(astronaut).permute(2, 0, 1).contiguous()


def test_pasting_back_the_unmodified_crop_reproduces_the_portrait(framing, astronaut):
    crop, portrait = _tensors(framing, astronaut)
    out = framing.paste_back(crop, portrait)
    assert out.shape == (1, 3, 512, 512) and out.dtype == torch.uint8
    diff = (out[0].int() - portrait.int()).abs().float()
    # Two bilinear resamplings (up 2.4x into the crop, back down): exact on smooth skin and
    # background, a few levels on edges; the worst pixels are on the sharpest edges (hair tips).
    assert diff.mean() < 0.5
    assert torch.quantile(diff.flatten(), 0.999) <= 10
    assert diff.max() <= 60


def test_pixels_away_from_the_head_stay_the_portraits_exactly(framing, astronaut):
    crop, portrait = _tensors(framing, astronaut)
    inverted = torch.cat([crop, 255 - crop])  # B=2: the crop, and the crop with inverted colours
    out = framing.paste_back(inverted, portrait)
    g = framing.geometry("cpu")
    warped = torch.zeros(512, 512)
    warped[g.y0:g.y1, g.x0:g.x1] = g.mask[0, 0]
    outside = warped == 0
    assert outside.float().mean() > 0.6  # the head is small in this portrait: most of it is untouched
    assert torch.equal(out[1][:, outside], portrait[:, outside])
    inside = warped == 1
    assert inside.sum() > 5000
    # Where the mask is 1 the inverted crop shows: far from the portrait there.
    assert (out[1][:, inside].float() - portrait[:, inside].float()).abs().mean() > 60
    # The first frame of the batch is unaffected by the second.
    assert (out[0].int() - portrait.int()).abs().float().mean() < 0.5


def test_paste_back_refuses_wrong_shapes(framing, astronaut):
    crop, portrait = _tensors(framing, astronaut)
    with pytest.raises(ValueError, match="crops must be"):
        framing.paste_back(crop.float(), portrait)
    with pytest.raises(ValueError, match="portrait must be"):
        framing.paste_back(crop, portrait[:, :256])


def test_paste_back_is_fast_on_the_cpu(framing, astronaut):
    import time

    crop, portrait = _tensors(framing, astronaut)
    batch = crop.repeat(8, 1, 1, 1)
    framing.paste_back(batch, portrait)  # the grid and mask are computed once, then cached
    start = time.process_time()
    for _ in range(3):
        framing.paste_back(batch, portrait)
    per_frame = (time.process_time() - start) / 24
    # Measured 1.2 ms a frame (B=8, one thread); generous here for a shared two-core machine.
    assert per_frame < 0.025


def test_a_face_box_is_a_frozen_value():
    box = FaceBox(10, 20, 109, 119, 1.0)
    assert (box.width, box.height, box.area, box.center) == (100, 100, 10000, (59.5, 69.5))
    with pytest.raises(AttributeError):
        box.left = 0


def test_a_tilted_head_is_levelled(analyzer, astronaut, framing):
    import cv2

    def angle(f):
        return np.degrees(np.arctan2(f.matrix[1, 0], f.matrix[0, 0]))

    # Roll the portrait 12° counter-clockwise about the face: the crop turns it back. (Her eye
    # line is already 3.5° off level in the photo, so the crop's rotation changes by the 12°.)
    m = cv2.getRotationMatrix2D((220.0, 121.0), 12.0, 1.0)
    tilted = cv2.warpAffine(astronaut, m, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    framed = frame_portrait(analyzer, tilted, CFG)
    assert abs(angle(framed) - angle(framing) - 12.0) < 1.5
    lm = framed.landmarks
    assert abs(lm[42:48, 1].mean() - lm[36:42, 1].mean()) < 1.0
