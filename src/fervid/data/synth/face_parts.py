"""The parts of a face that move with the expression: eyes, cheeks, brows, forehead, nose,
nasolabial folds and mouth. Each returns shapes in aligned-crop units (see ``shapes.py``)."""

from __future__ import annotations

import numpy as np

from fervid.data.synth.expressions import AU
from fervid.data.synth.identity import CENTER_X, Identity, shade
from fervid.data.synth.shapes import Shape, ellipse, shape

PUPIL = (15, 12, 12, 255)
GLINT = (250, 250, 250, 200)
LASHES = (25, 18, 16, 255)
EYE_ANGLES = np.linspace(0.0, np.pi, 9, dtype=np.float32)
BROW_U = np.linspace(0.0, 1.0, 6, dtype=np.float32)
MOUTH_U = np.linspace(-1.0, 1.0, 11, dtype=np.float32)
FOREHEAD_X = np.linspace(-18, 18, 7, dtype=np.float32)
CURVE_T = np.linspace(0, 1, 6, dtype=np.float32)[:, None]
BAG_X = np.linspace(-5, 6, 5, dtype=np.float32)
BAG_Y = np.array([0.6, 1.4, 1.7, 1.4, 0.6], dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# eyes, brows, forehead


def eye(p: Identity, a: np.ndarray, side: int, gaze: tuple[float, float]) -> list[Shape]:
    cx, cy = CENTER_X + side * p.eye_half_distance, p.eye_y
    w, h = p.eye_half_width, p.eye_half_height
    close = min(1.0, float(a[AU["eye_close"]]))
    widen, tighten, cheek = a[AU["upper_lid_raise"]], a[AU["lid_tighten"]], a[AU["cheek_raise"]]
    lower = h * max(0.15, 0.8 - 0.55 * tighten - 0.5 * cheek)
    upper = h * max(0.3, 1.0 + 1.6 * widen - 0.6 * tighten - 0.4 * cheek)
    upper = upper * (1.0 - close) - close * lower * 0.95
    angles = EYE_ANGLES
    xs = cx - side * w * np.cos(angles)  # from the inner corner outwards
    tilt = p.eye_tilt * (xs - cx) * side / w
    top = np.stack([xs, cy - upper * np.sin(angles) - tilt], 1)
    bottom = np.stack([xs, cy + lower * np.sin(angles) - tilt], 1)
    iris_x, iris_y = cx + gaze[0] * w * 0.35, cy + gaze[1] * h * 0.3
    r = p.iris_radius
    # Skin above the upper lid and below the lower lid hides whatever of the iris lies outside.
    inner_x, outer_x = top[0, 0] - side * 2, top[-1, 0] + side * 2
    upper_lid = np.concatenate([top, [[outer_x, cy - 4 * h - 3], [inner_x, cy - 4 * h - 3]]])
    lower_lid = np.concatenate([bottom, [[outer_x, cy + 3 * h + 2], [inner_x, cy + 3 * h + 2]]])
    lid_skin = shade(p.skin, 0.97)
    shapes = [
        shape("polygon", np.concatenate([top, bottom[::-1]]), (238, 236, 230, 255)),
        shape("polygon", ellipse(iris_x, iris_y, r, r, 12), p.iris + (255,), extra=1.0),
        shape("polygon", ellipse(iris_x, iris_y, 0.45 * r, 0.45 * r, 8), PUPIL, extra=1.0),
        shape(
            "polygon", ellipse(iris_x - 0.3 * r, iris_y - 0.3 * r, 0.7, 0.7, 6), GLINT, extra=1.2
        ),
        shape("polygon", upper_lid, lid_skin),
        shape("polygon", lower_lid, lid_skin),
        shape("line", top, LASHES, 1.3),
        shape("line", bottom, shade(p.skin, 0.55, 150), 0.6),
    ]
    crease = top.copy()
    crease[:, 1] -= 2.2 + 0.4 * h * (1.0 - close)
    shapes.append(shape("line", crease[1:-1], shade(p.skin, 0.7, 110), 0.7))
    return shapes


def cheeks(p: Identity, a: np.ndarray) -> list[Shape]:
    raise_ = float(a[AU["cheek_raise"]])
    tighten = float(a[AU["lid_tighten"]])
    shapes = []
    for side in (-1, 1):
        cx = CENTER_X + side * p.eye_half_distance
        bag_y = p.eye_y + p.eye_half_height * 0.9 + 2.5 - 1.5 * raise_
        bag = np.stack([cx + side * BAG_X, bag_y + BAG_Y], 1)
        shapes.append(
            shape("line", bag, shade(p.skin, 0.72, 40 + 150 * raise_ + 60 * tighten), 0.8)
        )
        if raise_ < 0.05:
            continue
        bulge = ellipse(
            cx + side * 2, p.eye_y + 16 - 4 * raise_, 8.5, 5.0, 9, 0.15 * np.pi, 0.85 * np.pi
        )
        shapes.append(shape("line", bulge, shade(p.skin, 0.72, 210 * raise_), 1.5))
        apple = ellipse(cx + side * 3, p.eye_y + 13 - 3 * raise_, 7.0, 4.5, 10)
        shapes.append(shape("polygon", apple, shade(p.skin, 1.18, 110 * raise_)))
        feet_alpha = 200 * max(0.0, raise_ - 0.2) + 60 * p.wrinkles * raise_
        corner_x = cx + side * (p.eye_half_width + 1.5)
        for dy in (-2.0, 0.5, 3.0) if feet_alpha >= 8 else ():
            line = [(corner_x, p.eye_y + dy * 0.5), (corner_x + side * 4.5, p.eye_y + dy * 1.4)]
            shapes.append(shape("line", line, shade(p.skin, 0.68, feet_alpha), 0.6))
    return shapes


def brow(p: Identity, a: np.ndarray, side: int) -> list[Shape]:
    u = BROW_U
    inner = p.eye_half_distance - 0.45 * p.brow_length
    outer = p.eye_half_distance + 0.55 * p.brow_length
    pull = 4.5 * a[AU["brow_lower"]] + 1.5 * a[AU["nose_wrinkle"]]
    xs = CENTER_X + side * (inner + u * (outer - inner) - pull * (1 - u))
    base = p.eye_y - p.brow_gap - p.brow_arch * np.sin(np.pi * u * 0.9) + 1.5 * u
    dy = (
        -11.0 * a[AU["inner_brow_raise"]] * (1 - u) ** 1.3
        - 10.0 * a[AU["outer_brow_raise"]] * (0.25 + 0.75 * u)
        + 7.0 * a[AU["brow_lower"]] * (0.6 + 0.6 * (1 - u))
        + 3.0 * a[AU["nose_wrinkle"]] * (1 - u)
        + 1.0 * a[AU["lid_tighten"]] * (1 - u)
    )
    ys = base + dy
    thickness = p.brow_thickness * (0.65 + 0.5 * (1 - u))
    upper = np.stack([xs, ys - thickness * 0.55], 1)
    lower = np.stack([xs, ys + thickness * 0.45], 1)
    return [shape("polygon", np.concatenate([upper, lower[::-1]]), p.brows + (255,))]


def forehead_and_glabella(p: Identity, a: np.ndarray) -> list[Shape]:
    shapes = []
    knit = float(a[AU["brow_lower"]]) + 0.5 * float(a[AU["nose_wrinkle"]])
    brow_y = p.eye_y - p.brow_gap + 4.5 * a[AU["brow_lower"]]
    for side in (-1, 1) if knit > 0.14 else ():
        line = [(CENTER_X + side * 2.4, brow_y - 2), (CENTER_X + side * 2.0, brow_y + 6)]
        alpha = min(230, 260 * max(0.0, knit - 0.1))
        shapes.append(shape("line", line, shade(p.skin, 0.6, alpha), 1.4))
    raise_ = 0.5 * float(a[AU["inner_brow_raise"]] + a[AU["outer_brow_raise"]])
    alpha = 220 * max(0.0, raise_ - 0.12) * (0.6 + 0.6 * p.wrinkles)
    top = p.eye_y - p.brow_gap - 6.0 - 5.0 * raise_
    for offset in (0.0, 4.0, 8.0) if alpha >= 8 else ():
        xs = CENTER_X + FOREHEAD_X
        ys = top - offset + 0.012 * (xs - CENTER_X) ** 2
        shapes.append(shape("line", np.stack([xs, ys], 1), shade(p.skin, 0.68, alpha), 1.0))
    return shapes


# ----------------------------------------------------------------------------------------------
# nose, mouth, folds


def nose(p: Identity, a: np.ndarray) -> list[Shape]:
    wrinkle, lift = float(a[AU["nose_wrinkle"]]), float(a[AU["upper_lip_raise"]])
    y = p.nose_y - 2.5 * wrinkle - 1.2 * lift
    w = p.nose_half_width * (1 + 0.15 * wrinkle)
    shapes = []
    for side in (-1, 1):
        bridge = [(CENTER_X + side * 4.0, p.eye_y + 4), (CENTER_X + side * (w - 1.5), y - 4)]
        shapes.append(shape("line", bridge, shade(p.skin, 0.78, 90), 1.4, extra=6.0))
        wing_x = CENTER_X + side * (w - 2.5)
        wing = ellipse(wing_x, y - 0.5, 3.0, 3.2, 6, -0.5 * np.pi, 0.5 * np.pi)
        if side < 0:
            wing[:, 0] = 2 * wing_x - wing[:, 0]
        shapes.append(shape("line", wing, shade(p.skin, 0.62, 200), 1.0, extra=8.0))
        nostril = ellipse(CENTER_X + side * w * 0.45, y + 1.8, 1.9 + 0.7 * wrinkle, 1.0, 8)
        shapes.append(shape("polygon", nostril, shade(p.skin, 0.3), extra=8.0))
    shapes.append(
        shape(
            "polygon",
            ellipse(CENTER_X, y - 2.5, 2.2, 1.6, 8),
            shade(p.skin, 1.12, 120),
            extra=14.0,
        )
    )
    for k in range(3) if wrinkle > 0.14 else ():
        row = p.eye_y + 3.5 + 3.0 * k
        line = [(CENTER_X - 4.0, row + 0.5), (CENTER_X, row - 0.3), (CENTER_X + 4.0, row + 0.5)]
        alpha = 250 * max(0.0, wrinkle - 0.1)
        shapes.append(shape("line", line, shade(p.skin, 0.58, alpha), 1.2, extra=6.0))
    return shapes


def mouth_geometry(p: Identity, a: np.ndarray) -> dict[str, np.ndarray]:
    pull, depress, stretch = (
        a[AU["lip_corner_pull"]],
        a[AU["lip_corner_depress"]],
        a[AU["lip_stretch"]],
    )
    press, pucker, smirk = a[AU["lip_press"]], a[AU["lip_pucker"]], a[AU["unilateral_smile"]]
    lip_raise, part, drop = a[AU["upper_lip_raise"]], a[AU["lips_part"]], a[AU["jaw_drop"]]
    corners = []
    for side in (-1, 1):
        one_sided = smirk if side == 1 else 0.0
        half = (
            p.mouth_half_width + 5 * pull + 8 * stretch - 3.5 * press - 6 * pucker + 2.5 * one_sided
        )
        y = p.mouth_y - 8 * pull + 8 * depress + 2 * stretch - 7 * one_sided + 1.2 * drop
        corners.append((CENTER_X + side * half, y))
    gap = (5.0 * part + 14.0 * drop + 1.5 * lip_raise) * (1 - 0.7 * press)
    middle = p.mouth_y + 1.5 * drop - 0.8 * pull
    return {
        "corners": np.array(corners, dtype=np.float32),
        "middle": np.float32(middle),
        "upper_inner": np.float32(middle - 0.2 * gap - 2.8 * lip_raise),
        "lower_inner": np.float32(middle + 0.8 * gap),
        "upper_thickness": np.float32(p.upper_lip * (1 - 0.85 * press + 0.7 * pucker)),
        "lower_thickness": np.float32(p.lower_lip * (1 - 0.85 * press + 0.6 * pucker)),
        "gap": np.float32(gap),
    }


def mouth(p: Identity, a: np.ndarray, m: dict[str, np.ndarray]) -> list[Shape]:
    (lx, ly), (rx, ry) = m["corners"]
    u = MOUTH_U
    xs = np.where(u < 0, CENTER_X + u * (CENTER_X - lx), CENTER_X + u * (rx - CENTER_X))
    corner_y = np.where(u < 0, ly, ry)
    line = m["middle"] + (corner_y - m["middle"]) * u**2
    bulge = 1 - u**2
    upper_inner = line - (m["middle"] - m["upper_inner"]) * bulge
    lower_inner = line + (m["lower_inner"] - m["middle"]) * bulge
    bow = 0.6 * m["upper_thickness"] * np.exp(-((u / 0.18) ** 2))
    upper_outer = upper_inner - m["upper_thickness"] * np.sqrt(bulge) + bow
    lower_outer = lower_inner + m["lower_thickness"] * bulge**0.6

    def strip(top, bottom):
        return np.concatenate([np.stack([xs, top], 1), np.stack([xs, bottom], 1)[::-1]])

    shapes = [
        shape("polygon", strip(upper_outer, upper_inner), p.lips + (255,), extra=4.0),
        shape("polygon", strip(lower_inner, lower_outer), shade(p.lips, 1.06), extra=4.0),
    ]
    if m["gap"] > 0.4:
        shapes.append(
            shape("polygon", strip(upper_inner, lower_inner), (70, 25, 30, 255), extra=3.0)
        )
        teeth = min(3.2, 0.5 * float(m["gap"]) + 1.5 * float(a[AU["upper_lip_raise"]]))
        inner = slice(2, 9)
        shapes.append(
            shape(
                "polygon",
                np.concatenate(
                    [
                        np.stack([xs[inner], upper_inner[inner]], 1),
                        np.stack([xs[inner], upper_inner[inner] + teeth * bulge[inner] ** 0.3], 1)[
                            ::-1
                        ],
                    ]
                ),
                (236, 232, 220, 255),
                extra=3.5,
            )
        )
    shapes.append(
        shape(
            "line",
            np.stack([xs, (upper_inner + lower_inner) / 2], 1),
            shade(p.lips, 0.45, 220),
            0.7,
            extra=4.0,
        )
    )
    return shapes


def nasolabial(p: Identity, a: np.ndarray, m: dict[str, np.ndarray]) -> list[Shape]:
    strength = max(
        a[AU["lip_corner_pull"]],
        a[AU["upper_lip_raise"]],
        a[AU["nose_wrinkle"]],
        a[AU["unilateral_smile"]],
    )
    alpha = 255 * min(0.85, 0.1 + 0.75 * strength + 0.35 * a[AU["cheek_raise"]] + 0.2 * p.wrinkles)
    shapes = []
    for index, side in enumerate((-1, 1)):
        start = np.array(
            [CENTER_X + side * (p.nose_half_width + 1.0), p.nose_y - 1 - 2 * a[AU["nose_wrinkle"]]]
        )
        end = m["corners"][index] + np.array([side * 2.5, 3.0])
        middle = (start + end) / 2 + np.array([side * (2.5 + 2 * strength), 0.0])
        t = CURVE_T
        curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * middle + t**2 * end
        shapes.append(shape("line", curve, shade(p.skin, 0.66, alpha), 1.2 + 0.8 * strength))
    return shapes
