"""The labelled splits a config names: Aff-Wild2 plus any extra class-folder sources."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fervid.data.affwild2 import read_split
from fervid.data.folders import read_labelled_sources
from fervid.data.table import FrameTable

if TYPE_CHECKING:  # data sits below config (docs/architecture.md)
    from fervid.config import DataConfig


def labelled_split(data: DataConfig, split: str) -> FrameTable:
    """Annotated frames of ``split``; the training split also gets ``data.extra_labelled``."""
    table = read_split(data.root, split, annotations=data.annotations)
    if split == "train" and data.extra_labelled:
        table = FrameTable.concat([table, read_labelled_sources(data.extra_labelled)])
    return table
