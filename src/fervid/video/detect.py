"""Face detection: one small interface, backends registered by name.

``detector.detect(images)`` takes a list of (H, W, 3) uint8 RGB images and returns, per image, a
float32 array of shape (N, 15), one row per face sorted by score (highest first)::

    x0, y0, x1, y1, score, lx0, ly0, ..., lx4, ly4

Boxes are in pixels of the image given. The five landmarks are, in this order: left eye, right
eye, nose tip, left mouth corner, right mouth corner, where "left" means the image's left (the
subject's right), which is the order of the ArcFace alignment template (``fervid.video.align``).

Backends see a downscaled copy (longest side ``max_side``, 320 by default; images are never
upscaled) and their boxes are mapped back, which is what makes detection several times faster
than real time on a CPU. ``build_detector("retinaface", min_score=0.8)`` makes one by name;
``DETECTORS.names()`` lists them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from fervid.runtime.registry import Registry

BOX = slice(0, 4)
SCORE = 4
LANDMARKS = slice(5, 15)
COLUMNS = 15
DEFAULT_DETECTOR = "retinaface"
DEFAULT_MAX_SIDE = 320
MIN_MAX_SIDE = 32
"""The smallest ``max_side`` the backends can work at."""

DETECTORS: Registry[FaceDetector] = Registry("face detector")
_BACKEND_MODULES = ("fervid.video.retinaface", "fervid.video.yunet")


def build_detector(name: str = DEFAULT_DETECTOR, **options) -> FaceDetector:
    """The detector registered as ``name``, built with ``options`` (``max_side``, ``min_score``,
    ``nms_iou``, ``min_face`` and backend-specific ones); ConfigError for an unknown name."""
    load_backends()
    return DETECTORS.build(name, **options)


def load_backends() -> None:
    """Import the backend modules so that they register themselves (cheap: backends import
    their runtime, onnxruntime or yuface, only when built)."""
    for module in _BACKEND_MODULES:
        importlib.import_module(module)


def empty_detections() -> np.ndarray:
    return np.zeros((0, COLUMNS), np.float32)


def landmarks_of(detections: np.ndarray) -> np.ndarray:
    """The (N, 5, 2) landmarks of an (N, 15) detection array."""
    return detections[:, LANDMARKS].reshape(-1, 5, 2)


class FaceDetector(ABC):
    """Base of all backends: resizing, mapping back, score / size filtering and sorting live
    here; a backend implements ``_detect_resized`` on the downscaled images.

    ``max_side``: longest side the network sees (None: full size). ``min_score``: keep faces
    scoring at least this (0-1). ``nms_iou``: overlap above which the weaker of two boxes is
    dropped. ``min_face``: drop boxes whose shorter side is below this many pixels (original
    image)."""

    name = "base"
    default_min_score = 0.5

    def __init__(
        self,
        max_side: int | None = DEFAULT_MAX_SIDE,
        min_score: float | None = None,
        nms_iou: float = 0.4,
        min_face: float = 0.0,
    ):
        if max_side is not None and max_side < MIN_MAX_SIDE:
            raise ValueError(f"max_side must be >= {MIN_MAX_SIDE} or None, got {max_side}")
        self.max_side = max_side
        self.min_score = self.default_min_score if min_score is None else float(min_score)
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be within [0, 1], got {self.min_score}")
        self.nms_iou = nms_iou
        self.min_face = min_face

    def detect(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per image, an (N, 15) float32 array of faces in that image's pixels (module doc)."""
        if not images:
            return []
        resized, scales = zip(*(self._resize(image) for image in images), strict=True)
        found = self._detect_resized(list(resized))
        return [self._finish(d, s) for d, s in zip(found, scales, strict=True)]

    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.detect(images)

    @abstractmethod
    def _detect_resized(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Per image, (N, 15) detections above ``min_score`` after NMS, in the pixels of the
        (possibly downscaled) image given; landmark coordinates index pixel centres."""

    def _resize(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape}")
        height, width = image.shape[:2]
        if self.max_side is None or max(height, width) <= self.max_side:
            return image, (1.0, 1.0)
        factor = self.max_side / max(height, width)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        # reducing_gap=1: a box-filter reduce by the integer part of the factor, then bilinear
        # for the rest; 3x faster than bilinear alone at 640x360 -> 320 (1 ms instead of 3)
        small = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR, reducing_gap=1.0))
        return small, (width / size[0], height / size[1])

    def _finish(self, detections: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
        detections = detections.astype(np.float32, copy=True)
        sx, sy = scale
        if (sx, sy) != (1.0, 1.0):
            detections[:, [0, 2]] *= sx
            detections[:, [1, 3]] *= sy
            # landmarks index pixel centres: centre i of the small image is (i + 0.5) * s - 0.5
            detections[:, 5:15:2] = (detections[:, 5:15:2] + 0.5) * sx - 0.5
            detections[:, 6:15:2] = (detections[:, 6:15:2] + 0.5) * sy - 0.5
        sides = np.minimum(detections[:, 2] - detections[:, 0], detections[:, 3] - detections[:, 1])
        keep = (detections[:, SCORE] >= self.min_score) & (sides >= self.min_face)
        detections = detections[keep]
        return detections[np.argsort(-detections[:, SCORE], kind="stable")]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(max_side={self.max_side}, min_score={self.min_score}, "
            f"nms_iou={self.nms_iou}, min_face={self.min_face})"
        )


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over union of x0, y0, x1, y1 boxes (0 where the union is
    empty). Written here rather than called from torchvision.ops: importing that package costs
    fervid predict about 2 s of start-up (it pulls in torch._dynamo), and the tracker needs
    nothing else from it."""
    a = np.asarray(boxes_a, np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS (in float64), highest score first: a box goes
    when its IoU with a kept, higher-scoring box is above ``iou``. torchvision's kernel where
    torch is already loaded (a torch model's predict, training), else the same greedy rule in
    numpy (:func:`numpy_nms`), so that predicting with an ONNX model never imports torch."""
    if "torch" not in sys.modules:
        return numpy_nms(boxes, scores, iou)
    import torch

    kept = vision_ops().nms(
        torch.from_numpy(np.asarray(boxes, np.float64).reshape(-1, 4)),
        torch.from_numpy(np.asarray(scores, np.float64).reshape(-1)),
        iou,
    )
    return kept.numpy().astype(np.int64)


def numpy_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS in numpy: boxes by descending score (ties: lower index first), each kept
    unless its IoU with an already kept box is above ``iou``; the kept indices in that order."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float64).reshape(-1), kind="stable")
    overlaps = box_iou(boxes[order], boxes[order])
    suppressed = np.zeros(len(order), bool)
    kept = []
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        kept.append(order[rank])
        suppressed |= overlaps[rank] > iou
    return np.asarray(kept, np.int64)


@functools.cache
def vision_ops():
    """torchvision's compiled operators (``torch.ops.torchvision``: the kernel behind
    ``torchvision.ops.nms``). When torchvision is not imported yet its library is loaded alone,
    without the Python package, whose import costs about 2 s (torch._dynamo, through
    torchvision.ops); if that fails, torchvision is imported the usual way."""
    import torch

    if "torchvision" not in sys.modules:
        spec = importlib.util.find_spec("torchvision")
        for folder in spec.submodule_search_locations if spec else []:
            for library in sorted(Path(folder).glob("_C*")):
                if library.suffix in (".so", ".pyd", ".dylib"):
                    with contextlib.suppress(OSError, RuntimeError):
                        torch.ops.load_library(str(library))
    try:
        torch.ops.torchvision.nms  # noqa: B018 - raises unless the operator is registered
    except (AttributeError, RuntimeError):
        import torchvision  # noqa: F401 - registers its operators
    return torch.ops.torchvision
