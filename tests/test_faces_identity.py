"""The identity check: dlib descriptors of sampled frames against the portrait's.

The different people are real: scikit-image ships `lfw_subset()`, 100 faces of Labeled Faces in
the Wild at 25×25 grey (plus 100 non-faces), offline. Upscaled to 150², dlib finds 92 of the 100,
and all 92 are farther than 0.6 from the astronaut (0.61 .. 1.0, median 0.81). The same
degradation applied to the astronaut herself keeps her within 0.5: the failures are identity, not
blur.
"""

import cv2
import numpy as np
import pytest
from skimage import data

from vortex.config import FacesConfig
from vortex.faces.analyzer import FaceAnalyzer
from vortex.faces.identity import check_identity, sample_indices

CFG = FacesConfig()
LFW_DETECTED = [0, 1, 2, 3, 5, 6, 7, 8]  # of the first nine LFW faces, the ones dlib's HOG finds at 150²


@pytest.fixture(scope="module")
def analyzer():
    return FaceAnalyzer.load(CFG)


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


def _upscaled(grey: np.ndarray) -> np.ndarray:
    """A 25×25 grey face as a 150×150 RGB frame (dlib's descriptor works on 150² chips)."""
    g = (np.clip(grey, 0, 1) * 255).astype(np.uint8)
    g = cv2.resize(g, (150, 150), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(np.repeat(g[..., None], 3, axis=-1))


def _mild_variants(image: np.ndarray, n: int) -> np.ndarray:
    """The portrait slightly rotated, scaled, shifted and brightened, as an animator might move it."""
    out = []
    for i in range(n):
        angle, scale, shift = 4.0 * np.sin(i), 1.0 + 0.03 * np.cos(i), 5.0 * np.sin(2 * i)
        m = cv2.getRotationMatrix2D((220, 121), angle, scale)
        m[:, 2] += shift
        frame = cv2.warpAffine(image, m, image.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
        out.append(np.clip(frame.astype(np.int16) + 8 * (i % 3), 0, 255).astype(np.uint8))
    return np.stack(out)


def test_sample_indices_are_the_middles_of_equal_stretches():
    assert sample_indices(240, 8) == [15, 45, 75, 105, 135, 165, 195, 225]
    assert sample_indices(3, 8) == [0, 1, 2]
    assert sample_indices(1, 1) == [0]
    with pytest.raises(ValueError):
        sample_indices(0, 4)


def test_the_astronaut_against_herself_passes(analyzer, astronaut):
    frames = np.concatenate([astronaut[None], _mild_variants(astronaut, 31)])
    report = check_identity(analyzer, astronaut, frames, k=4, max_distance=0.6, enforced=True)
    assert report.passed and not report.fails_slot and report.notes == []
    assert report.frame_indices == [4, 12, 20, 28] and report.faces_found == 4
    assert report.worst is not None and report.worst < 0.3  # same photo, mildly moved: far below 0.6
    assert report.worst == max(report.distances)
    assert report.why_not_enforced is None


def test_different_people_fail(analyzer, astronaut):
    frames = np.stack([_upscaled(data.lfw_subset()[i]) for i in LFW_DETECTED])
    report = check_identity(analyzer, astronaut, frames, k=8, max_distance=0.6, enforced=True)
    assert not report.passed and report.fails_slot
    assert report.faces_found == 8
    assert all(d is not None and d > 0.6 for d in report.distances)
    assert len(report.notes) == 8 and "distance" in report.notes[0]


def test_the_same_degradation_keeps_the_astronaut_herself(analyzer, astronaut):
    box = analyzer.primary_face(astronaut)
    grow = box.width // 10
    face = astronaut[box.top - grow:box.bottom + grow + 1, box.left - grow:box.right + grow + 1].mean(-1) / 255
    frame = _upscaled(cv2.resize(face, (25, 25), interpolation=cv2.INTER_AREA))
    report = check_identity(analyzer, astronaut, frame[None], k=1, max_distance=0.6, enforced=True)
    assert report.passed and report.worst < 0.55


def test_a_frame_without_a_face_fails_the_check(analyzer, astronaut):
    frames = np.repeat(astronaut[None], 4, axis=0)
    frames[2] = 128  # the third stretch's middle frame: a blank
    report = check_identity(analyzer, astronaut, frames, k=4, max_distance=0.6, enforced=False,
                            why_not="random stand-in networks render no face")
    assert not report.passed and not report.fails_slot  # reported, not enforced
    assert report.why_not_enforced == "random stand-in networks render no face"
    assert report.distances[2] is None and report.faces_found == 3
    assert report.worst is not None and report.worst < 0.1
    assert report.notes == ["frame 2: no face found"]


def test_a_portrait_without_a_face_fails_with_a_note(analyzer):
    coffee = data.coffee()[:, :512]
    frames = np.repeat(coffee[None], 2, axis=0)
    report = check_identity(analyzer, coffee, frames, k=2, max_distance=0.6, enforced=True)
    assert not report.passed and report.distances == [None, None] and report.faces_found == 0
    assert "source portrait" in report.notes[0]


def test_frames_of_the_wrong_type_are_refused(analyzer, astronaut):
    with pytest.raises(ValueError, match="frames must be"):
        check_identity(analyzer, astronaut, astronaut, k=1, max_distance=0.6, enforced=True)


def test_a_steady_track_skips_the_optional_frames_but_a_required_one_still_fails(analyzer, astronaut):
    """steady_k=3 of K=8: the first, a middle and the last sampled frame are always measured; the
    other five may be skipped (the pipeline skips them while the lip-sync track is steady). A
    different person on a required frame fails the slot; the search region is only a first try."""
    from vortex.faces.identity import IdentityMeter

    frames = _mild_variants(astronaut, 32)
    meter = IdentityMeter(analyzer, astronaut, 32, 8, 0.6, steady_k=3, region=(100, 0, 400, 300))
    assert sorted(meter.required) == [2, 18, 30] and [i for i in meter.indices if meter.optional(i)] == [6, 10, 14, 22, 26]
    for i in meter.indices:
        meter.skip(i) if meter.optional(i) else meter.measure(i, frames[i])
    report = meter.report(enforced=True)
    assert report.passed and report.frame_indices == [2, 18, 30] and "5 of 8" in report.notes[-1]
    stranger = _upscaled(data.lfw_subset()[0])
    swapped = IdentityMeter(analyzer, astronaut, 32, 8, 0.6, steady_k=3, region=(0, 0, 150, 150))
    for i in swapped.indices:
        if swapped.optional(i):
            swapped.skip(i)
        else:
            swapped.measure(i, frames[i] if i != 18 else stranger)
    bad = swapped.report(enforced=True)
    assert not bad.passed and bad.fails_slot and bad.distances[1] > 0.6
