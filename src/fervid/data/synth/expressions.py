"""Action-unit (AU) controls and the expression prototypes built from them.

A face's expression at one frame is a vector of ``NUM_AUS`` intensities in [0, 1], one per
control in :data:`AU_NAMES`. The renderer (``faces.py``) turns each control into geometry (brow
height, lid opening, lip-corner position, ...). The 7 non-neutral ABAW classes are prototypes
after FACS/EMFACS; "Other" is a random mixture of controls that matches no prototype.
"""

from __future__ import annotations

import numpy as np

# (short name, FACS action unit, what it does in the drawing)
ACTION_UNITS: tuple[tuple[str, str, str], ...] = (
    ("inner_brow_raise", "AU1", "inner ends of the brows go up (oblique, worried brows)"),
    ("outer_brow_raise", "AU2", "outer ends of the brows go up"),
    ("brow_lower", "AU4", "brows go down and together; vertical lines between them"),
    ("upper_lid_raise", "AU5", "eyes open wider; white shows above the iris"),
    ("cheek_raise", "AU6", "cheeks bulge up, lower lids rise, crow's feet"),
    ("lid_tighten", "AU7", "lids narrow, lower lid straightens"),
    ("nose_wrinkle", "AU9", "wrinkles across the nose bridge, nostrils lift, inner brows drop"),
    ("upper_lip_raise", "AU10", "upper lip lifts and squares; upper teeth show"),
    ("lip_corner_pull", "AU12", "lip corners go up and out (smile)"),
    ("lip_corner_depress", "AU15", "lip corners go down"),
    ("lip_stretch", "AU20", "lips stretch sideways, corners slightly down"),
    ("lip_press", "AU23/24", "lips tighten and press thin, mouth narrows"),
    ("lips_part", "AU25", "lips separate"),
    ("jaw_drop", "AU26", "jaw and lower lip drop, mouth opens"),
    ("lip_pucker", "AU18", "lips push forward and round (non-basic)"),
    ("unilateral_smile", "AU14R", "one lip corner pulls up (smirk, non-basic)"),
    ("eye_close", "AU43", "upper lids close (blinks, drooping lids)"),
)
AU_NAMES: tuple[str, ...] = tuple(name for name, _, _ in ACTION_UNITS)
NUM_AUS = len(AU_NAMES)
AU = {name: index for index, name in enumerate(AU_NAMES)}

# Controls that event noise, "Other" mixtures and per-identity resting faces may use.
EXPRESSIVE_AUS: tuple[str, ...] = AU_NAMES[:-1]

# Prototype of each class: {AU: weight}. Weights marked core are kept in every event; the others
# are dropped at random per event so that one class shows several variants.
PROTOTYPES: dict[int, dict[str, float]] = {
    0: {},
    1: {"brow_lower": 1.0, "lid_tighten": 0.7, "lip_press": 0.9, "upper_lid_raise": 0.5},
    2: {"nose_wrinkle": 1.0, "upper_lip_raise": 0.9, "lip_corner_depress": 0.35, "brow_lower": 0.3},
    3: {
        "inner_brow_raise": 0.9,
        "outer_brow_raise": 0.6,
        "brow_lower": 0.5,
        "upper_lid_raise": 0.9,
        "lip_stretch": 0.9,
        "lips_part": 0.7,
        "jaw_drop": 0.25,
    },
    4: {"cheek_raise": 0.85, "lip_corner_pull": 1.0, "lips_part": 0.4},
    5: {
        "inner_brow_raise": 1.0,
        "brow_lower": 0.3,
        "lip_corner_depress": 0.9,
        "eye_close": 0.25,
    },
    6: {
        "inner_brow_raise": 0.9,
        "outer_brow_raise": 0.9,
        "upper_lid_raise": 0.8,
        "jaw_drop": 0.9,
        "lips_part": 0.8,
    },
}
CORE_AUS: dict[int, tuple[str, ...]] = {
    1: ("brow_lower", "lip_press"),
    2: ("nose_wrinkle", "upper_lip_raise"),
    3: ("inner_brow_raise", "upper_lid_raise", "lip_stretch"),
    4: ("lip_corner_pull",),
    5: ("inner_brow_raise", "lip_corner_depress"),
    6: ("outer_brow_raise", "jaw_drop"),
}
OTHER_CLASS = 7


def prototype_vector(label: int) -> np.ndarray:
    """The prototype AU vector of class ``label`` (zeros for Neutral and Other)."""
    vector = np.zeros(NUM_AUS, dtype=np.float32)
    for name, weight in PROTOTYPES.get(label, {}).items():
        vector[AU[name]] = weight
    return vector


_PROTOTYPE_UNITS = np.stack(
    [prototype_vector(c) / np.linalg.norm(prototype_vector(c)) for c in range(1, 7)]
)


def prototype_similarity(vector: np.ndarray) -> float:
    """Largest cosine similarity between ``vector`` and any basic-expression prototype."""
    norm = float(np.linalg.norm(vector))
    if norm == 0:
        return 0.0
    return float((_PROTOTYPE_UNITS @ (vector / norm)).max())


def event_pattern(
    label: int,
    rng: np.random.Generator,
    drop_probability: float = 0.2,
    other_max_similarity: float = 0.5,
) -> np.ndarray:
    """AU pattern of one expression event at full intensity, a variant of the class prototype.

    Basic classes: each prototype weight is scaled by U(0.7, 1.2) and non-core AUs are dropped
    with ``drop_probability``. Other: 1-3 random controls at 0.45-1.0, redrawn until the mixture
    is farther than ``other_max_similarity`` (cosine) from every prototype.
    """
    if label == 0:
        return np.zeros(NUM_AUS, dtype=np.float32)
    if label == OTHER_CLASS:
        return _other_pattern(rng, other_max_similarity)
    vector = prototype_vector(label) * rng.uniform(0.7, 1.2, NUM_AUS).astype(np.float32)
    core = {AU[name] for name in CORE_AUS[label]}
    for index in np.flatnonzero(vector):
        if index not in core and rng.random() < drop_probability:
            vector[index] = 0.0
    return np.clip(vector, 0.0, 1.0)


def _other_pattern(rng: np.random.Generator, max_similarity: float) -> np.ndarray:
    pool = np.array([AU[name] for name in EXPRESSIVE_AUS])
    # Non-basic controls are favoured so that "Other" has signatures of its own.
    weights = np.ones(len(pool))
    weights[pool == AU["lip_pucker"]] = 4.0
    weights[pool == AU["unilateral_smile"]] = 4.0
    weights /= weights.sum()
    for _ in range(100):
        vector = np.zeros(NUM_AUS, dtype=np.float32)
        count = rng.integers(1, 4)
        chosen = rng.choice(pool, size=count, replace=False, p=weights)
        vector[chosen] = rng.uniform(0.45, 1.0, count)
        if prototype_similarity(vector) < max_similarity:
            return vector
    vector = np.zeros(NUM_AUS, dtype=np.float32)
    vector[AU["lip_pucker"]] = 0.8
    return vector
