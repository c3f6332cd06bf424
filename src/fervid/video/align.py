"""Face alignment: a 5-landmark similarity transform onto the ArcFace 112x112 template.

This is how Aff-Wild2's ``cropped_aligned`` faces are made: estimate the least-squares
similarity (rotation, uniform scale, translation; never a reflection; Umeyama 1991) that takes a
face's five landmarks onto the template, then warp the frame with it (bilinear, black outside
the frame). Coordinates index pixel centres, as in OpenCV's ``warpAffine``.

``align_faces(frame, landmarks)`` crops every face of one frame in one call and returns uint8
(N, 3, size, size). The warp is PIL's ``Image.transform`` per face: for a few faces per frame it
was about 5x faster than torch ``affine_grid`` + ``grid_sample``, which first has to turn the
whole frame into a float tensor (figures in docs/video.md).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

TEMPLATE_SIZE = 112
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],  # left eye (image left)
        [73.5318, 51.5014],  # right eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # left mouth corner
        [70.7299, 92.2041],  # right mouth corner
    ],
    dtype=np.float64,
)


def template_for(size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The ArcFace template scaled to a ``size`` x ``size`` crop (pixel-centre coordinates)."""
    return (ARCFACE_TEMPLATE + 0.5) * (size / TEMPLATE_SIZE) - 0.5


def similarity_transforms(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity transforms (Umeyama, no reflection) taking each set of points
    in ``source`` (N, K, 2) or (K, 2) onto ``target`` (K, 2). Returns (N, 2, 3) matrices ``M``
    with ``target ~= M[:, :2] @ p + M[:, 2]`` (or (2, 3) for a single set)."""
    source = np.asarray(source, np.float64)
    single = source.ndim == 2
    source = source.reshape(-1, *source.shape[-2:])
    target = np.asarray(target, np.float64)
    source_mean = source.mean(axis=1, keepdims=True)
    target_mean = target.mean(axis=0)
    source_centred = source - source_mean
    target_centred = target - target_mean
    covariance = np.einsum("ki,nkj->nij", target_centred, source_centred) / source.shape[1]
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    sign[sign == 0] = 1.0
    correction = np.ones((len(source), 2))
    correction[:, 1] = sign
    rotation = np.einsum("nij,nj,njk->nik", u, correction, vt)
    variance = (source_centred**2).sum(axis=2).mean(axis=1)
    scale = (singular * correction).sum(axis=1) / np.maximum(variance, 1e-12)
    linear = scale[:, None, None] * rotation
    translation = target_mean - np.einsum("nij,nj->ni", linear, source_mean[:, 0])
    matrices = np.concatenate([linear, translation[:, :, None]], axis=2)
    return matrices[0] if single else matrices


def alignment_matrices(landmarks: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """(N, 2, 3) matrices from frame pixels to crop pixels for (N, 5, 2) landmarks."""
    landmarks = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    return similarity_transforms(landmarks, template_for(size))


def align_faces(image: np.ndarray, landmarks: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """Aligned crops of the faces of one (H, W, 3) uint8 RGB frame, given their (N, 5, 2)
    landmarks (or (N, 15) detection rows). Returns uint8 (N, 3, size, size)."""
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.ndim == 2 and landmarks.shape[1] == 15:
        landmarks = landmarks[:, 5:15]
    landmarks = landmarks.reshape(-1, 5, 2)
    return warp_faces(image, alignment_matrices(landmarks, size), size)


def warp_faces(image: np.ndarray, matrices: np.ndarray, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """Warp one frame with each (2, 3) frame-to-crop matrix; uint8 (N, 3, size, size)."""
    matrices = np.asarray(matrices, np.float64).reshape(-1, 2, 3)
    crops = np.zeros((len(matrices), 3, size, size), np.uint8)
    if len(matrices) == 0:
        return crops
    frame = Image.fromarray(np.ascontiguousarray(image))
    for position, matrix in enumerate(matrices):
        crop = frame.transform(
            (size, size), Image.AFFINE, _pil_coefficients(matrix), resample=Image.BILINEAR
        )
        crops[position] = np.asarray(crop).transpose(2, 0, 1)
    return crops


def _pil_coefficients(matrix: np.ndarray) -> tuple[float, ...]:
    """PIL's AFFINE data for a frame-to-crop matrix in pixel-centre coordinates.

    PIL maps each output point (continuous coordinates, pixel i spanning [i, i + 1)) back to
    the input, so it needs the inverse matrix, shifted by half a pixel on both sides."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    linear, offset = inverse[:, :2], inverse[:, 2]
    # input_cont = A (output_cont - 0.5) + b + 0.5
    shifted = offset + 0.5 - linear @ np.array([0.5, 0.5])
    return (*linear[0], shifted[0], *linear[1], shifted[1])
