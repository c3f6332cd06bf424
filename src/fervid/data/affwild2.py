"""Read Aff-Wild2 EXPR annotations and face crops into a FrameTable.

Layout (see docs/data.md)::

    ROOT/cropped_aligned/<video>/00001.jpg ...          1-based, zero-padded frame numbers
    ANN/EXPR_Recognition_Challenge/Train_Set/<video>.txt
    ANN/EXPR_Recognition_Challenge/Validation_Set/<video>.txt

``ANN`` defaults to ``ROOT``. An annotation file starts with the ABAW header; line ``i + 1``
holds the label of frame ``i`` (0..7, or -1 for "not annotated").

Indexing a full split reads one directory listing per video (no per-file ``stat``) and parses the
label files with plain ``int`` over byte lines, which is about as fast as pandas' C parser here.
The result is cached on disk (:mod:`fervid.data.index_cache`) and reused while the annotation files and image
folders are unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fervid.data.crop_folder import VideoImages, scan_images
from fervid.data.index_cache import absolute, index_file, read_index, write_index
from fervid.data.table import FrameTable
from fervid.errors import DataError
from fervid.labels import ABAW_HEADER, IGNORE_LABEL, NUM_CLASSES

logger = logging.getLogger("fervid")

SPLIT_FOLDERS = {"train": "Train_Set", "validation": "Validation_Set"}
IMAGE_DIR = "cropped_aligned"
CHALLENGE_DIR = "EXPR_Recognition_Challenge"

EXCESS_FRAMES_MIN = 50
EXCESS_FRAMES_FRACTION = 0.10
"""An annotation is rejected when its last annotated frame lies more than
``max(EXCESS_FRAMES_MIN, EXCESS_FRAMES_FRACTION * last_image_frame)`` frames after the last image
of its folder: real files label every frame of the video, and faces may be missing at the end,
but not for that long while the frames are still labelled."""

# --------------------------------------------------------------------------------------------
# Annotation files


def parse_annotation(path: str | Path) -> np.ndarray:
    """Labels of frames 1..n of one annotation file, int8 in -1..7.

    Tolerates a byte-order mark, CRLF line ends, whitespace around values and trailing blank
    lines. Raises DataError naming the file (and line) otherwise."""
    data = Path(path).read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.rstrip().split(b"\n")
    if lines == [b""]:
        raise DataError(
            path, "empty annotation file (expected the ABAW header and one label per frame)"
        )
    header = lines[0].decode("utf-8", errors="replace")
    if ",".join(part.strip() for part in header.split(",")) != ABAW_HEADER:
        raise DataError(path, f"header is {header.strip()!r}, expected {ABAW_HEADER!r}", line=1)
    body = lines[1:]
    if not body:
        raise DataError(path, "no label lines after the header", line=1)
    try:
        labels = np.fromiter(map(int, body), dtype=np.int64, count=len(body))
    except (ValueError, OverflowError):
        labels = None
    if labels is not None and labels.min() >= IGNORE_LABEL and labels.max() < NUM_CLASSES:
        return labels.astype(np.int8)
    _raise_first_bad_line(path, body)
    raise AssertionError("unreachable")  # pragma: no cover


def _raise_first_bad_line(path: str | Path, body: list[bytes]) -> None:
    bad = []
    for index, line in enumerate(body):
        try:
            ok = IGNORE_LABEL <= int(line) < NUM_CLASSES
        except ValueError:
            ok = False
        if not ok:
            bad.append(index)
    first = bad[0]
    text = body[first].decode("utf-8", errors="replace").strip()
    more = f" ({len(bad) - 1} more bad lines in this file)" if len(bad) > 1 else ""
    problem = f"label {text!r} is not an integer in -1..{NUM_CLASSES - 1}{more}"
    raise DataError(path, problem, line=first + 2)


# --------------------------------------------------------------------------------------------
# One split


@dataclass
class AnnotatedVideo:
    name: str
    annotation: Path
    labels: np.ndarray
    """int8 label per frame 1..n (-1 = not annotated)."""
    images: VideoImages


def image_dir(root: str | Path) -> Path:
    """``ROOT/cropped_aligned``, checked to exist."""
    folder = absolute(root) / IMAGE_DIR
    if not folder.is_dir():
        raise DataError(
            folder, f"missing image folder (expected ROOT/{IMAGE_DIR}/<video>/00001.jpg)"
        )
    return folder


def split_dir(root: str | Path, split: str, annotations: str | Path | None = None) -> Path:
    """The annotation folder of ``split``; ``annotations`` (default ``root``) may be the folder
    holding ``EXPR_Recognition_Challenge/`` or that folder itself."""
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_FOLDERS)}")
    base = absolute(root if annotations is None else annotations)
    challenge = base if (base / SPLIT_FOLDERS[split]).is_dir() else base / CHALLENGE_DIR
    folder = challenge / SPLIT_FOLDERS[split]
    if not folder.is_dir():
        raise DataError(
            folder, f"missing annotation folder ({CHALLENGE_DIR}/{SPLIT_FOLDERS[split]})"
        )
    return folder


def annotation_files(folder: Path) -> list[Path]:
    files = sorted(folder / name for name in os.listdir(folder) if name.endswith(".txt"))
    if not files:
        raise DataError(folder, "no annotation files (<video>.txt)")
    return files


def scan_split(
    root: str | Path, split: str, annotations: str | Path | None = None
) -> tuple[list[AnnotatedVideo], list[DataError]]:
    """Parse every annotation file of ``split`` and list its image folder.

    Problems with single files are collected, not raised, so a check can report them all; a
    missing folder structure raises at once."""
    images_root = image_dir(root)
    videos: list[AnnotatedVideo] = []
    problems: list[DataError] = []
    for path in annotation_files(split_dir(root, split, annotations)):
        try:
            videos.append(_read_video(path, images_root))
        except DataError as error:
            problems.append(error)
    return videos, problems


def _read_video(path: Path, images_root: Path) -> AnnotatedVideo:
    name = path.stem
    labels = parse_annotation(path)
    folder = images_root / name
    images = scan_images(folder)
    if images is None:
        raise DataError(path, f"no image folder {folder} for this annotation file")
    if images.count == 0:
        raise DataError(folder, "image folder has no images (expected 00001.jpg ...)")
    annotated = np.flatnonzero(labels != IGNORE_LABEL)
    if len(annotated):
        last = int(annotated[-1]) + 1
        slack = max(EXCESS_FRAMES_MIN, EXCESS_FRAMES_FRACTION * images.last_frame)
        if last - images.last_frame > slack:
            raise DataError(
                path,
                f"frame {last} is labelled but the images in {folder} end at frame "
                f"{images.last_frame}: more label lines than the video has frames",
                line=last + 1,
            )
    return AnnotatedVideo(name=name, annotation=path, labels=labels, images=images)


def _table(videos: list[AnnotatedVideo], images_root: Path, every_frame: bool) -> FrameTable:
    index, frames, labels, has_image = [], [], [], []
    for number, video in enumerate(videos):
        if every_frame:  # the video's frame axis: 1..its last frame, annotated or not
            last = max(len(video.labels), video.images.last_frame)
            frame = np.arange(1, last + 1, dtype=np.int32)
            label = np.full(last, IGNORE_LABEL, dtype=np.int8)
            label[: len(video.labels)] = video.labels
        else:
            frame = np.flatnonzero(video.labels != IGNORE_LABEL).astype(np.int32) + 1
            label = video.labels[frame - 1]
        index.append(np.full(len(frame), number, dtype=np.int32))
        frames.append(frame)
        labels.append(label)
        has_image.append(video.images.lookup(frame))
    return FrameTable(
        videos=[video.name for video in videos],
        patterns=[frame_pattern(images_root, v.name, v.images.extension) for v in videos],
        video=_concat(index, np.int32),
        frame=_concat(frames, np.int32),
        label=_concat(labels, np.int8),
        has_image=_concat(has_image, bool),
    )


def frame_pattern(images_root: Path, video: str, extension: str = ".jpg") -> str:
    """``<images_root>/<video>/{:05d}.jpg`` with braces in the path escaped for ``str.format``."""
    folder = str(images_root / video).replace("{", "{{").replace("}", "}}")
    return f"{folder}{os.sep}{{:05d}}{extension}"


def read_split(
    root: str | Path,
    split: str,
    annotations: str | Path | None = None,
    cache: bool = True,
    every_frame: bool = False,
) -> FrameTable:
    """One row per annotated frame (label != -1) of ``split`` ("train" or "validation"), videos
    sorted by name, frames ascending; ``has_image`` says whether the crop exists.

    ``every_frame``: each video on its frame axis instead, one row per frame from 1 to its last
    frame (its annotation file's length, or its last face crop if that comes later), whether
    annotated (label -1 otherwise) or with a crop (``has_image`` False otherwise): what feature
    stores hold, so that row distances are frame distances.

    Raises DataError on the first bad input (run ``check_dataset`` to see all of them)."""
    images_root = image_dir(root)
    folder = split_dir(root, split, annotations)
    kind = f"{split}-every-frame" if every_frame else split
    depends_on = f"{EXCESS_FRAMES_MIN} {EXCESS_FRAMES_FRACTION}"  # the rules that reject a file
    cache_file = index_file(images_root, folder, kind, depends_on) if cache else None
    cached = read_index(cache_file) if cache_file is not None else None
    if cached is not None:
        return cached
    videos, problems = scan_split(root, split, annotations)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems; `fervid data check` lists them)"
        raise DataError(first.path, first.problem + (more if len(problems) > 1 else ""), first.line)
    table = _table(videos, images_root, every_frame)
    if cache_file is not None:
        write_index(table, cache_file)
    return table


# --------------------------------------------------------------------------------------------
# Unannotated frames: the test videos and feature extraction


def unannotated_videos(root: str | Path, annotations: str | Path | None = None) -> list[str]:
    """The video folders of ``ROOT/cropped_aligned`` that have no annotation file in the training
    or validation set (the test videos, when ROOT holds the whole challenge), sorted."""
    annotated: set[str] = set()
    for split in SPLIT_FOLDERS:
        with contextlib.suppress(DataError):  # a tree may hold the test videos only
            annotated |= {path.stem for path in split_dir(root, split, annotations).glob("*.txt")}
    folders = sorted(
        entry.name
        for entry in os.scandir(image_dir(root))
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in annotated
    )
    if not folders:
        raise DataError(
            image_dir(root), "every video folder has an annotation file: no test videos"
        )
    return folders


def read_video_frames(root: str | Path, videos: Iterable[str] | None = None) -> FrameTable:
    """All frames that have an image, for ``videos`` (default: every folder in
    ``ROOT/cropped_aligned``), labels -1. For the unlabelled pool pass ``ROOT/unlabelled``."""
    images_root = image_dir(root)
    if videos is None:
        videos = sorted(
            entry.name
            for entry in os.scandir(images_root)
            if entry.is_dir() and not entry.name.startswith(".")
        )
    tables = []
    for name in videos:
        images = scan_images(images_root / name)
        if images is None:
            raise DataError(images_root / name, "no such video folder")
        tables.append(video_table(images_root, name, images, images.frames()))
    return joined(tables)


def video_table(
    images_root: Path, name: str, images: VideoImages, frames: np.ndarray
) -> FrameTable:
    return FrameTable(
        videos=[name],
        patterns=[frame_pattern(images_root, name, images.extension)],
        video=np.zeros(len(frames), dtype=np.int32),
        frame=frames,
        label=np.full(len(frames), IGNORE_LABEL, dtype=np.int8),
        has_image=images.lookup(frames),
    )


def joined(tables: list[FrameTable]) -> FrameTable:
    return FrameTable.concat(tables) if tables else FrameTable([], [], [], [], [], [])


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)
