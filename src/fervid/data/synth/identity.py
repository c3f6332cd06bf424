"""A synthetic person: face geometry, colours, hair, glasses, beard and expressive habits.

All lengths are in *aligned-crop units*: the coordinates of a 112x112 ArcFace-style crop of a
frontal face, where the mean person's eyes, nose tip and mouth corners sit on
:data:`ARCFACE_TEMPLATE`. Each person deviates from the mean by a few units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fervid.data.synth.expressions import AU, NUM_AUS

# Eye centres (image left, image right), nose tip, mouth corners (left, right) in a 112x112 crop.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
CROP_SIZE = 112
CENTER_X = 56.0

SKIN_TONES = np.array(
    [
        [255, 224, 200],
        [241, 200, 165],
        [228, 180, 140],
        [205, 150, 105],
        [170, 115, 75],
        [130, 85, 55],
        [95, 62, 42],
    ],
    dtype=np.float32,
)
HAIR_COLOURS = np.array(
    [[28, 24, 22], [62, 42, 30], [105, 72, 45], [190, 160, 105], [150, 72, 38], [150, 150, 150]],
    dtype=np.float32,
)
IRIS_COLOURS = np.array(
    [[70, 45, 30], [40, 30, 25], [70, 110, 150], [85, 110, 70]], dtype=np.float32
)

HAIR_STYLES = ("short", "side_part", "fringe", "long", "bald")
GLASSES = ("none", "round", "rectangular")
BEARDS = ("none", "stubble", "full", "moustache")

Colour = tuple[int, int, int]


@dataclass
class Identity:
    """One person. Geometry in aligned-crop units (see the module docstring)."""

    face_half_width: float
    jaw_half_width: float
    chin_half_width: float
    chin_y: float
    forehead_y: float
    eye_half_distance: float
    eye_y: float
    eye_half_width: float
    eye_half_height: float
    eye_tilt: float
    iris_radius: float
    brow_gap: float
    brow_thickness: float
    brow_length: float
    brow_arch: float
    nose_y: float
    nose_half_width: float
    mouth_y: float
    mouth_half_width: float
    upper_lip: float
    lower_lip: float
    skin: Colour
    lips: Colour
    iris: Colour
    hair: Colour
    brows: Colour
    """Brow colour: the hair's, but always clearly darker than the skin."""
    clothes: Colour
    hair_style: str
    hairline_y: float
    glasses: str
    glasses_colour: Colour
    beard: str
    wrinkles: float
    """0..1: how readily forehead and smile lines show (age)."""
    gain: np.ndarray
    """Per-AU gain: how strongly this person shows each action unit."""
    resting: np.ndarray
    """Per-AU activation of this person's neutral face."""

    @property
    def landmarks(self) -> np.ndarray:
        """The 5 landmarks of the neutral frontal face, (5, 2) in aligned-crop units."""
        dx, mx = self.eye_half_distance, self.mouth_half_width
        return np.array(
            [
                [CENTER_X - dx, self.eye_y],
                [CENTER_X + dx, self.eye_y],
                [CENTER_X, self.nose_y],
                [CENTER_X - mx, self.mouth_y],
                [CENTER_X + mx, self.mouth_y],
            ],
            dtype=np.float32,
        )


def make_identity(
    seed: int | list[int],
    glasses_probability: float = 0.25,
    beard_probability: float = 0.25,
    idiosyncrasy: float = 0.35,
    resting_face: float = 0.25,
) -> Identity:
    """A random person, the same for the same seed."""
    rng = np.random.default_rng(seed)
    u = rng.uniform
    face = u(38.0, 45.0)
    skin = _mix(SKIN_TONES, rng.uniform(0, len(SKIN_TONES) - 1)) * u(0.94, 1.04, 3)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * u(0.85, 1.15)
    lips = skin * np.array([0.85, 0.55, 0.55]) + np.array([25, 0, 5]) * u(0.5, 1.5)
    beard_ok = rng.random() < beard_probability
    gain = np.exp(rng.normal(0.0, idiosyncrasy, NUM_AUS)).astype(np.float32)
    gain[AU["eye_close"]] = 1.0
    resting = np.zeros(NUM_AUS, dtype=np.float32)
    habits = [
        "brow_lower",
        "lip_corner_depress",
        "lip_corner_pull",
        "inner_brow_raise",
        "lid_tighten",
        "lip_press",
    ]
    for name in habits:
        if rng.random() < 0.3:
            resting[AU[name]] = u(0.0, resting_face)
    return Identity(
        face_half_width=face,
        jaw_half_width=face * u(0.72, 0.9),
        chin_half_width=u(7.0, 15.0),
        chin_y=u(110.0, 118.0),
        forehead_y=u(-10.0, 0.0),
        eye_half_distance=u(16.3, 19.0),
        eye_y=u(49.5, 53.5),
        eye_half_width=u(7.0, 9.0),
        eye_half_height=u(3.2, 4.2),
        eye_tilt=u(-1.0, 1.2),
        iris_radius=u(3.0, 3.7),
        brow_gap=u(10.0, 14.0),
        brow_thickness=u(2.8, 4.5),
        brow_length=u(15.0, 20.0),
        brow_arch=u(0.5, 3.0),
        nose_y=u(69.0, 74.5),
        nose_half_width=u(6.0, 8.5),
        mouth_y=u(90.0, 94.5),
        mouth_half_width=u(13.0, 16.5),
        upper_lip=u(2.0, 3.8),
        lower_lip=u(2.8, 5.0),
        skin=_colour(skin),
        lips=_colour(lips),
        iris=_colour(IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))]),
        hair=_colour(hair),
        brows=_colour(np.minimum(hair * 0.85, skin * 0.55)),
        clothes=_colour(u(20, 230, 3)),
        hair_style=HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=[0.3, 0.2, 0.15, 0.25, 0.1])],
        hairline_y=u(12.0, 24.0),
        glasses=GLASSES[rng.integers(1, 3)] if rng.random() < glasses_probability else "none",
        glasses_colour=_colour(u(10, 120, 3)),
        beard=BEARDS[rng.integers(1, 4)] if beard_ok else "none",
        wrinkles=float(u(0.0, 1.0)),
        gain=gain,
        resting=resting,
    )


def _mix(palette: np.ndarray, position: float) -> np.ndarray:
    low = int(np.floor(position))
    high = min(low + 1, len(palette) - 1)
    weight = position - low
    return palette[low] * (1 - weight) + palette[high] * weight


def _colour(values: np.ndarray) -> Colour:
    r, g, b = (int(v) for v in np.clip(np.round(values), 0, 255))
    return (r, g, b)


def shade(colour: Colour, factor: float, alpha: float = 255) -> tuple[int, int, int, int]:
    """``colour`` scaled by ``factor`` (darker below 1), with an alpha channel."""
    r, g, b = colour
    return (
        min(255, int(r * factor + 0.5)),
        min(255, int(g * factor + 0.5)),
        min(255, int(b * factor + 0.5)),
        max(0, min(255, int(alpha))),
    )
