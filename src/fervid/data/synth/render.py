"""Drawing faces: head pose, similarity transforms, aligned crops and whole scene frames.

Public entry points:

- :func:`render_aligned_face`: one face as an Aff-Wild2-style aligned crop (the 5 landmarks
  land on the ArcFace template, up to the person's own proportions and an optional jitter).
- :func:`render_scene_frame`: any number of faces at given positions, scales and rotations in
  an image of any size, with the ground-truth landmarks and box of each face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from fervid.data.synth.faces import FaceModel, face_shapes
from fervid.data.synth.identity import ARCFACE_TEMPLATE, CENTER_X, CROP_SIZE, Identity
from fervid.data.synth.shapes import HEAD_CENTER_Y, Shape


def project(
    points: np.ndarray, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0
) -> np.ndarray:
    """Turn 3-D aligned-crop points (k, 3) by yaw, pitch, roll (degrees); orthographic (k, 2)."""
    yaw, pitch, roll = np.radians([yaw, pitch, roll])
    x, y, z = points[:, 0] - CENTER_X, points[:, 1] - HEAD_CENTER_Y, points[:, 2]
    x1 = x * np.cos(yaw) + z * np.sin(yaw)
    z1 = -x * np.sin(yaw) + z * np.cos(yaw)
    y1 = y * np.cos(pitch) - z1 * np.sin(pitch)
    x2 = x1 * np.cos(roll) - y1 * np.sin(roll)
    y2 = x1 * np.sin(roll) + y1 * np.cos(roll)
    return np.stack([x2 + CENTER_X, y2 + HEAD_CENTER_Y], axis=1).astype(np.float32)


def similarity_matrix(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, shift) taking ``source`` to
    ``target`` (Umeyama), as used to align faces to the ArcFace template."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mean_s, mean_t = source.mean(0), target.mean(0)
    s, t = source - mean_s, target - mean_t
    u, singular, vt = np.linalg.svd(t.T @ s / len(s))
    d = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
    rotation = u @ d @ vt
    scale = np.trace(np.diag(singular) @ d) / (s**2).sum(1).mean()
    shift = mean_t - scale * rotation @ mean_s
    return np.concatenate([scale * rotation, shift[:, None]], axis=1).astype(np.float32)


def placement_matrix(center: tuple[float, float], scale: float, rotation: float) -> np.ndarray:
    """2x3 matrix putting the aligned crop's centre (56, 56) at ``center``, ``scale`` pixels per
    crop unit, rotated by ``rotation`` degrees (counter-clockwise as seen in the image)."""
    angle = np.radians(-rotation)
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    linear = np.array([[c, -s], [s, c]])
    shift = np.asarray(center) - linear @ np.array([CENTER_X, CROP_SIZE / 2])
    return np.concatenate([linear, shift[:, None]], axis=1).astype(np.float32)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of ``outer`` after ``inner``."""
    linear = outer[:, :2] @ inner[:, :2]
    return np.concatenate([linear, (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], 1)


def jitter_matrix(dx: float, dy: float, log_scale: float, angle: float, size: float) -> np.ndarray:
    """A small similarity about the image centre: alignment error of a real face aligner."""
    a = np.radians(angle)
    s = np.exp(log_scale)
    linear = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    center = np.array([size / 2, size / 2])
    shift = center - linear @ center + np.array([dx, dy])
    return np.concatenate([linear, shift[:, None]], axis=1).astype(np.float32)


@dataclass
class DrawnFace:
    landmarks: np.ndarray
    """(5, 2) pixels: eye centres (image left, right), nose tip, mouth corners (left, right)."""
    box: np.ndarray
    """(4,) x0, y0, x1, y1 pixels: the bounding box of the face outline (forehead to chin)."""


def draw_face(
    image: Image.Image,
    model: FaceModel,
    pose: tuple[float, float, float],
    matrix: np.ndarray,
    supersample: int,
) -> DrawnFace:
    """Draw ``model`` turned by ``pose`` (yaw, pitch, roll) and placed by ``matrix`` (crop units
    to output pixels) on ``image``, which is ``supersample`` times the output size."""
    opaque, blended = ImageDraw.Draw(image), ImageDraw.Draw(image, "RGBA")
    sizes = [len(shape.points) for shape in model.shapes]
    everything = np.concatenate([model.points, model.landmarks, model.outline])
    flat = apply(matrix, project(everything, *pose))
    pixels_per_unit = float(np.sqrt(abs(np.linalg.det(matrix[:, :2])))) * supersample
    start = 0
    scaled = _to_canvas(flat[: len(model.points)], supersample).ravel().tolist()
    for shape, size in zip(model.shapes, sizes, strict=True):
        coordinates = scaled[2 * start : 2 * (start + size)]
        start += size
        if shape.colour[3] <= 0:
            continue
        canvas = opaque if shape.colour[3] == 255 else blended
        if shape.kind == "polygon":
            canvas.polygon(coordinates, fill=shape.colour)
        else:
            width = max(1, int(round(shape.width * pixels_per_unit)))
            canvas.line(coordinates, fill=shape.colour, width=width)
    landmarks = flat[start : start + 5]
    outline = flat[start + 5 :]
    box = np.concatenate([outline.min(0), outline.max(0)])
    return DrawnFace(landmarks=landmarks.astype(np.float32), box=box.astype(np.float32))


def _to_canvas(points: np.ndarray, supersample: int) -> np.ndarray:
    """Output pixel coordinates (pixel centres at integers) on the supersampled canvas: output
    pixel i covers canvas pixels supersample*i .. supersample*i + supersample - 1."""
    return points * supersample + (supersample - 1) / 2


def _canvas(
    background: np.ndarray | Image.Image | None, width: int, height: int, supersample: int
) -> Image.Image:
    """The image to draw on: ``supersample`` times the output size, the background filled in.
    ``background`` is an RGB array of at least the output size, or a PIL image of the canvas
    size (already supersampled), or None for flat grey."""
    size = (width * supersample, height * supersample)
    if background is None:
        return Image.new("RGB", size, (128, 128, 128))
    if isinstance(background, Image.Image):
        if background.size != size:
            raise ValueError(f"background image must be {size}, got {background.size}")
        return background.convert("RGB") if background.mode != "RGB" else background.copy()
    image = Image.fromarray(np.ascontiguousarray(background[:height, :width]))
    return image.resize(size, Image.Resampling.NEAREST) if supersample > 1 else image


def _finish(image: Image.Image, supersample: int) -> Image.Image:
    return image.reduce(supersample) if supersample > 1 else image


def render_aligned_face(
    person: Identity,
    aus: np.ndarray | None = None,
    *,
    yaw: float = 0.0,
    pitch: float = 0.0,
    roll: float = 0.0,
    gaze: tuple[float, float] = (0.0, 0.0),
    jitter: tuple[float, float, float, float] | None = None,
    size: int = CROP_SIZE,
    background: np.ndarray | Image.Image | None = None,
    supersample: int = 2,
    extra_shapes: list[Shape] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """An aligned face crop, as ``cropped_aligned`` holds: (size, size, 3) uint8 and (5, 2)
    landmarks in pixels.

    The head is turned by yaw/pitch/roll (degrees), then the similarity that best maps its 5
    landmarks onto the ArcFace template (scaled to ``size``) is applied, followed by ``jitter``
    (dx, dy pixels, log-scale, degrees). A frontal face without jitter therefore has its
    landmarks on the template, up to the person's own proportions (a few pixels).
    ``background``: an RGB array of at least (size, size), or a PIL image of the supersampled
    size, or None (flat grey). ``extra_shapes``: shapes (``faces.Shape``) in output pixels drawn
    on top of the face (occluders).
    """
    model = face_shapes(person, aus, gaze)
    posed = project(model.landmarks, yaw, pitch, roll)
    matrix = similarity_matrix(posed, ARCFACE_TEMPLATE * (size / CROP_SIZE))
    if jitter is not None:
        matrix = compose(jitter_matrix(*jitter, size=size), matrix)
    image = _canvas(background, size, size, supersample)
    drawn = draw_face(image, model, (yaw, pitch, roll), matrix, supersample)
    if extra_shapes:
        canvas = ImageDraw.Draw(image, "RGBA")
        for shape in extra_shapes:
            canvas.polygon(
                _to_canvas(shape.points, supersample).ravel().tolist(), fill=shape.colour
            )
    return np.asarray(_finish(image, supersample)), drawn.landmarks


@dataclass
class FacePlacement:
    """Where and how one face appears in a scene frame."""

    person: Identity
    center: tuple[float, float]
    """Pixel position of the aligned crop's centre (56, 56), between the eyes and the mouth."""
    scale: float = 1.0
    """Pixels per aligned-crop unit: 1.0 draws the face as big as in a 112x112 crop."""
    rotation: float = 0.0
    """In-plane rotation, degrees, counter-clockwise."""
    yaw: float = 0.0
    pitch: float = 0.0
    aus: np.ndarray | None = None
    """Action-unit intensities (see ``expressions.AU_NAMES``); None = neutral."""
    gaze: tuple[float, float] = (0.0, 0.0)


def render_scene_frame(
    size: tuple[int, int],
    faces: list[FacePlacement],
    background: np.ndarray | None = None,
    supersample: int = 2,
) -> tuple[np.ndarray, list[DrawnFace]]:
    """A (height, width, 3) uint8 frame of ``size`` = (width, height) with ``faces`` drawn in
    order, and per face its landmarks and box in pixels.

    A frontal neutral face placed at ``center`` with ``scale`` and ``rotation`` has its landmarks
    at ``placement_matrix(center, scale, rotation)`` applied to ``person.landmarks``.
    """
    width, height = size
    image = _canvas(background, width, height, supersample)
    drawn = []
    for face in faces:
        model = face_shapes(face.person, face.aus, face.gaze)
        matrix = placement_matrix(face.center, face.scale, face.rotation)
        drawn.append(draw_face(image, model, (face.yaw, face.pitch, 0.0), matrix, supersample))
    return np.asarray(_finish(image, supersample)), drawn
