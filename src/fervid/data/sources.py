"""The labelled splits a config names: Aff-Wild2 plus any extra class-folder sources, and the
label-scarce setting (``data.labelled_fraction``), which keeps some train videos labelled and
hands the others to the unlabelled pool."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from fervid.data.affwild2 import read_split
from fervid.data.folders import read_labelled_sources
from fervid.data.table import FrameTable

if TYPE_CHECKING:  # data sits below config (docs/architecture.md)
    from fervid.config import DataConfig

TRACK_SUFFIX = re.compile(r"_(left|right)$")


def labelled_split(data: DataConfig, split: str) -> FrameTable:
    """Annotated frames of ``split``; the training split keeps only the labelled share of its
    videos (``data.labelled_fraction``) and gets ``data.extra_labelled``."""
    table = read_split(data.root, split, annotations=data.annotations)
    if split == "train":
        table = split_by_video(table, data.labelled_fraction, data.labelled_seed)[0]
        if data.leave_out_fold:
            fold, folds = data.leave_out_fold
            fold_of = video_folds(present_videos(table), folds, data.labelled_seed)
            keep = np.array([fold_of.get(name, fold) != fold for name in table.videos], bool)
            table = table.select(keep[table.video])
        if data.extra_labelled:
            table = FrameTable.concat([table, read_labelled_sources(data.extra_labelled)])
    return table


def hidden_label_videos(data: DataConfig) -> FrameTable | None:
    """The train frames (with images) that ``data.labelled_fraction`` leaves unlabelled, their
    true labels in ``label`` (the unlabelled pool reports pseudo-label accuracy with them; the
    training loss never sees them); None when every train video is labelled."""
    if data.labelled_fraction >= 1:
        return None
    table = read_split(data.root, "train", annotations=data.annotations)
    return split_by_video(table, data.labelled_fraction, data.labelled_seed)[1].with_images()


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
