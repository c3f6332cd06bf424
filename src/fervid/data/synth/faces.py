"""Face geometry: an identity and an AU vector become a list of 3-D shapes to draw.

Shapes are in aligned-crop units with a depth per point (towards the camera), so that the
renderer can turn the head (yaw, pitch, roll) before projecting. Drawing order is back to front.
The parts that move with the expression live in ``face_parts.py``; the outline, hair, beard and
glasses are here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fervid.data.synth import face_parts as parts
from fervid.data.synth.expressions import AU, NUM_AUS
from fervid.data.synth.identity import CENTER_X, Identity, shade
from fervid.data.synth.shapes import Shape, ellipse, lift, shape, smooth_closed


class FaceModel(NamedTuple):
    shapes: list[Shape]
    """Everything to draw, back to front."""
    points: np.ndarray
    """(n, 3): the points of all shapes, concatenated in order, with their depth."""
    landmarks: np.ndarray
    """(5, 3): eye centres (image left, right), nose tip, mouth corners (left, right)."""
    outline: np.ndarray
    """(k, 3): the face outline (forehead to chin), for the face's bounding box."""


def face_shapes(
    person: Identity, aus: np.ndarray | None = None, gaze: tuple[float, float] = (0.0, 0.0)
) -> FaceModel:
    """The shapes of ``person`` showing ``aus`` (looking towards ``gaze``, -1..1 per axis)."""
    a = np.zeros(NUM_AUS, dtype=np.float32) if aus is None else np.asarray(aus, dtype=np.float32)
    p = person
    mouth = parts.mouth_geometry(p, a)
    behind, in_front, neutral_contour = _static_parts(p)
    contour = _drop_jaw(p, neutral_contour, float(a[AU["jaw_drop"]]))
    outline = shape("polygon", contour, shade(p.skin, 1.0), surface=True)
    shapes = [*behind, outline]
    for side in (-1, 1):
        shapes.extend(parts.eye(p, a, side, gaze))
    shapes.extend(parts.cheeks(p, a))
    for side in (-1, 1):
        shapes.extend(parts.brow(p, a, side))
    shapes.extend(parts.forehead_and_glabella(p, a))
    shapes.extend(parts.nose(p, a))
    shapes.extend(parts.nasolabial(p, a, mouth))
    if p.beard != "none":
        shapes.extend(_beard(p, contour))
    shapes.extend(parts.mouth(p, a, mouth))
    shapes.extend(in_front)
    eye_x = (CENTER_X - p.eye_half_distance, CENTER_X + p.eye_half_distance)
    landmarks = [
        shape("line", [(eye_x[0], p.eye_y), (eye_x[1], p.eye_y)], (0, 0, 0, 0)),
        shape("line", [(CENTER_X, p.nose_y)], (0, 0, 0, 0), extra=14.0),
        shape("line", mouth["corners"], (0, 0, 0, 0), extra=4.0),
    ]
    points = lift(shapes + landmarks + [outline])
    end = len(points) - len(outline.points)
    return FaceModel(shapes, points[: end - 5], points[end - 5 : end], points[end:])


_STATIC: dict[int, tuple[Identity, list[Shape], list[Shape], np.ndarray]] = {}


def _static_parts(p: Identity) -> tuple[list[Shape], list[Shape], np.ndarray]:
    """What does not move with the expression: shapes behind the face, shapes in front of it,
    the neutral outline. Cached per person, as a video draws the same person many times."""
    cached = _STATIC.get(id(p))
    if cached is not None and cached[0] is p:
        return cached[1:]
    shoulders = [(-22, 132), (-70, 160), (-100, 230), (100, 230), (70, 160), (22, 132)]
    behind = [
        shape("polygon", [(CENTER_X + x, y) for x, y in shoulders], p.clothes + (255,), z=-40.0)
    ]
    if p.hair_style == "long":
        back = ellipse(CENTER_X, 62.0, p.face_half_width + 11, 80.0, 20)
        behind.append(shape("polygon", back, shade(p.hair, 0.8), z=-30.0))
    neck = [
        (CENTER_X + s * p.jaw_half_width * 0.8, y)
        for s, y in ((-1, 95), (-1, 160), (1, 160), (1, 95))
    ]
    behind.append(shape("polygon", neck, shade(p.skin, 0.82), z=-12.0))
    for side in (-1, 1):
        ear = ellipse(CENTER_X + side * (p.face_half_width + 1.0), p.eye_y + 12, 4.5, 9.5, 10)
        behind.append(shape("polygon", ear, shade(p.skin, 0.9), z=-6.0))
    contour = _contour(p)
    in_front = _hair(p, contour)
    if p.glasses != "none":
        in_front += _glasses(p)
    if len(_STATIC) > 32:
        _STATIC.clear()
    _STATIC[id(p)] = (p, behind, in_front, contour)
    return behind, in_front, contour


def _drop_jaw(p: Identity, contour: np.ndarray, jaw_drop: float) -> np.ndarray:
    """The outline with the chin lowered by the jaw drop (more towards the chin)."""
    if jaw_drop <= 0:
        return contour
    share = np.clip((contour[:, 1] - p.nose_y) / (p.chin_y - p.nose_y), 0.0, 1.0)
    return contour + np.stack([np.zeros_like(share), 8.0 * jaw_drop * share], 1)


