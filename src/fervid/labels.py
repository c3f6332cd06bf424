"""The 8 ABAW EXPR classes and how other datasets' class names map onto them."""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "Neutral",
    "Anger",
    "Disgust",
    "Fear",
    "Happiness",
    "Sadness",
    "Surprise",
    "Other",
)
NUM_CLASSES = len(CLASS_NAMES)
CLASS_COLOURS: tuple[str, ...] = (
    "#7f7f7f",
    "#d62728",
    "#8c564b",
    "#9467bd",
    "#2ca02c",
    "#1f77b4",
    "#ff7f0e",
    "#bcbd22",
)
"""One colour per class, in class order, for timelines and reports."""
IGNORE_LABEL = -1

# Header line of every Aff-Wild2 EXPR annotation file.
ABAW_HEADER = ",".join(CLASS_NAMES)

# Class-folder names used by AffectNet, RAF-DB, FER2013/FER+ and ExpW, lower-cased, onto ABAW
# indices. ``None`` means the class has no ABAW counterpart and its images are dropped.
FOLDER_NAME_TO_CLASS: dict[str, int | None] = {
    # Neutral
    "neutral": 0,
    "neutrality": 0,
    # Anger
    "anger": 1,
    "angry": 1,
    # Disgust
    "disgust": 2,
    "disgusted": 2,
    # Fear
    "fear": 3,
    "fearful": 3,
    "afraid": 3,
    # Happiness
    "happiness": 4,
    "happy": 4,
    "joy": 4,
    # Sadness
    "sadness": 5,
    "sad": 5,
    # Surprise
    "surprise": 6,
    "surprised": 6,
    # Other (ABAW's non-basic category)
    "other": 7,
    # No ABAW counterpart
    "contempt": None,
    "unknown": None,
    "nf": None,  # FER+ "not a face"
}

# Numeric folder names of the common releases, as (dataset, folder) -> ABAW index.
NUMERIC_FOLDERS: dict[str, dict[str, int | None]] = {
    # AffectNet: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt
    "affectnet": {"0": 0, "1": 4, "2": 5, "3": 6, "4": 3, "5": 2, "6": 1, "7": None},
    # RAF-DB basic: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral
    "rafdb": {"1": 6, "2": 3, "3": 2, "4": 4, "5": 5, "6": 1, "7": 0},
    # FER2013: 0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral
    "fer2013": {"0": 1, "1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 0},
    # ExpW: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral
    "expw": {"0": 1, "1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 0},
}


def class_index(name: str) -> int:
    """Index of an ABAW class given its name (case-insensitive)."""
    lowered = name.strip().lower()
    for index, class_name in enumerate(CLASS_NAMES):
        if class_name.lower() == lowered:
            return index
    raise KeyError(f"unknown class {name!r}; ABAW classes are {', '.join(CLASS_NAMES)}")
