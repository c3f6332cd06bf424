"""Which frames of which videos: the frame list a test-set submission must cover
(:func:`read_test_frames`) and each video's frame axis (:func:`frame_axis`), one row per frame
from 1 to its last, on which feature stores and models read videos.

A frame list comes from the organisers (their sample submission, or the same rows without its
header), or else from each video's frame count: its annotation file's length where it has one,
else its last face crop (frames after the last detected face cannot be known without the video;
a warning names such videos).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fervid.data.affwild2 import (
    CHALLENGE_DIR,
    SPLIT_FOLDERS,
    image_dir,
    joined,
    parse_annotation,
    video_table,
)
from fervid.data.crop_folder import scan_images
from fervid.data.index_cache import absolute
from fervid.data.table import FrameTable
from fervid.errors import DataError

logger = logging.getLogger("fervid")

ANNOTATION_FOLDERS = (*SPLIT_FOLDERS.values(), "Test_Set")
"""Where a test video's annotation file, if it has one, gives its frame count."""


def read_test_frames(
    root: str | Path, videos: str | Path | Iterable[str], annotations: str | Path | None = None
) -> FrameTable:
    """Every frame to predict for the given videos, labels -1: videos in the list's order, frames
    ascending. This is the frame list a submission is checked against.

    ``videos`` is a list of names or a file: one video name per line, the organisers' sample
    submission (``image_location,...`` header, then ``<video>/<NNNNN>.jpg,...`` rows) or a frame
    list (those rows without the header); the last two fix the exact frames. For a plain name
    the frames are 1 to the video's frame count: its annotation file's length where it has one
    (``Train_Set``, ``Validation_Set`` or ``Test_Set`` under ``annotations``, default ``root``),
    else its last face crop, since frames after the last detected face are invisible without the
    video (a warning names such videos)."""
    images_root = image_dir(root)
    if isinstance(videos, (str, Path)):
        wanted = _frames_from_file(Path(videos))
    else:
        wanted = dict.fromkeys(str(name) for name in videos)
    lengths = annotation_lengths(
        root, [name for name, f in wanted.items() if f is None], annotations
    )
    tables, uncounted = [], []
    for name, frames in wanted.items():
        images = scan_images(images_root / name)
        if images is None or images.count == 0:
            raise DataError(images_root / name, "test video has no image folder (or no images)")
        if frames is None:
            if name not in lengths:
                uncounted.append(name)
            frames = np.arange(1, lengths.get(name, images.last_frame) + 1)
        tables.append(video_table(images_root, name, images, frames.astype(np.int32)))
    if uncounted:
        shown = ", ".join(uncounted[:5]) + (" ..." if len(uncounted) > 5 else "")
        logger.warning(
            "%d of %d videos have no frame list or annotation file (%s): each is predicted from "
            "frame 1 to its last face crop, and frames after it, if the video goes on, are not "
            "in the table; pass the organisers' sample submission or frame list to cover them",
            len(uncounted),
            len(wanted),
            shown,
        )
    return joined(tables)


def annotation_lengths(
    root: str | Path, videos: list[str], annotations: str | Path | None = None
) -> dict[str, int]:
    """Frame counts (label lines) of the ``videos`` that have an annotation file in
    ``Train_Set``, ``Validation_Set`` or ``Test_Set``."""
    if not videos:
        return {}
    base = absolute(root if annotations is None else annotations)
    challenge = (
        base if any((base / f).is_dir() for f in ANNOTATION_FOLDERS) else base / CHALLENGE_DIR
    )
    lengths: dict[str, int] = {}
    for name in videos:
        for folder in ANNOTATION_FOLDERS:
            path = challenge / folder / f"{name}.txt"
            if path.is_file():
                lengths[name] = len(parse_annotation(path))
                break
    return lengths


def _frames_from_file(path: Path) -> dict[str, np.ndarray | None]:
    """Frames per video of a sample submission or frame list (in the file's video order, frames
    ascending); ``None`` frames for a plain list of names."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as error:
        raise DataError(path, f"cannot read video list ({error.strerror})") from error
    rows = [line.strip() for line in lines if line.strip()]
    if not rows:
        raise DataError(path, "empty video list")
    header = rows[0].startswith("image_location")
    if not header and "/" not in rows[0].split(",", 1)[0]:
        return dict.fromkeys(rows)
    frames: dict[str, list[int]] = {}
    for number, row in enumerate(rows[1:] if header else rows, start=2 if header else 1):
        location = row.split(",", 1)[0]
        video, _, image = location.rpartition("/")
        stem = os.path.splitext(image)[0]
        if not video or not stem.isdigit() or int(stem) < 1:
            raise DataError(
                path, f"{location!r} is not <video>/<NNNNN>.jpg (frames from 1)", line=number
            )
        frames.setdefault(video, []).append(int(stem))
    return {video: np.unique(np.asarray(numbers)) for video, numbers in frames.items()}


def frame_axis(root: str | Path, table: FrameTable) -> FrameTable:
    """Each video of ``table`` on its frame axis: one row per frame from 1 to its last frame (its
    last row in ``table`` or its last face crop, whichever comes later), ``has_image`` from the
    crops, labels from ``table`` (-1 on the frames it lacks). Feature stores and models read
    videos this way, so that row distances are frame distances everywhere."""
    images_root = image_dir(root)
    tables = []
    for video, rows in table.video_slices():
        name = table.videos[video]
        images = scan_images(images_root / name)
        if images is None or images.count == 0:
            raise DataError(images_root / name, "video has no image folder (or no images)")
        frames = np.arange(1, max(int(table.frame[rows].max()), images.last_frame) + 1)
        axis = video_table(images_root, name, images, frames.astype(np.int32))
        axis.label[table.frame[rows] - 1] = table.label[rows]
        tables.append(axis)
    return joined(tables)
