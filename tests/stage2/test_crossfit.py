"""Cross-fitting for stage 2 (``temporal.cross_fit``): folds of the train videos, fold models
that never see their fold, and a training store whose logits come from them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from fervid.api import demo
from fervid.config import load_config
from fervid.data.affwild2 import read_split
from fervid.data.sources import labelled_split, present_videos, source_video, video_folds
from fervid.errors import ConfigError
from fervid.stage2.store import FeatureStore, write_store
from fervid.stage2.train import train_stage2
from fervid.stage2.windows import mix_windows
from tests.conftest import write_colour_coded_affwild2
from tests.test_demo import TINY

NAMES = [f"v{i:02d}" for i in range(11)] + ["two_left", "two_right"]


def test_folds_deal_whole_source_videos_evenly_and_deterministically():
    folds = video_folds(NAMES, 3, seed=4)
    assert set(folds) == set(NAMES) and set(folds.values()) == {0, 1, 2}
    assert folds["two_left"] == folds["two_right"]
    sizes = np.bincount([folds[n] for n in NAMES if not n.endswith("_right")], minlength=3)
    assert sizes.max() - sizes.min() <= 1  # 12 source videos, 4 per fold
    assert video_folds(list(reversed(NAMES)), 3, seed=4) == folds
    assert any(video_folds(NAMES, 3, seed=s) != folds for s in range(5))


def test_leave_out_fold_trains_on_the_other_folds_only(tmp_path):
    root = write_colour_coded_affwild2(tmp_path / "data", videos_per_split=6, frames=12)
    every = set(read_split(root, "train").videos)
    left_out = []
    for fold in range(3):
        config = load_config(None, [f"data.root={root}", f"data.leave_out_fold=[{fold},3]"])
        kept = set(present_videos(labelled_split(config.data, "train")))
        assert kept and kept < every
        left_out.append(every - kept)
    assert set().union(*left_out) == every and sum(map(len, left_out)) == len(every)
    folds = video_folds(sorted(every), 3, 0)
    assert all(folds[name] == fold for fold, names in enumerate(left_out) for name in names)


@pytest.mark.parametrize(
    "overrides",
    [
        ["temporal.cross_fit=1", "temporal.input=logits"],
        ["temporal.cross_fit=2"],  # features of different fold models are not comparable
        ["data.leave_out_fold=[2,2]"],
        ["data.leave_out_fold=[1]"],
        ["temporal.out_of_fold_share=0.5", "temporal.cross_fit=0"],
    ],
)
def test_impossible_cross_fitting_is_refused(overrides):
    with pytest.raises(ConfigError, match="cross_fit|leave_out_fold"):
        load_config(None, overrides)


@pytest.mark.slow
def test_stage2_trains_on_logits_from_the_fold_model_that_never_saw_the_video(tmp_path):
    overrides = [
        *TINY,
        "data.labels_per_class=0",  # each fold model trains on half the tiny draw's videos
        "temporal.input=logits",
        "temporal.normalize=global",
        "temporal.cross_fit=2",
    ]
    result = demo(tmp_path / "demo", overrides, progress=False)
    assert "cross_fit" in result["seconds"]
    run = tmp_path / "demo" / "run"
    main = FeatureStore.open(run / "features" / "train")
    oof = FeatureStore.open(run / "features" / "train-out-of-fold")
    np.testing.assert_array_equal(np.asarray(oof.features), np.asarray(main.features))
    assert (
        oof.encoder["sha256"] == main.encoder["sha256"] and "out of fold" in oof.encoder["logits"]
    )
    config = load_config("demo", [*overrides, f"data.root={tmp_path / 'demo' / 'data'}"])
    folds = video_folds(present_videos(labelled_split(config.data, "train")), 2, 0)
    for fold in (0, 1):
        fold_run = run / "folds" / f"fold{fold}"
        trained_on = yaml.safe_load((fold_run / "config.yaml").read_text())["data"]
        assert trained_on["leave_out_fold"] == [fold, 2]
        held_out = FeatureStore.open(fold_run / "features")
        assert {source_video(n) for n in present_videos(held_out.table)} == {
            source_video(n) for n, f in folds.items() if f == fold
        }
        for i in range(len(held_out.table)):
            name, frame = held_out.table.video_name(i), held_out.table.frame[i]
            row = np.flatnonzero(
                (oof.table.video == oof.table.videos.index(name)) & (oof.table.frame == frame)
            )
            np.testing.assert_array_equal(oof.logits[row[0]], held_out.logits[i])
    # ... and not the main model's logits of its own training frames
    assert not np.allclose(np.asarray(oof.logits), np.asarray(main.logits))
    stage2 = yaml.safe_load((run / "stage2" / "config.yaml").read_text())["temporal"]
    assert stage2["train_store"] == str(run / "features" / "train-out-of-fold")
    assert json.loads((run / "fervid_demo_model.json").read_text())["temporal"] is not None


def test_mix_windows_takes_whole_windows_from_the_second_with_the_given_share():
    first, second = torch.zeros(400, 5, 3), torch.ones(400, 5, 3)
    rng = torch.Generator().manual_seed(0)
    assert torch.equal(mix_windows(first, second, 0.0, rng), first)
    assert torch.equal(mix_windows(first, second, 1.0, rng), second)
    mixed = mix_windows(first, second, 0.25, rng)
    per_window = mixed.mean(dim=(1, 2))
    assert set(per_window.tolist()) == {0.0, 1.0}  # never part of a window
    assert 0.15 < per_window.mean() < 0.35


@pytest.mark.slow
def test_out_of_fold_share_is_the_share_of_windows_that_read_the_out_of_fold_logits(tmp_path):
    """With share 0 training never reads the store's (out-of-fold) logits: two stores that differ
    only there train the same model; with share 1 they do not."""
    overrides = [
        *TINY,
        "data.labels_per_class=0",  # each fold model trains on half the tiny draw's videos
        "temporal.input=logits",
        "temporal.normalize=global",
        "temporal.cross_fit=2",
    ]
    demo(tmp_path / "demo", overrides, progress=False)
    run = tmp_path / "demo" / "run"
    oof = FeatureStore.open(run / "features" / "train-out-of-fold")
    rng = np.random.default_rng(0)
    stores = []
    for k in range(2):  # the same features, other "out-of-fold" logits
        logits = rng.normal(size=np.shape(oof.logits)).astype(np.float32)
        stores.append(
            write_store(tmp_path / f"store{k}", oof.table, oof.encoder, oof.features, logits)
        )

    def trained(share: float, store: FeatureStore, name: str) -> dict:
        config = load_config(
            "demo",
            [
                *overrides,
                f"data.root={tmp_path / 'demo' / 'data'}",
                f"temporal.train_store={store.path}",
                f"temporal.val_store={run / 'features' / 'validation'}",
                f"temporal.frame_model={run / 'stage1'}",
                f"temporal.out_of_fold_share={share}",
            ],
        )
        train_stage2(config, tmp_path / name, progress=False)
        return load_file(tmp_path / name / "model.safetensors")

    def same(a: dict, b: dict) -> bool:
        return all(torch.equal(a[key], b[key]) for key in a)

    assert same(trained(0.0, stores[0], "a0"), trained(0.0, stores[1], "b0"))
    assert not same(trained(1.0, stores[0], "a1"), trained(1.0, stores[1], "b1"))
