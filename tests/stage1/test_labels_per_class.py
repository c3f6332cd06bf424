"""The labels-per-class setting (``data.labels_per_class``): N labelled train frames of each
class spread over the people, the rest in the unlabelled pool with hidden labels; and
``split:NAME`` unlabelled sources (a split's frames without their labels)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from fervid.api import train
from fervid.cli import main
from fervid.config import load_config
from fervid.data.affwild2 import read_split, read_video_frames
from fervid.data.sources import hidden_label_frames, labelled_split, split_per_class, split_pool
from fervid.data.table import FrameTable
from fervid.errors import ConfigError
from fervid.stage1.data import Stage1Data, unlabelled_table
from tests.conftest import write_colour_coded_affwild2
from tests.helpers import DISTRIBUTED, torchrun
from tests.stage1.test_ssl import SSL

SELECTION_SCRIPT = DISTRIBUTED / "labelled_selection.py"


def people_table(people: int = 6, frames: int = 40, seed: int = 0) -> FrameTable:
    """``people`` videos with random labels 0..7 (every class in every video)."""
    rng = np.random.default_rng(seed)
    names = [f"person_{p:02d}" for p in range(people)]
    return FrameTable(
        videos=names,
        patterns=[f"{name}/{{:05d}}.jpg" for name in names],
        video=np.repeat(np.arange(people), frames),
        frame=np.tile(np.arange(1, frames + 1), people),
        label=np.tile(np.arange(frames) % 8, people)[rng.permutation(people * frames)],
        has_image=np.ones(people * frames, bool),
    )


def keys(table: FrameTable) -> set[tuple[str, int]]:
    return {(table.video_name(i), int(table.frame[i])) for i in range(len(table))}


def test_exactly_n_per_class_the_rest_held_out_with_their_labels():
    table = people_table()
    kept, held = split_per_class(table, 4, seed=0)
    np.testing.assert_array_equal(kept.class_counts(), np.full(8, 4))
    assert len(kept) + len(held) == len(table)
    assert keys(kept).isdisjoint(keys(held)) and keys(kept) | keys(held) == keys(table)
    np.testing.assert_array_equal(held.class_counts(), table.class_counts() - 4)


def test_labels_are_dealt_round_the_people_one_frame_each_before_a_second():
    table = people_table(people=6)
    kept, _ = split_per_class(table, 6, seed=3)
    for c in range(8):
        people = [kept.video_name(i) for i in np.flatnonzero(kept.label == c)]
        assert len(set(people)) == 6  # six labels of a class: one from each of six people
    kept, _ = split_per_class(table, 9, seed=3)
    for c in range(8):
        _, per_person = np.unique(kept.video[kept.label == c], return_counts=True)
        assert len(per_person) == 6 and sorted(per_person) == [1, 1, 1, 2, 2, 2]


def test_a_class_of_one_person_gives_its_frames_and_two_people_share_a_class():
    names = ["a", "b", "c"]
    label = np.array([0] * 10 + [1] * 5 + [0] * 5 + [2] * 10 + list(range(3, 8)) * 2)
    video = np.array([0] * 15 + [1] * 15 + [2] * 10)
    table = FrameTable(
        names, ["a/{}", "b/{}", "c/{}"], video, np.arange(40) + 1, label, np.ones(40)
    )
    kept, _ = split_per_class(table, 2, seed=0)
    # class 0 lives in a and b: one frame from each; class 1 only in a
    assert sorted(kept.video_name(i) for i in np.flatnonzero(kept.label == 0)) == ["a", "b"]
    assert [kept.video_name(i) for i in np.flatnonzero(kept.label == 1)] == ["a", "a"]


def test_the_choice_depends_on_the_seed_not_on_the_table_order():
    table = people_table()
    chosen = {seed: keys(split_per_class(table, 3, seed)[0]) for seed in range(4)}
    assert len({frozenset(c) for c in chosen.values()}) == 4
    order = np.random.default_rng(1).permutation(len(table.videos))
    reordered = FrameTable(
        [table.videos[i] for i in order],
        [table.patterns[i] for i in order],
        np.argsort(order)[table.video],
        table.frame,
        table.label,
        table.has_image,
    )
    reversed_rows = reordered.select(np.arange(len(table))[::-1])
    assert keys(split_per_class(reversed_rows, 3, seed=2)[0]) == chosen[2]


def test_a_class_that_cannot_supply_n_is_refused_naming_it_and_its_count():
    table = people_table(people=2, frames=16)  # 4 frames per class
    with pytest.raises(ConfigError) as error:
        split_per_class(table, 5, seed=0)
    message = str(error.value)
    assert "data.labels_per_class" in message and "Neutral has 4" in message
    assert "Other has 4" in message and "\n" not in message


def test_labels_per_class_on_a_dataset_hides_the_rest_in_the_pool(tmp_path):
    root = write_colour_coded_affwild2(tmp_path / "data", videos_per_split=6, frames=40)
    config = load_config(None, [f"data.root={root}", "data.labels_per_class=3"])
    kept = labelled_split(config.data, "train")
    hidden = hidden_label_frames(config.data)
    with_images = read_split(root, "train").with_images()
    np.testing.assert_array_equal(kept.class_counts(), np.full(8, 3))
    assert kept.has_image.all() and hidden.has_image.all()
    assert keys(kept) | keys(hidden) == keys(with_images) and keys(kept).isdisjoint(keys(hidden))
    assert len(set(kept.video.tolist())) > 1
    pool = unlabelled_table(config)
    own_pool = unlabelled_table(load_config(None, [f"data.root={root}"]))
    assert len(pool) == len(own_pool) + len(hidden)
    # the validation split is untouched
    assert len(labelled_split(config.data, "validation")) == len(read_split(root, "validation"))


@pytest.mark.slow
def test_stage1_trains_on_exactly_n_per_class(colour_coded_dataset, tmp_path):
    options = [f"data.root={colour_coded_dataset}", *SSL, "data.labels_per_class=2"]
    config = load_config(None, [*options, "train.epochs=1"])
    data = Stage1Data(config, progress=False)
    np.testing.assert_array_equal(data.class_counts, np.full(8, 2))
    own_pool = unlabelled_table(load_config(None, [f"data.root={colour_coded_dataset}"]))
    assert data.num_unlabelled == len(own_pool) + len(hidden_label_frames(config.data))
    train(config, tmp_path / "run", progress=False)
    steps = [
        json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()
    ]
    assert steps and all(s["pseudo_accuracy_all"] is not None for s in steps)


def test_split_sources_put_a_splits_frames_in_the_pool_with_truth(tmp_path, caplog):
    root = write_colour_coded_affwild2(tmp_path / "data", videos_per_split=2, frames=20)
    config = load_config(None, [f"data.root={root}", "ssl.unlabelled=[split:validation]"])
    pool = split_pool(config.data, "validation")
    frames = read_video_frames(root, ["validation_00", "validation_01"])
    assert keys(pool) == keys(frames)  # every frame with a crop, annotated or not
    annotated = read_split(root, "validation").with_images()
    truth = {
        (annotated.video_name(i), int(annotated.frame[i])): int(annotated.label[i])
        for i in range(len(annotated))
    }
    for i in range(len(pool)):
        assert pool.label[i] == truth.get((pool.video_name(i), int(pool.frame[i])), -1)
    assert (pool.label == -1).sum() == 2 * 3  # frames 1-3 of each video are not annotated
    with caplog.at_level(logging.WARNING, logger="fervid"):
        table = unlabelled_table(config)
    assert "transductive" in caplog.text
    assert keys(pool) <= keys(table)


def test_split_train_holds_the_hidden_frames_once(tmp_path):
    root = write_colour_coded_affwild2(tmp_path / "data", videos_per_split=4, frames=40)
    options = [f"data.root={root}", "data.labels_per_class=2", "ssl.dataset_pool=false"]
    hidden = unlabelled_table(load_config(None, options))
    with_train = unlabelled_table(load_config(None, [*options, "ssl.unlabelled=[split:train]"]))
    assert len(with_train) == len(read_video_frames(root, [f"train_{v:02d}" for v in range(4)]))
    assert keys(hidden) < keys(with_train)


def test_split_test_is_the_folders_without_annotations(tmp_path):
    root = write_colour_coded_affwild2(tmp_path / "data", videos_per_split=2, frames=20)
    (root / "cropped_aligned" / "validation_01").rename(root / "cropped_aligned" / "test_00")
    (root / "EXPR_Recognition_Challenge" / "Validation_Set" / "validation_01.txt").unlink()
    config = load_config(None, [f"data.root={root}", "ssl.unlabelled=[split:test]"])
    pool = split_pool(config.data, "test")
    assert pool.videos == ["test_00"] and (pool.label == -1).all() and len(pool) == 20 - 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ssl.unlabelled=[split:holdout]", "ssl.unlabelled: 'split:holdout' names no split"),
        ("data.labels_per_class=-1", "data.labels_per_class: must be >= 0"),
        ("data.labels_per_class=5 data.labelled_fraction=0.5", "set one of them"),
    ],
)
def test_bad_values_are_one_line_exit_code_2_before_anything_runs(
    override, message, tmp_path, capsys
):
    argv = ["-q", "train", "--run-dir", str(tmp_path / "run"), *override.split()]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run").exists()


def test_a_short_class_is_refused_by_the_cli_in_one_line(colour_coded_dataset, tmp_path, capsys):
    argv = ["-q", "train", "--run-dir", str(tmp_path / "run"), f"data.root={colour_coded_dataset}"]
    assert main([*argv, *SSL, "data.labels_per_class=500"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.labels_per_class: 500" in err[0] and " has " in err[0], err


@pytest.mark.slow
def test_every_process_under_torchrun_chooses_the_same_labelled_frames(
    colour_coded_dataset, tmp_path
):
    out = tmp_path / "chosen"
    result = torchrun(2, str(out), str(colour_coded_dataset), target=(str(SELECTION_SCRIPT),))
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = (json.loads((tmp_path / f"chosen.rank{r}").read_text()) for r in (0, 1))
    assert first == second and len(first["labelled"]) == 8 * 2 and first["hidden"] > 0
