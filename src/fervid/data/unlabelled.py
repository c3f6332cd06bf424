"""Unlabelled face sources for stage 1: image folders, frame folders, videos, the synthetic pool.

Every source becomes rows of one FrameTable whose ``label`` column holds the true class where
it is known (the synthetic pool ships its truth, used only to report pseudo-label accuracy,
never for training) and -1 elsewhere. Videos are sampled (every ``every``-th frame, decoded
with PyAV) into a cache folder of JPEGs once, so afterwards they read like any frame folder.
For raw videos with small faces, crop the faces first with ``fervid data crop``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from fervid.data.affwild2 import parse_annotation
from fervid.data.folders import IMAGE_EXTENSIONS
from fervid.data.table import FrameTable
from fervid.errors import DataError

log = logging.getLogger("fervid")

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def read_unlabelled_sources(specs: list[str], cache_dir: str | Path | None = None) -> FrameTable:
    """One table over every source in ``specs`` (folders of images or frames, video files)."""
    tables = [read_unlabelled(spec, cache_dir) for spec in specs]
    return FrameTable.concat(tables)


def read_unlabelled(spec: str, cache_dir: str | Path | None = None) -> FrameTable:
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(path, "unlabelled source not found")
    if path.is_file():
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise DataError(
                path, f"an unlabelled source file must be a video ({', '.join(VIDEO_EXTENSIONS)})"
            )
        return image_folder(sample_video(path, cache_dir))
    if (path / "cropped_aligned").is_dir():
        return face_pool(path)
    return image_folder(path)


def image_folder(root: Path) -> FrameTable:
    """Every image under ``root`` (recursive); each folder of images is one video whose frames
    are its images in name order."""
    videos, patterns, video, frame = [], [], [], []
    for directory, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        images = sorted(
            n for n in files if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")
        )
        for name in images:
            full = os.path.join(directory, name)
            videos.append(os.path.relpath(full, root))
            patterns.append(full.replace("{", "{{").replace("}", "}}"))
            video.append(len(videos) - 1)
            frame.append(0)
    if not videos:
        raise DataError(root, f"unlabelled source has no images ({', '.join(IMAGE_EXTENSIONS)})")
    n = len(videos)
    return FrameTable(videos, patterns, video, frame, np.full(n, -1), np.ones(n, bool))


def face_pool(root: Path) -> FrameTable:
    """A pool in the Aff-Wild2 layout: ``root/cropped_aligned/<video>/NNNNN.jpg``, with the true
    labels in ``root/truth/<video>.txt`` when present (annotation-file format)."""
    crops = root / "cropped_aligned"
    videos, patterns, video, frame, label = [], [], [], [], []
    for name in sorted(os.listdir(crops)):
        folder = crops / name
        if not folder.is_dir():
            continue
        numbers = sorted(
            int(entry.name.split(".")[0])
            for entry in os.scandir(folder)
            if entry.name.lower().endswith(IMAGE_EXTENSIONS) and entry.name.split(".")[0].isdigit()
        )
        if not numbers:
            continue
        truth_file = root / "truth" / f"{name}.txt"
        truth = parse_annotation(truth_file) if truth_file.is_file() else np.zeros(0, np.int8)
        numbers = np.asarray(numbers)
        known = numbers <= len(truth)
        labels = np.full(len(numbers), -1, np.int8)
        labels[known] = truth[numbers[known] - 1]
        videos.append(name)
        patterns.append(f"{folder}/{{:05d}}.jpg")
        video.append(np.full(len(numbers), len(videos) - 1))
        frame.append(numbers)
        label.append(labels)
    if not videos:
        raise DataError(crops, "unlabelled pool has no images")
    n = sum(len(f) for f in frame)
    return FrameTable(
        videos,
        patterns,
        np.concatenate(video),
        np.concatenate(frame),
        np.concatenate(label),
        np.ones(n, bool),
    )


def sample_video(
    path: Path, cache_dir: str | Path | None = None, every: int = 5, size: int = 112
) -> Path:
    """Decode every ``every``-th frame of a video into a folder of ``size`` x ``size`` JPEGs
    (centre square, resized), once; later runs reuse the folder."""
    import av

    digest = hashlib.sha1(
        f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime}".encode()
    ).hexdigest()[:12]
    base = (
        Path(cache_dir)
        if cache_dir
        else Path(os.environ.get("FERVID_CACHE_DIR", Path.home() / ".cache" / "fervid"))
    )
    folder = base / "unlabelled_video_frames" / f"{path.stem}-{digest}"
    if (folder / ".complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, video_frame in enumerate(container.decode(stream)):
                if index % every:
                    continue
                image = video_frame.to_image()
                side = min(image.size)
                left, top = (image.width - side) // 2, (image.height - side) // 2
                square = image.crop((left, top, left + side, top + side)).resize(
                    (size, size), Image.BILINEAR
                )
                square.save(folder / f"{index + 1:05d}.jpg", quality=95)
                written += 1
    except (av.error.FFmpegError, OSError) as error:
        if written == 0:
            raise DataError(path, f"cannot decode video ({error})") from None
        log.warning("%s: decoding stopped after %d sampled frames (%s)", path, written, error)
    if written == 0:
        raise DataError(path, "video has no decodable frames")
    (folder / ".complete").touch()
    return folder
