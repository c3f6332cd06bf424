"""Face detectors (fervid.video.detect and its backends)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fervid.data.images import load_rgb
from fervid.errors import ConfigError
from fervid.video.decode import read_frames
from fervid.video.detect import (
    DETECTORS,
    FaceDetector,
    box_iou,
    build_detector,
    landmarks_of,
    load_backends,
    non_max_suppression,
)
from tests.helpers import SHARED_DATA

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
load_backends()
BACKENDS = DETECTORS.names()


class CentreFaceDetector(FaceDetector):
    """Finds one face in the middle of whatever (downscaled) image it is given."""

    def _detect_resized(self, images):
        self.seen = [image.shape for image in images]
        rows = []
        for image in images:
            height, width = image.shape[:2]
            cx, cy = (width - 1) / 2, (height - 1) / 2
            points = [cx - 4, cy - 4, cx + 4, cy - 4, cx, cy, cx - 3, cy + 4, cx + 3, cy + 4]
            box = [width / 4, height / 4, 3 * width / 4, 3 * height / 4]
            rows.append(np.array([[*box, 0.9, *points]], np.float32))
        return rows


def test_both_backends_are_registered_and_unknown_names_are_config_errors():
    assert {"retinaface", "yunet"} <= set(BACKENDS)
    with pytest.raises(ConfigError, match="retinaface"):
        build_detector("no-such-detector")


def test_detections_are_mapped_back_from_the_downscaled_image():
    detector = CentreFaceDetector(max_side=100)
    image = np.zeros((300, 400, 3), np.uint8)
    (found,) = detector.detect([image])
    assert detector.seen == [(75, 100, 3)]
    assert np.allclose(found[0, :4], [100, 75, 300, 225])
    assert np.allclose(landmarks_of(found)[0, 2], [199.5, 149.5])  # pixel centre of the middle
    small = np.zeros((60, 80, 3), np.uint8)  # never upscaled
    detector.detect([small])
    assert detector.seen == [(60, 80, 3)]


def test_score_and_size_thresholds_filter_detections():
    image = np.zeros((300, 400, 3), np.uint8)
    assert len(CentreFaceDetector(min_score=0.95).detect([image])[0]) == 0
    assert len(CentreFaceDetector(min_face=151).detect([image])[0]) == 0
    assert len(CentreFaceDetector(min_face=149).detect([image])[0]) == 1
    with pytest.raises(ValueError):
        CentreFaceDetector(min_score=2.0)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert box_iou(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(81 / 119)
    assert non_max_suppression(boxes, np.array([0.5, 0.9, 0.7]), 0.4).tolist() == [1, 2]


def reference_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """torchvision's box IoU, the reference for fervid's own (which avoids importing it)."""
    import torch
    import torchvision

    a, b = (torch.from_numpy(np.asarray(x, np.float64).reshape(-1, 4)) for x in (a, b))
    return torchvision.ops.box_iou(a, b).numpy()


def hand_written_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """The greedy NMS fervid ran itself before it called torchvision's kernel (the reference)."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    kept: list[int] = []
    while order.size:
        best = int(order[0])
        kept.append(best)
        overlap = reference_iou(boxes[best], boxes[order[1:]])[0]
        order = order[1:][overlap <= iou]
    return np.asarray(kept, dtype=np.int64)


@pytest.mark.parametrize("seed", range(20))
def test_nms_and_iou_equal_their_references_on_random_boxes(seed):
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0, 200, (60, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(5, 80, (60, 2))], axis=1)
    scores = rng.permutation(60).astype(np.float32) / 60  # distinct, as a detector's are
    np.testing.assert_allclose(box_iou(boxes, boxes[:7]), reference_iou(boxes, boxes[:7]))
    for threshold in (0.2, 0.4, 0.7):
        expected = hand_written_nms(boxes, scores, threshold)
        np.testing.assert_array_equal(non_max_suppression(boxes, scores, threshold), expected)


