"""Which frames of one video's face-crop folder have an image (``cropped_aligned/<video>/``):
one directory listing, no per-file ``stat``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
"""``.jpg`` is the Aff-Wild2 format; a folder with no ``.jpg`` may use one of the others."""


@dataclass
class VideoImages:
    """Which frames of one video folder have an image."""

    extension: str
    present: np.ndarray
    """bool, indexed by frame number (index 0 is unused)."""

    @property
    def last_frame(self) -> int:
        return len(self.present) - 1

    @property
    def count(self) -> int:
        return int(self.present.sum())

    def frames(self) -> np.ndarray:
        return np.flatnonzero(self.present).astype(np.int32)

    def lookup(self, frames: np.ndarray) -> np.ndarray:
        """Whether each of ``frames`` (1-based numbers) has an image."""
        inside = frames < len(self.present)
        found = np.zeros(len(frames), dtype=bool)
        found[inside] = self.present[frames[inside]]
        return found


def scan_images(folder: str | Path) -> VideoImages | None:
    """List one video folder; ``None`` when it does not exist. Files not named
    ``<frame number>.<image extension>`` are ignored."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
    extension = ".jpg"
    stems = [name[:-4] for name in names if name.endswith(".jpg")]
    if not stems:
        extension, stems = _other_extension(names)
    frames = _frame_numbers(stems)
    present = np.zeros(int(frames.max()) + 1 if len(frames) else 1, dtype=bool)
    present[frames] = True
    return VideoImages(extension=extension, present=present)


def _other_extension(names: list[str]) -> tuple[str, list[str]]:
    """The most common image extension among ``names`` (exact spelling) and its stems."""
    by_extension: dict[str, list[str]] = {}
    for name in names:
        stem, extension = os.path.splitext(name)
        if extension.lower() in IMAGE_EXTENSIONS:
            by_extension.setdefault(extension, []).append(stem)
    if not by_extension:
        return ".jpg", []
    extension = max(by_extension, key=lambda key: len(by_extension[key]))
    return extension, by_extension[extension]


def _frame_numbers(stems: list[str]) -> np.ndarray:
    if set(map(len, stems)) == {5}:
        try:
            return np.fromiter(map(int, stems), dtype=np.int64, count=len(stems))
        except ValueError:
            pass
    # Slow path: keep only names that ``{:05d}`` formats back to exactly (e.g. not ``1.jpg``).
    frames = [int(stem) for stem in stems if stem.isdigit() and f"{int(stem):05d}" == stem]
    return np.asarray(frames, dtype=np.int64)
