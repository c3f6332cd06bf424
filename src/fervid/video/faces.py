"""Frames in, tracked and aligned faces out: the front end of ``predict`` and ``write_crops``.

::

    reader = read_frames("clip.mp4", every=2)
    for faces in track_faces(reader, build_detector()):
        faces.frame.index, faces.track_ids, faces.crops  # crops: uint8 (N, 3, 112, 112)
    reader.report  # did the video decode to its end?
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from fervid.video.align import TEMPLATE_SIZE, align_faces
from fervid.video.decode import Frame
from fervid.video.detect import SCORE, FaceDetector, empty_detections
from fervid.video.track import FaceTracker


@dataclass(frozen=True)
class FrameFaces:
    """The faces of one frame: (N, 15) detections (``fervid.video.detect``), their (N,) track
    ids and their aligned crops, uint8 (N, 3, size, size); N may be 0. ``crops`` is None when
    ``track_faces`` was asked not to align (the consumer aligns, e.g. in another thread)."""

    frame: Frame
    detections: np.ndarray
    track_ids: np.ndarray
    crops: np.ndarray | None


def track_faces(
    frames: Iterable[Frame],
    detector: FaceDetector,
    tracker: FaceTracker | None = None,
    min_score: float | None = None,
    size: int = TEMPLATE_SIZE,
    detect_every: int = 1,
    align: bool = True,
) -> Iterator[FrameFaces]:
    """Detect, track and align the faces of each frame, one frame at a time. ``min_score``
    drops detections below it on top of the detector's own threshold; ``tracker`` defaults to
    a fresh ``FaceTracker()`` (pass one to choose its options or to read its tracks after).

    ``detect_every=k`` runs the detector on every k-th frame only and crops the frames between
    with the last detections (same boxes, landmarks and ids): k times less detection work, at
    the price of crops that lag fast head motion by up to k - 1 frames. The tracker then sees
    only the detected frames (its ``max_missed`` counts those)."""
    if detect_every < 1:
        raise ValueError(f"detect_every must be >= 1, got {detect_every}")
    tracker = tracker if tracker is not None else FaceTracker()
    detections, track_ids = empty_detections(), np.zeros(0, np.int64)
    for position, frame in enumerate(frames):
        if position % detect_every == 0:
            detections = detector.detect([frame.image])[0]
            if min_score is not None:
                detections = detections[detections[:, SCORE] >= min_score]
            track_ids = tracker.update(detections)
        crops = align_faces(frame.image, detections, size) if align else None
        yield FrameFaces(frame, detections, track_ids, crops)