@needs_data
@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.slow
def test_detector_output_is_identical_with_the_hand_written_nms(name, monkeypatch):
    """Each backend on the real images and the first frames of the clip, with torchvision's NMS
    and with the former hand-written one: the same detections to the bit."""
    images = [load_rgb(SHARED_DATA / "multi_face.jpg"), load_rgb(SHARED_DATA / "single_face.jpg")]
    images += [
        frame.image
        for _, frame in zip(range(8), read_frames(SHARED_DATA / "WolfgangLanger_Pexels.mp4"))
    ]
    detector = build_detector(name, min_score=0.3)
    with_torchvision = detector.detect(images)
    module = sys.modules[type(detector).__module__]
    monkeypatch.setattr(module, "non_max_suppression", hand_written_nms)
    by_hand = detector.detect(images)
    assert sum(len(found) for found in by_hand) >= 10
    for new, old in zip(with_torchvision, by_hand, strict=True):
        np.testing.assert_array_equal(new, old)


@pytest.mark.parametrize("name", BACKENDS)
def test_backends_return_empty_arrays_for_blank_images(name):
    detector = build_detector(name)
    assert detector.detect([]) == []
    found = detector.detect(
        [np.zeros((240, 320, 3), np.uint8), np.full((97, 131, 3), 200, np.uint8)]
    )
    assert [f.shape for f in found] == [(0, 15), (0, 15)]
    assert all(f.dtype == np.float32 for f in found)
    with pytest.raises(ValueError):
        detector.detect([np.zeros((240, 320), np.uint8)])


@pytest.mark.slow
def test_retinaface_never_imports_opencv():
    code = (
        "import sys, numpy as np; from fervid.video.detect import build_detector; "
        "build_detector('retinaface').detect([np.zeros((64, 64, 3), np.uint8)]); "
        "assert 'cv2' not in sys.modules and 'retinaface' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_data
@pytest.mark.parametrize("name", BACKENDS)
def test_faces_in_the_sample_images(name):
    detector = build_detector(name)
    (single,) = detector.detect([load_rgb(SHARED_DATA / "single_face.jpg")])
    (multi,) = detector.detect([load_rgb(SHARED_DATA / "multi_face.jpg")])
    assert len(single) == 1 and len(multi) == 5
    assert (np.diff(multi[:, 4]) <= 0).all()  # sorted by score
    points = landmarks_of(single)[0]
    box = single[0, :4]
    assert (points[:, 0] > box[0]).all() and (points[:, 0] < box[2]).all()
    assert (points[:, 1] > box[1]).all() and (points[:, 1] < box[3]).all()
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


@needs_data
@pytest.mark.slow
def test_default_detector_finds_the_face_in_nearly_every_frame_of_the_clip():
    detector = build_detector()
    assert detector.name == "retinaface" and detector.max_side == 320
    counts = [
        len(detector.detect([f.image])[0])
        for f in read_frames(SHARED_DATA / "WolfgangLanger_Pexels.mp4")
    ]
    assert len(counts) == 472
    assert np.mean(np.asarray(counts) >= 1) >= 0.95
    assert np.mean(np.asarray(counts) == 1) >= 0.95


@needs_data
@pytest.mark.slow
def test_yunet_finds_the_face_in_the_clip():
    detector = build_detector("yunet")
    frames = read_frames(SHARED_DATA / "WolfgangLanger_Pexels.mp4", every=12)
    counts = [len(detector.detect([f.image])[0]) for f in frames]
    assert np.mean(np.asarray(counts) >= 1) >= 0.95


@needs_data
@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.slow
def test_no_face_in_the_clip_without_faces(name):
    detector = build_detector(name)
    every = 1 if name == "retinaface" else 4
    frames = [f.image for f in read_frames(SHARED_DATA / "no_face.mp4", every=every)]
    assert sum(len(found) for found in detector.detect(frames)) == 0
