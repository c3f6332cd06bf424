"""FrameTable: the columnar index every data source produces.

One row per labelled (or unlabelled) frame. Rows of one video are contiguous and sorted by frame
number. Columns are numpy arrays, so a full Aff-Wild2 split (millions of rows) costs a few tens
of megabytes and saves to disk as one ``.npz``.

The image of row ``i`` is ``table.image_path(i)``: the video's ``pattern`` formatted with the
frame number. For Aff-Wild2 a pattern is ``.../cropped_aligned/<video>/{:05d}.jpg``; for a still
image it is the image's own path (``str.format`` ignores the frame number).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fervid import schema
from fervid.runtime.io import atomic_path


@dataclass
class FrameTable:
    videos: list[str]
    """Video names (Aff-Wild2 folder names; for still images, a name per image)."""
    patterns: list[str]
    """Per video, the image path pattern, formatted with the frame number."""
    video: np.ndarray
    """int32, index into ``videos`` per row."""
    frame: np.ndarray
    """int32, 1-based frame number per row (0 for still images)."""
    label: np.ndarray
    """int8, ABAW class 0..7 per row, or -1 when unknown (unlabelled data)."""
    has_image: np.ndarray
    """bool, whether the frame's image exists on disk."""

    def __post_init__(self) -> None:
        self.video = np.asarray(self.video, dtype=np.int32)
        self.frame = np.asarray(self.frame, dtype=np.int32)
        self.label = np.asarray(self.label, dtype=np.int8)
        self.has_image = np.asarray(self.has_image, dtype=bool)
        n = len(self.video)
        if not (len(self.frame) == len(self.label) == len(self.has_image) == n):
            raise ValueError("FrameTable columns differ in length")
        if len(self.videos) != len(self.patterns):
            raise ValueError("FrameTable needs one pattern per video")

    def __len__(self) -> int:
        return len(self.video)

    def image_path(self, row: int) -> str:
        return self.patterns[self.video[row]].format(int(self.frame[row]))

    def video_name(self, row: int) -> str:
        return self.videos[self.video[row]]

    def select(self, rows: np.ndarray) -> FrameTable:
        """A table of the given rows (boolean mask or indices); unused videos are kept."""
        return FrameTable(
            videos=self.videos,
            patterns=self.patterns,
            video=self.video[rows],
            frame=self.frame[rows],
            label=self.label[rows],
            has_image=self.has_image[rows],
        )

    def with_images(self) -> FrameTable:
        return self.select(self.has_image)

    def video_slices(self) -> list[tuple[int, slice]]:
        """(video index, row slice) for each run of rows of one video, in table order."""
        if len(self) == 0:
            return []
        starts = np.flatnonzero(np.diff(self.video, prepend=self.video[0] - 1))
        ends = np.append(starts[1:], len(self))
        return [
            (int(self.video[s]), slice(int(s), int(e))) for s, e in zip(starts, ends, strict=True)
        ]

    def class_counts(self, num_classes: int = 8) -> np.ndarray:
        labels = self.label[self.label >= 0]
        return np.bincount(labels, minlength=num_classes)

    @staticmethod
    def concat(tables: list[FrameTable]) -> FrameTable:
        videos: list[str] = []
        patterns: list[str] = []
        columns: dict[str, list[np.ndarray]] = {
            "video": [],
            "frame": [],
            "label": [],
            "has_image": [],
        }
        for table in tables:
            columns["video"].append(table.video + len(videos))
            columns["frame"].append(table.frame)
            columns["label"].append(table.label)
            columns["has_image"].append(table.has_image)
            videos.extend(table.videos)
            patterns.extend(table.patterns)
        return FrameTable(
            videos=videos,
            patterns=patterns,
            **{
                name: np.concatenate(parts) if parts else np.zeros(0)
                for name, parts in columns.items()
            },
        )

    def save(self, path: str | Path) -> None:
        """Write as one ``.npz`` (atomically)."""
        meta = json.dumps({"videos": self.videos, "patterns": self.patterns})
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:
            columns = {
                schema.VIDEO: self.video,
                schema.FRAME: self.frame,
                schema.LABEL: self.label,
                schema.HAS_IMAGE: self.has_image,
            }
            np.savez(handle, **columns, meta=np.frombuffer(meta.encode(), dtype=np.uint8))

    @staticmethod
    def load(path: str | Path) -> FrameTable:
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            return FrameTable(
                videos=meta["videos"],
                patterns=meta["patterns"],
                video=data[schema.VIDEO],
                frame=data[schema.FRAME],
                label=data[schema.LABEL],
                has_image=data[schema.HAS_IMAGE],
            )
