"""The label-scarce setting (``data.labelled_fraction``): which train videos stay labelled and
where the others go."""

from __future__ import annotations

import numpy as np
import pytest

from fervid.config import load_config
from fervid.data.affwild2 import read_split
from fervid.data.sources import hidden_label_frames, labelled_split, source_video, split_by_video
from fervid.data.table import FrameTable
from fervid.errors import ConfigError
from fervid.stage1.data import unlabelled_table
from tests.conftest import write_colour_coded_affwild2


def table_of(names: list[str], frames: int = 4) -> FrameTable:
    n = len(names) * frames
    return FrameTable(
        videos=names,
        patterns=[f"{name}/{{:05d}}.jpg" for name in names],
        video=np.repeat(np.arange(len(names)), frames),
        frame=np.tile(np.arange(1, frames + 1), len(names)),
        label=np.arange(n) % 8,
        has_image=np.ones(n, bool),
    )


NAMES = [f"v{i:02d}" for i in range(18)] + ["two_left", "two_right"]  # 19 source videos


def names_of(table: FrameTable) -> set[str]:
    return {table.video_name(i) for i in range(len(table))}


def test_split_keeps_whole_videos_disjoint_and_deterministic():
    table = table_of(NAMES)
    kept, held = split_by_video(table, 0.25, seed=7)
    assert len(kept) + len(held) == len(table)
    assert names_of(kept).isdisjoint(names_of(held))
    assert names_of(kept) | names_of(held) == set(NAMES)
    assert len({source_video(n) for n in names_of(kept)}) == round(0.25 * 19)
    # the two tracks of one video are on one side
    assert {"two_left", "two_right"} <= names_of(kept) or {"two_left", "two_right"} <= names_of(
        held
    )
    # every row of a kept video is kept, labels untouched
    for name in names_of(kept):
        rows = [i for i in range(len(table)) if table.video_name(i) == name]
        assert sum(kept.video_name(i) == name for i in range(len(kept))) == len(rows)
    again = split_by_video(table, 0.25, seed=7)[0]
    assert names_of(again) == names_of(kept)
    np.testing.assert_array_equal(again.label, kept.label)


def test_split_depends_on_the_seed_not_on_the_table_order():
    table = table_of(NAMES)
    chosen = {seed: names_of(split_by_video(table, 0.25, seed)[0]) for seed in range(6)}
    assert len({frozenset(c) for c in chosen.values()}) > 1
    reordered = table_of(list(reversed(NAMES)))
    assert names_of(split_by_video(reordered, 0.25, seed=3)[0]) == chosen[3]


def test_a_tiny_fraction_keeps_one_video_and_fraction_one_keeps_all():
    table = table_of(NAMES)
    kept, _ = split_by_video(table, 0.01, seed=0)
    assert len({source_video(n) for n in names_of(kept)}) == 1
    kept, held = split_by_video(table, 1.0, seed=0)
    assert len(kept) == len(table) and len(held) == 0


def test_labelled_fraction_moves_train_videos_into_the_pool_with_hidden_truth(tmp_path):
    root = write_colour_coded_affwild2(tmp_path / "data", videos_per_split=6, frames=20)
    config = load_config(
        None, [f"data.root={root}", "data.labelled_fraction=0.5", "data.labelled_seed=1"]
    )
    full = read_split(root, "train")
    kept = labelled_split(config.data, "train")
    hidden = hidden_label_frames(config.data)
    assert len(names_of(kept)) == 3 and names_of(kept).isdisjoint(names_of(hidden))
    assert names_of(kept) | names_of(hidden) == names_of(full)
    # the hidden videos' frames with images, with their true labels kept as truth
    expected = full.select(np.isin(full.video, [full.videos.index(n) for n in names_of(hidden)]))
    np.testing.assert_array_equal(hidden.label, expected.with_images().label)
    # validation is untouched
    assert len(labelled_split(config.data, "validation")) == len(read_split(root, "validation"))
    pool = unlabelled_table(config)
    own_pool = unlabelled_table(load_config(None, [f"data.root={root}"]))
    assert len(pool) == len(own_pool) + len(hidden)
    assert names_of(hidden) <= names_of(pool)
    # the pool needs no other source when train videos are hidden
    config = load_config(
        None, [f"data.root={root}", "data.labelled_fraction=0.5", "ssl.dataset_pool=false"]
    )
    assert len(unlabelled_table(config)) == len(hidden_label_frames(config.data))


@pytest.mark.parametrize("value", ["0", "1.5", "-0.1"])
def test_labelled_fraction_out_of_range_is_refused(value):
    with pytest.raises(ConfigError, match="data.labelled_fraction"):
        load_config(None, [f"data.labelled_fraction={value}"])
