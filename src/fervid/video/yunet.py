"""YuNet (libfacedetection) through the ``yuface`` package (BSD, compiled in, no Python
dependencies). Slower than RetinaFace per CPU core, and its coordinates are whole pixels of the
image it sees; kept as the backend with the lightest install.

yuface runs on OpenMP, which by default keeps one busy-waiting thread per core; on a loaded
machine that made it ten times slower here. ``threads`` (default 1) caps OpenMP's threads for
the duration of each call and restores the previous value afterwards. Which OpenMP runtime
yuface uses depends on import order (its own bundled libgomp, or torch's when torch was imported
first and exported its copy globally), so the cap is applied to both.
"""

from __future__ import annotations

import contextlib
import ctypes

import numpy as np

from fervid.errors import ConfigError
from fervid.video.detect import DETECTORS, FaceDetector, empty_detections, non_max_suppression


@DETECTORS.register("yunet")
class YuNetDetector(FaceDetector):
    """YuNet via yuface; scores are its confidences divided by 100. ``threads``: OpenMP
    threads of yuface's runtime (None: leave it alone)."""

    name = "yunet"
    default_min_score = 0.6

    def __init__(self, *args, threads: int | None = 1, **kwargs):
        super().__init__(*args, **kwargs)
        try:
            from yuface import yuface as extension
        except ImportError as error:
            raise ConfigError("face detector 'yunet' needs yuface: pip install yuface") from error
        self._detect_bgr = extension.detect
        self._extension_path = extension.__file__
        self.threads = threads

    def _detect_resized(self, images: list[np.ndarray]) -> list[np.ndarray]:
        if not self.threads:
            return [self._detect_one(image) for image in images]
        with openmp_threads(self.threads, self._extension_path):
            return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> np.ndarray:
        # rows: confidence (0-100), x, y, w, h, 5 landmarks (x, y), one trailing value
        raw = np.asarray(self._detect_bgr(np.ascontiguousarray(image[..., ::-1])), np.float32)
        raw = raw[raw[:, 0] >= self.min_score * 100] if raw.size else raw
        if raw.size == 0:
            return empty_detections()
        found = np.empty((len(raw), 15), np.float32)
        found[:, 0:2] = raw[:, 1:3]
        found[:, 2:4] = raw[:, 1:3] + raw[:, 3:5]
        found[:, 4] = raw[:, 0] / 100.0
        found[:, 5:15] = raw[:, 5:15]
        return found[non_max_suppression(found[:, :4], found[:, 4], self.nms_iou)]


@contextlib.contextmanager
def openmp_threads(threads: int, extension_path: str):
    """Cap the OpenMP runtimes an extension may be bound to (the process-wide one first, then
    the extension's own dependency) at ``threads`` for the calling thread, then restore them."""
    runtimes: dict[int, tuple] = {}
    for handle in (ctypes.CDLL(None), ctypes.CDLL(extension_path)):
        try:
            get, set_ = handle.omp_get_max_threads, handle.omp_set_num_threads
        except AttributeError:
            continue
        runtimes.setdefault(ctypes.cast(set_, ctypes.c_void_p).value, (get, set_))
    before = [(get(), set_) for get, set_ in runtimes.values()]
    for _, set_ in before:
        set_(threads)
    try:
        yield
    finally:
        for previous, set_ in before:
            set_(previous)