def _contour(p: Identity) -> np.ndarray:
    """The neutral face outline, from the top of the forehead round to the chin and back."""
    fw, jw, cw = p.face_half_width, p.jaw_half_width, p.chin_half_width
    right = [
        (0.0, p.forehead_y),
        (0.55 * fw, p.forehead_y + 5),
        (0.9 * fw, p.forehead_y + 22),
        (fw, p.eye_y - 4),
        (fw, p.eye_y + 8),
        (0.5 * (fw + jw), p.nose_y + 5),
        (jw, p.mouth_y + 2),
        (0.5 * (jw + cw) + 2, p.chin_y - 8),
        (cw, p.chin_y - 1),
    ]
    half = np.array(right, dtype=np.float32)
    left = half[::-1] * np.array([-1.0, 1.0])
    outline = np.concatenate([half, [[0.0, p.chin_y]], left[:-1]])
    outline[:, 0] += CENTER_X
    return smooth_closed(outline)


# ----------------------------------------------------------------------------------------------
# hair, beard, glasses


def _hair(p: Identity, contour: np.ndarray) -> list[Shape]:
    if p.hair_style == "bald":
        return []
    top = contour[contour[:, 1] < p.eye_y - 6]
    top = top[np.argsort(-np.arctan2(top[:, 1] - p.eye_y, top[:, 0] - CENTER_X))]  # right to left
    outer = (top - [CENTER_X, p.eye_y]) * [1.07, 1.1] + [CENTER_X, p.eye_y - 3]
    fw = p.face_half_width
    xs = np.linspace(-fw - 1, fw + 1, 9)
    hairline = p.hairline_y + 0.006 * xs**2 * 1.6
    if p.hair_style == "fringe":
        hairline = np.minimum(p.eye_y - p.brow_gap - 7, hairline + 12)
    elif p.hair_style == "side_part":
        hairline = hairline + np.clip(-xs, 0, None) * 0.25
    temples = np.stack([CENTER_X + xs, np.minimum(hairline, p.eye_y - 6)], 1)
    polygon = np.concatenate([outer, temples])
    return [shape("polygon", polygon, shade(p.hair, 1.0), extra=1.0)]


def _beard(p: Identity, contour: np.ndarray) -> list[Shape]:
    hair = p.hair
    if p.beard == "moustache":
        xs = np.linspace(-p.mouth_half_width, p.mouth_half_width, 7)
        bottom = p.mouth_y - 2.5 + 0.012 * xs**2
        top = np.maximum(p.nose_y + 4, bottom - 5 + 0.008 * xs**2)
        band = np.concatenate(
            [np.stack([CENTER_X + xs, top], 1), np.stack([CENTER_X + xs, bottom], 1)[::-1]]
        )
        return [shape("polygon", band, shade(hair, 0.9, 230), extra=4.0)]
    lower = contour[contour[:, 1] > p.nose_y + 2]
    order = np.argsort(np.arctan2(lower[:, 1] - p.nose_y, lower[:, 0] - CENTER_X))
    lower = lower[order]
    inner = [
        (CENTER_X - p.nose_half_width - 5, p.nose_y + 3),
        (CENTER_X, p.nose_y + 4.5),
        (CENTER_X + p.nose_half_width + 5, p.nose_y + 3),
    ]
    polygon = (
        np.concatenate([lower[::-1], np.array(inner)[::-1]]) if len(lower) else np.array(inner)
    )
    alpha = 90 if p.beard == "stubble" else 200
    return [shape("polygon", polygon, shade(hair, 0.9, alpha), extra=2.0)]


def _glasses(p: Identity) -> list[Shape]:
    colour = p.glasses_colour + (255,)
    shapes = []
    rx, ry = p.eye_half_width + 5.0, p.eye_half_height + 5.5
    for side in (-1, 1):
        cx = CENTER_X + side * p.eye_half_distance
        if p.glasses == "round":
            rim = ellipse(cx, p.eye_y, rx, ry + 1, 16)
        else:
            rim = smooth_closed(
                np.array(
                    [
                        [cx - rx, p.eye_y - ry],
                        [cx + rx, p.eye_y - ry],
                        [cx + rx, p.eye_y + ry],
                        [cx - rx, p.eye_y + ry],
                    ]
                ),
                1,
            )
        shapes.append(shape("polygon", rim, (200, 215, 230, 35), extra=7.0))
        shapes.append(shape("line", np.concatenate([rim, rim[:1]]), colour, 1.5, extra=7.0))
        arm = [
            (cx + side * rx, p.eye_y - 2),
            (CENTER_X + side * (p.face_half_width + 1), p.eye_y - 1),
        ]
        shapes.append(shape("line", arm, colour, 1.3, extra=3.0))
    bridge = [
        (CENTER_X - p.eye_half_distance + rx, p.eye_y - 2),
        (CENTER_X, p.eye_y - 3.5),
        (CENTER_X + p.eye_half_distance - rx, p.eye_y - 2),
    ]
    shapes.append(shape("line", bridge, colour, 1.4, extra=9.0))
    return shapes
