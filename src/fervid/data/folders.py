"""Class-per-folder image sets (AffectNet, RAF-DB, FER2013/FER+, ExpW exports) as FrameTables.

Layout: ``ROOT/<class>/**/<image>.{jpg,jpeg,png,bmp,webp}``. Folder names are class names
(``labels.FOLDER_NAME_TO_CLASS``, any case) or, in numeric releases, class numbers whose meaning
depends on the dataset (``labels.NUMERIC_FOLDERS``). Each image is its own one-frame "video":
its name is the path relative to ROOT, its frame number 0 and its pattern the image's path.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from fervid.data.table import FrameTable
from fervid.errors import DataError
from fervid.labels import CLASS_NAMES, FOLDER_NAME_TO_CLASS, NUMERIC_FOLDERS

logger = logging.getLogger("fervid")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def read_class_folders(path: str | Path, dataset: str | None = None) -> FrameTable:
    """One row per image under ``path/<class>/``, labelled with its ABAW class.

    ``dataset`` (affectnet, rafdb, fer2013, expw) is needed only when folders are numbered.
    Folders of classes with no ABAW counterpart (e.g. Contempt) are dropped with a warning."""
    root = Path(os.path.abspath(Path(path).expanduser()))
    if not root.is_dir():
        raise DataError(root, "class-folder image source not found (expected ROOT/<class>/*.jpg)")
    folders = sorted(
        entry.name
        for entry in os.scandir(root)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    if not folders:
        raise DataError(
            root, "no class folders (expected ROOT/<class>/*.jpg, e.g. ROOT/happy/1.jpg)"
        )
    mapping = _folder_classes(root, folders, dataset)
    names: list[str] = []
    labels: list[int] = []
    for folder in folders:
        images = _images_under(root, folder)
        if not images:
            raise DataError(
                root / folder, f"class folder has no images ({', '.join(IMAGE_EXTENSIONS)})"
            )
        label = mapping[folder]
        if label is None:
            logger.warning(
                "%s: dropped %d images of class folder %r, which has no ABAW class",
                root / folder,
                len(images),
                folder,
            )
            continue
        names.extend(images)
        labels.extend([label] * len(images))
    if not names:
        raise DataError(root, "no images of an ABAW class (every class folder was dropped)")
    return FrameTable(
        videos=names,
        patterns=[_escape(str(root / name)) for name in names],
        video=np.arange(len(names), dtype=np.int32),
        frame=np.zeros(len(names), dtype=np.int32),
        label=np.asarray(labels, dtype=np.int8),
        has_image=np.ones(len(names), dtype=bool),
    )


def read_labelled_sources(specs: list[str]) -> FrameTable:
    """Several class-folder sources, each ``PATH`` or ``PATH:DATASET``, as one table."""
    tables = [read_class_folders(*parse_source(spec)) for spec in specs]
    return FrameTable.concat(tables) if tables else FrameTable([], [], [], [], [], [])


def parse_source(spec: str) -> tuple[str, str | None]:
    """Split ``PATH:DATASET`` into (path, dataset); a plain ``PATH`` gives (path, None)."""
    head, separator, tail = spec.rpartition(":")
    if separator and head and tail and "/" not in tail and os.sep not in tail:
        return head, tail
    return spec, None


def _folder_classes(root: Path, folders: list[str], dataset: str | None) -> dict[str, int | None]:
    """ABAW class (or ``None`` = drop) of every class folder name."""
    numeric = None
    if dataset is not None:
        key = dataset.lower().replace("-", "").replace("_", "")
        if key not in NUMERIC_FOLDERS:
            raise DataError(
                root, f"unknown dataset {dataset!r}; known: {', '.join(NUMERIC_FOLDERS)}"
            )
        numeric = NUMERIC_FOLDERS[key]
    mapping: dict[str, int | None] = {}
    for folder in folders:
        if folder.isdigit():
            if numeric is None:
                raise DataError(
                    root,
                    f"class folders are numbered ({folder!r}, ...); name the dataset as "
                    f"PATH:DATASET with DATASET one of {', '.join(NUMERIC_FOLDERS)}",
                )
            if folder not in numeric:
                raise DataError(
                    root / folder,
                    f"no class {folder!r} in dataset {dataset!r}; its folders are "
                    f"{', '.join(sorted(numeric))}",
                )
            mapping[folder] = numeric[folder]
        elif folder.lower() in FOLDER_NAME_TO_CLASS:
            mapping[folder] = FOLDER_NAME_TO_CLASS[folder.lower()]
        else:
            raise DataError(
                root / folder,
                f"unknown class folder {folder!r}; known names (any case): "
                f"{', '.join(FOLDER_NAME_TO_CLASS)} (ABAW classes: {', '.join(CLASS_NAMES)})",
            )
    return mapping


def _images_under(root: Path, folder: str) -> list[str]:
    """Image paths under ``root/folder`` (recursive), relative to ``root``, sorted."""
    found = []
    for directory, subfolders, files in os.walk(root / folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        relative = Path(directory).relative_to(root).as_posix()
        found.extend(
            f"{relative}/{name}"
            for name in files
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
        )
    return sorted(found)


def _escape(path: str) -> str:
    """A path usable as a FrameTable pattern (``str.format`` must leave it unchanged)."""
    return path.replace("{", "{{").replace("}", "}}")
