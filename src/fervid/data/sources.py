"""The labelled splits a config names: Aff-Wild2 plus any extra class-folder sources, and the
label-scarce settings, which keep some train labels and hand the other frames, labels hidden,
to the unlabelled pool: ``data.labelled_fraction`` (a share of the train videos) and
``data.labels_per_class`` (N frames of each class, spread over the people). ``split:NAME``
sources put the frames of a split, labels hidden, in the unlabelled pool."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from fervid.data.affwild2 import read_split, read_video_frames, unannotated_videos
from fervid.data.folders import read_labelled_sources
from fervid.data.table import FrameTable
from fervid.errors import ConfigError
from fervid.labels import CLASS_NAMES, NUM_CLASSES

if TYPE_CHECKING:  # data sits below config (docs/architecture.md)
    from fervid.config import DataConfig

TRACK_SUFFIX = re.compile(r"_(left|right)$")


def labelled_split(data: DataConfig, split: str) -> FrameTable:
    """Annotated frames of ``split``; the training split keeps only the labels the label-scarce
    settings keep and gets ``data.extra_labelled``."""
    if split == "train":
        return train_split(data)[0]
    return read_split(data.root, split, annotations=data.annotations)


def hidden_label_frames(data: DataConfig) -> FrameTable | None:
    """The train frames (with images) whose labels ``data.labelled_fraction`` or
    ``data.labels_per_class`` hide, their true labels in ``label`` (the unlabelled pool reports
    pseudo-label accuracy with them; the training loss never sees them); None when every train
    frame keeps its label."""
    if data.labelled_fraction >= 1 and not data.labels_per_class:
        return None
    return train_split(data)[1].with_images()


def train_split(data: DataConfig) -> tuple[FrameTable, FrameTable]:
    """(labelled, hidden) train frames: the videos ``labelled_fraction`` keeps, without fold k of
    ``leave_out_fold``, with ``extra_labelled``, then ``labels_per_class`` frames per class."""
    table = read_split(data.root, "train", annotations=data.annotations)
    table, hidden = split_by_video(table, data.labelled_fraction, data.labelled_seed)
    if data.leave_out_fold:
        fold, folds = data.leave_out_fold
        fold_of = video_folds(present_videos(table), folds, data.labelled_seed)
        keep = np.array([fold_of.get(name, fold) != fold for name in table.videos], bool)
        table = table.select(keep[table.video])
    if data.extra_labelled:
        table = FrameTable.concat([table, read_labelled_sources(data.extra_labelled)])
    if data.labels_per_class:
        table, hidden = split_per_class(
            table.with_images(), data.labels_per_class, data.labelled_seed
        )
    return table, hidden


def split_per_class(table: FrameTable, per_class: int, seed: int) -> tuple[FrameTable, FrameTable]:
    """(kept, held out): ``per_class`` rows of every class, dealt round the videos (people) that
    have the class: each video's rows of the class in a random order, the videos in a random
    order, one row from each video in turn, so the labels spread over as many people as the
    class has and no person gives a second frame before every person has given one. Depends on
    the seed and the rows' (video name, frame) only, not on the table's order. A class with
    fewer rows is refused, naming it and its count."""
    counts = table.class_counts(NUM_CLASSES)
    short = [
        f"{CLASS_NAMES[c]} has {counts[c]}" for c in range(NUM_CLASSES) if counts[c] < per_class
    ]
    if short:
        raise ConfigError(
            f"data.labels_per_class: {per_class} labelled frames per class, but among the train "
            f"frames with a crop {', '.join(short)}"
        )
    names = np.asarray(table.videos, dtype=str)[table.video]
    rng = np.random.default_rng([seed, per_class])
    shuffle = np.empty(len(table))
    shuffle[np.lexsort((table.frame, names))] = rng.random(len(table))  # by (video, frame)
    video_names, video_of_row = np.unique(names, return_inverse=True)
    video_turn = rng.permutation(len(video_names))[video_of_row]
    kept = np.zeros(len(table), bool)
    for c in range(NUM_CLASSES):
        rows = np.flatnonzero(table.label == c)
        rows = rows[np.lexsort((shuffle[rows], video_turn[rows]))]  # by video, shuffled inside
        video = video_turn[rows]
        starts = np.flatnonzero(np.diff(video, prepend=-1))
        position = np.arange(len(rows)) - np.repeat(starts, np.diff(np.append(starts, len(rows))))
        dealt = rows[np.lexsort((video, position))]  # every video's first, then second, ...
        kept[dealt[:per_class]] = True
    return table.select(kept), table.select(~kept)


def split_pool(data: DataConfig, name: str) -> FrameTable:
    """Every frame with a crop of split ``name`` of ``data.root`` (``split:NAME`` in
    ``ssl.unlabelled``): train or validation (their labels kept only as truth, -1 on frames
    the annotation leaves out) or test (the video folders with no annotation file)."""
    if name == "test":
        return read_video_frames(data.root, unannotated_videos(data.root, data.annotations))
    annotated = read_split(data.root, name, annotations=data.annotations)
    frames = read_video_frames(data.root, present_videos(annotated))
    index_of = {video: i for i, video in enumerate(frames.videos)}
    annotated_video = np.array([index_of.get(v, -1) for v in annotated.videos])[annotated.video]
    on_disk = annotated.has_image
    frame_keys = frames.video.astype(np.int64) << 32 | frames.frame
    truth_keys = annotated_video[on_disk].astype(np.int64) << 32 | annotated.frame[on_disk]
    frames.label[np.searchsorted(frame_keys, truth_keys)] = annotated.label[on_disk]
    return frames


def source_video(name: str) -> str:
    """The video a folder was cut from: ``<video>_left`` and ``<video>_right`` are one video."""
    return TRACK_SUFFIX.sub("", name)


def split_by_video(table: FrameTable, fraction: float, seed: int) -> tuple[FrameTable, FrameTable]:
    """(kept, held out): ``round(fraction x videos)`` source videos (at least one) chosen by
    ``seed``, every row of a video on one side. Depends only on the set of video names and the
    seed, not on their order in the table."""
    if fraction >= 1:
        return table, table.select(np.zeros(len(table), bool))
    sources = sorted({source_video(name) for name in table.videos})
    count = max(1, round(fraction * len(sources)))
    order = np.random.default_rng([seed, len(sources)]).permutation(len(sources))
    kept = {sources[i] for i in order[:count]}
    video_kept = np.array([source_video(name) in kept for name in table.videos], bool)
    rows = video_kept[table.video] if len(table) else np.zeros(0, bool)
    return table.select(rows), table.select(~rows)


def video_folds(names: list[str], folds: int, seed: int) -> dict[str, int]:
    """Fold 0..folds-1 of each video: whole source videos dealt round the folds in an order
    chosen by ``seed`` from the set of names alone (like :func:`split_by_video`)."""
    sources = sorted({source_video(name) for name in names})
    order = np.random.default_rng([seed, len(sources), folds]).permutation(len(sources))
    fold_of_source = {sources[i]: position % folds for position, i in enumerate(order)}
    return {name: fold_of_source[source_video(name)] for name in names}


def present_videos(table: FrameTable) -> list[str]:
    return [table.videos[v] for v in np.unique(table.video)]
