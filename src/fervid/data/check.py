"""``fervid data check ROOT``: statistics and every problem of an Aff-Wild2-layout dataset.

Unlike ``read_split``, which stops at the first bad file, the check reads everything and lists
each problem with its file (and line), so a broken copy can be fixed in one pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fervid.data import affwild2
from fervid.data.crop_folder import scan_images
from fervid.errors import DataError
from fervid.labels import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES


@dataclass
class SplitReport:
    split: str
    videos: int = 0
    annotated_frames: int = 0
    frames_without_images: int = 0
    unannotated_lines: int = 0
    """Label lines holding -1."""
    class_counts: list[int] = field(default_factory=lambda: [0] * NUM_CLASSES)
    problems: list[str] = field(default_factory=list)
    video_names: list[str] = field(default_factory=list, repr=False)


@dataclass
class PoolReport:
    """The unlabelled frame pool ``ROOT/unlabelled/cropped_aligned`` (synthetic data has one)."""

    path: str
    videos: int
    images: int


@dataclass
class DatasetReport:
    root: str
    splits: list[SplitReport]
    unlabelled: PoolReport | None
    image_folders: int = 0
    unannotated_folders: int = 0
    """Image folders without an annotation file in any split (test videos, usually)."""
    problems: list[str] = field(default_factory=list)
    """Problems not tied to one split."""

    @property
    def ok(self) -> bool:
        return not self.problems and not any(split.problems for split in self.splits)

    def all_problems(self) -> list[str]:
        return self.problems + [problem for split in self.splits for problem in split.problems]

    def format(self) -> str:
        lines = [f"Aff-Wild2 data at {self.root}"]
        for split in self.splits:
            lines.append("")
            lines.extend(_format_split(split))
        lines.append("")
        lines.append(
            f"image folders: {self.image_folders:,} ({self.unannotated_folders:,} without annotations: test set or unannotated)"
        )
        if self.unlabelled is None:
            lines.append("unlabelled pool: none (no unlabelled/cropped_aligned)")
        else:
            pool = self.unlabelled
            lines.append(
                f"unlabelled pool: {pool.path}: {pool.videos:,} videos, {pool.images:,} images"
            )
        problems = self.all_problems()
        lines.append("")
        if problems:
            lines.append(f"{len(problems)} problem(s):")
            lines.extend(f"  {problem}" for problem in problems)
        else:
            lines.append("no problems found")
        return "\n".join(lines)


def _format_split(split: SplitReport) -> list[str]:
    lines = [
        f"{split.split}: {split.videos:,} videos, {split.annotated_frames:,} annotated frames, "
        f"{split.frames_without_images:,} of them without an image, "
        f"{split.unannotated_lines:,} unannotated (-1) lines"
    ]
    total = max(sum(split.class_counts), 1)
    width = max(len(name) for name in CLASS_NAMES)
    for name, count in zip(CLASS_NAMES, split.class_counts, strict=True):
        lines.append(f"  {name:<{width}} {count:>10,} {100 * count / total:6.2f}%")
    return lines


def check_dataset(root: str | Path, annotations: str | Path | None = None) -> DatasetReport:
    """Read both splits of an Aff-Wild2-layout dataset, collecting statistics and problems."""
    root = Path(os.path.abspath(Path(root).expanduser()))
    report = DatasetReport(root=str(root), splits=[], unlabelled=_pool(root))
    try:
        images_root = affwild2.image_dir(root)
    except DataError as error:
        report.problems.append(str(error))
        return report
    for split in affwild2.SPLIT_FOLDERS:
        report.splits.append(_check_split(root, split, annotations))
    folders = [entry.name for entry in os.scandir(images_root) if entry.is_dir()]
    annotated = {name for split in report.splits for name in split.video_names}
    report.image_folders = len(folders)
    report.unannotated_folders = len(set(folders) - annotated)
    if len(report.splits) == 2:
        shared = sorted(set(report.splits[0].video_names) & set(report.splits[1].video_names))
        if shared:
            names = ", ".join(shared[:5]) + (" ..." if len(shared) > 5 else "")
            report.problems.append(f"{len(shared)} video(s) annotated in both splits: {names}")
    return report


def _check_split(root: Path, split: str, annotations: str | Path | None) -> SplitReport:
    report = SplitReport(split=split)
    try:
        videos, problems = affwild2.scan_split(root, split, annotations)
    except DataError as error:
        report.problems.append(str(error))
        return report
    report.problems.extend(str(problem) for problem in problems)
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    for video in videos:
        annotated = video.labels != IGNORE_LABEL
        frames = np.flatnonzero(annotated) + 1
        counts += np.bincount(video.labels[annotated], minlength=NUM_CLASSES)
        report.annotated_frames += len(frames)
        report.unannotated_lines += int((~annotated).sum())
        report.frames_without_images += int((~video.images.lookup(frames)).sum())
    report.videos = len(videos)
    report.video_names = [video.name for video in videos]
    report.class_counts = counts.tolist()
    return report


def _pool(root: Path) -> PoolReport | None:
    pool = root / "unlabelled" / affwild2.IMAGE_DIR
    if not pool.is_dir():
        return None
    videos = images = 0
    for entry in os.scandir(pool):
        scanned = scan_images(entry.path) if entry.is_dir() else None
        if scanned is not None:
            videos += 1
            images += scanned.count
    return PoolReport(path=str(pool), videos=videos, images=images)
