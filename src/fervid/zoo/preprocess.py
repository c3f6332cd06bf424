"""What a model file's sidecar says about its input, done with numpy (no torch): the face crop
(fervid's 5-point alignment, or the detector's box with a margin), resizing to the network's
size, colour order and normalisation.

Resizing is a pair of matrices, one per axis (``rows @ image @ columns.T``):

- ``antialias=False``: bilinear with half-pixel centres and edge pixels repeated, what OpenCV's
  ``cv2.resize(..., INTER_LINEAR)`` computes (before its 8-bit rounding) and what PyTorch's
  ``F.interpolate(mode="bilinear", align_corners=False)`` computes;
- ``antialias=True``: a triangle filter widened by the reduction factor when shrinking, weights
  normalised, which is PyTorch's ``F.interpolate(..., antialias=True)`` (and PIL's bilinear);
  for enlarging it equals the plain one.
"""

from __future__ import annotations

import functools

import numpy as np

from fervid.video.align import TEMPLATE_SIZE, align_faces

ALIGNED = ("aligned", TEMPLATE_SIZE)
"""The crop fervid's own models read: 5-point similarity onto the ArcFace 112x112 template."""


@functools.lru_cache(maxsize=32)
def resize_matrix(size_in: int, size_out: int, antialias: bool) -> np.ndarray:
    """(size_out, size_in) float64 weights mapping a row of pixels to the resized row."""
    scale = size_in / size_out
    support = max(scale, 1.0) if antialias else 1.0
    weights = np.zeros((size_out, size_in))
    for i in range(size_out):
        centre = (i + 0.5) * scale
        if antialias:
            low = max(int(centre - support + 0.5), 0)
            high = min(int(centre + support + 0.5), size_in)
            taps = np.arange(low, high)
            w = np.clip(1 - np.abs((taps + 0.5 - centre) / support), 0, None)
            weights[i, taps] = w / w.sum()
        else:
            source = max(centre - 0.5, 0.0)
            left = min(int(source), size_in - 1)
            right = min(left + 1, size_in - 1)
            fraction = source - left if left < size_in - 1 else 0.0
            weights[i, left] += 1 - fraction
            weights[i, right] += fraction
    return weights


def resize(images: np.ndarray, size: int, antialias: bool = False) -> np.ndarray:
    """float32 (..., H, W) images resized to (..., size, size) (module doc)."""
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return images.astype(np.float32, copy=False)
    rows = resize_matrix(height, size, antialias).astype(np.float32)
    columns = resize_matrix(width, size, antialias).astype(np.float32)
    # two large matrix products (one per axis) rather than one small product per image
    lead = images.shape[:-2]
    wide = images.astype(np.float32, copy=False).reshape(-1, width) @ columns.T
    tall = np.tensordot(rows, wide.reshape(*lead, height, size), axes=([1], [len(lead)]))
    return np.ascontiguousarray(np.moveaxis(tall, 0, -2), dtype=np.float32)


def box_crops(image: np.ndarray, detections: np.ndarray, size: int, margin: float) -> np.ndarray:
    """uint8 (N, 3, size, size) crops of the detector's boxes in an (H, W, 3) RGB image: each box
    widened by ``margin`` of its width / height on every side, clipped to the image, cut at whole
    pixels (``image[y0:y1, x0:x1]``) and resized to size x size (its aspect ratio is not kept),
    bilinear and rounded to 8 bits as ``cv2.resize`` does with uint8 images."""
    crops = np.zeros((len(detections), 3, size, size), np.uint8)
    height, width = image.shape[:2]
    for k, box in enumerate(np.asarray(detections, np.float64)[:, :4]):
        x0, y0, x1, y1 = box
        dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
        left, top = max(int(x0 - dx), 0), max(int(y0 - dy), 0)
        right, bottom = min(int(x1 + dx), width), min(int(y1 + dy), height)
        if right <= left or bottom <= top:
            continue  # a box outside the image: a black crop
        face = image[top:bottom, left:right].transpose(2, 0, 1).astype(np.float32)
        crops[k] = np.clip(np.rint(resize_unequal(face, size)), 0, 255).astype(np.uint8)
    return crops


def resize_unequal(image: np.ndarray, size: int) -> np.ndarray:
    """(3, H, W) float32 -> (3, size, size), bilinear without antialiasing (cv2 INTER_LINEAR)."""
    rows = resize_matrix(image.shape[1], size, False).astype(np.float32)
    columns = resize_matrix(image.shape[2], size, False).astype(np.float32)
    return rows @ image @ columns.T


def face_crops(image: np.ndarray, detections: np.ndarray, spec: tuple) -> np.ndarray:
    """The crops a model of crop ``spec`` reads: ``("aligned", size)`` or
    ``("box", size, margin)``."""
    if spec[0] == "aligned":
        return align_faces(image, detections, spec[1])
    return box_crops(image, detections, spec[1], spec[2])


def crop_spec(crop: dict, input_size: int) -> tuple:
    """A hashable crop spec from a sidecar's ``crop`` entry (box crops are made at the network's
    input size)."""
    if crop["type"] == "aligned":
        return ("aligned", int(crop.get("size", TEMPLATE_SIZE)))
    return ("box", int(input_size), float(crop.get("margin", 0.0)))


def network_input(crops: np.ndarray, spec: dict) -> np.ndarray:
    """uint8 crops (B, 3, H, W), RGB -> float32 network input, as the sidecar's ``input`` says:
    resized to ``size`` (``antialias``; ``round``: to 8 bits after resizing), ``colour`` order
    (RGB or BGR), ``x / 255``, minus ``mean``, over ``std``."""
    size = int(spec["size"])
    resizing = spec.get("resize", {})
    pixels = crops.astype(np.float32)
    if pixels.shape[-2:] != (size, size):
        pixels = resize(pixels, size, bool(resizing.get("antialias", False)))
        if resizing.get("round", False):
            pixels = np.clip(np.rint(pixels), 0, 255)
    if str(spec["colour"]).upper() == "BGR":
        pixels = pixels[:, ::-1]
    mean = np.asarray(spec["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(spec["std"], np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((pixels / np.float32(255) - mean) / std, dtype=np.float32)
