"""5-landmark similarity alignment onto the ArcFace template (fervid.video.align)."""

from __future__ import annotations

import numpy as np
import pytest

from fervid.video.align import (
    ARCFACE_TEMPLATE,
    align_faces,
    alignment_matrices,
    similarity_transforms,
    template_for,
)


def similarity(scale: float, angle: float, shift) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[scale * cos, -scale * sin, shift[0]], [scale * sin, scale * cos, shift[1]]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def draw_dots(points: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """A black RGB image with a white Gaussian dot centred (sub-pixel) on each point."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    canvas = np.zeros(shape)
    for x, y in points:
        canvas = np.maximum(canvas, np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2)))
    return np.repeat((255 * canvas).round().astype(np.uint8)[:, :, None], 3, axis=2)


def dot_centroid(crop: np.ndarray, near: np.ndarray, radius: int = 7) -> np.ndarray:
    grey = crop.astype(np.float64).mean(axis=0)
    x0, y0 = np.round(near).astype(int) - radius
    window = grey[y0 : y0 + 2 * radius + 1, x0 : x0 + 2 * radius + 1]
    weights = np.clip(window - 0.2 * window.max(), 0, None)
    rows, cols = np.mgrid[y0 : y0 + 2 * radius + 1, x0 : x0 + 2 * radius + 1]
    return np.array([(weights * cols).sum(), (weights * rows).sum()]) / weights.sum()


def test_umeyama_recovers_known_similarities_exactly():
    rng = np.random.default_rng(0)
    truths = [
        similarity(rng.uniform(0.2, 4), rng.uniform(-np.pi, np.pi), rng.uniform(-200, 200, 2))
        for _ in range(6)
    ]
    # faces in a frame: the template moved by the inverse of each frame-to-crop transform
    inverses = [np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2] for m in truths]
    faces = np.stack([apply(inverse, ARCFACE_TEMPLATE) for inverse in inverses])
    estimated = similarity_transforms(faces, ARCFACE_TEMPLATE)
    assert estimated.shape == (6, 2, 3)
    assert np.allclose(estimated, np.stack(truths), atol=1e-9)
    assert similarity_transforms(faces[0], ARCFACE_TEMPLATE).shape == (2, 3)


def test_mirrored_landmarks_give_a_rotation_not_a_reflection():
    mirrored = ARCFACE_TEMPLATE * [-1, 1]
    matrix = similarity_transforms(mirrored, ARCFACE_TEMPLATE)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_least_squares_fit_of_noisy_landmarks_beats_any_nudged_transform():
    rng = np.random.default_rng(1)
    noisy = apply(similarity(1.7, 0.4, (30, 60)), ARCFACE_TEMPLATE) + rng.normal(0, 2, (5, 2))
    best = similarity_transforms(noisy, ARCFACE_TEMPLATE)

    def error(matrix):
        return ((apply(matrix, noisy) - ARCFACE_TEMPLATE) ** 2).sum()

    for _ in range(20):
        a, b = best[0, 0], best[1, 0]  # similarity: [[a, -b, tx], [b, a, ty]]
        da, db, dx, dy = rng.normal(0, 1e-3, 4)
        nudged = np.array([[a + da, -(b + db), best[0, 2] + dx], [b + db, a + da, best[1, 2] + dy]])
        assert error(nudged) >= error(best)


@pytest.mark.parametrize(("scale", "angle"), [(2.5, 0.3), (1.2, -0.5), (0.8, 0.05)])
def test_a_synthetic_face_lands_on_the_template_within_a_pixel(scale, angle):
    # five dots drawn where a known similarity puts the template in a 400x500 frame
    place = similarity(scale, angle, (180, 120))
    landmarks = apply(place, ARCFACE_TEMPLATE)
    frame = draw_dots(landmarks, (400, 500), sigma=1.5 * scale)
    crop = align_faces(frame, landmarks[None])
    assert crop.shape == (1, 3, 112, 112) and crop.dtype == np.uint8
    for point in ARCFACE_TEMPLATE:  # "within a pixel"; measured ~0.01, a half-pixel slip fails
        assert np.linalg.norm(dot_centroid(crop[0], point) - point) < 0.2


def test_detection_rows_are_accepted_and_many_faces_are_aligned_at_once():
    place = [similarity(1.5, 0.0, (20, 30)), similarity(1.0, 0.2, (250, 100))]
    landmarks = np.stack([apply(m, ARCFACE_TEMPLATE) for m in place])
    frame = draw_dots(landmarks.reshape(-1, 2), (300, 400), sigma=2.0)
    rows = np.zeros((2, 15), np.float32)
    rows[:, 5:] = landmarks.reshape(2, 10)
    crops = align_faces(frame, rows)
    assert crops.shape == (2, 3, 112, 112)
    for crop in crops:
        assert np.linalg.norm(dot_centroid(crop, ARCFACE_TEMPLATE[2]) - ARCFACE_TEMPLATE[2]) < 0.5
    assert align_faces(frame, np.zeros((0, 5, 2))).shape == (0, 3, 112, 112)


def test_other_crop_sizes_scale_the_template_and_outside_the_frame_is_black():
    assert np.allclose(template_for(224), (ARCFACE_TEMPLATE + 0.5) * 2 - 0.5)
    landmarks = ARCFACE_TEMPLATE * 0.5 - 10  # face hanging off the top-left corner
    frame = np.full((100, 100, 3), 255, np.uint8)
    crop = align_faces(frame, landmarks[None], size=224)[0]
    assert crop.shape == (3, 224, 224)
    assert crop[:, :10, :10].max() == 0 and crop[:, -10:, -10:].min() == 255
    matrix = alignment_matrices(landmarks[None], 224)[0]
    assert np.allclose(apply(matrix, landmarks), template_for(224), atol=1e-6)
