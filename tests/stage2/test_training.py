"""Stage-2 training and the baselines, on synthetic feature stores where frame order matters."""

import json

import numpy as np
import pytest
import torch

from fervid.cli import main
from fervid.config import TemporalConfig, load_config
from fervid.data.table import FrameTable
from fervid.errors import DataError
from fervid.models.temporal import make_windows
from fervid.runtime import training as common
from fervid.runtime.checkpoint import load_weights
from fervid.stage2.compare import (
    choose_window,
    compare,
    format_comparison,
    moving_average_per_video,
)
from fervid.stage2.step import window_loss
from fervid.stage2.store import write_store
from fervid.stage2.train import train_stage2
from fervid.stage2.windows import window_weights
from tests.helpers import kill_after_first_checkpoint, max_weight_difference

ENCODER = {"sha256": "5" * 64, "backbone": "synthetic", "input_size": 0, "source": "test"}
TINY = [
    "temporal.window=32",
    "temporal.width=32",
    "temporal.heads=2",
    "temporal.ffn_width=64",
    "temporal.layers=1",
    "temporal.dropout=0",
    "temporal.input_dropout=0",
    "temporal.batch_size=16",
    "temporal.lr=3e-3",
    "temporal.warmup_epochs=0.2",
    "train.device=cpu",
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def pulses(seed: int, videos: int, length: int = 240, dim: int = 16):
    """Segments of 24-39 frames of one class; the class shows only at 3 "apex" frames of each
    segment (+4 on that class's dimension), the other frames are pure noise. A frame alone is
    mostly undecidable; its neighbours tell its class."""
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 1, (videos * length, dim)).astype(np.float32)
    labels = np.empty(videos * length, dtype=np.int64)
    for video in range(videos):
        start, end = video * length, (video + 1) * length
        while start < end:
            rows = np.arange(start, min(start + int(rng.integers(24, 40)), end))
            label = int(rng.integers(0, 8))
            labels[rows] = label
            features[rng.choice(rows, size=min(3, len(rows)), replace=False), label] += 4.0
            start = rows[-1] + 1
    table = FrameTable(
        videos=[f"video{v}" for v in range(videos)],
        patterns=["{}"] * videos,
        video=np.repeat(np.arange(videos), length),
        frame=np.tile(np.arange(1, length + 1), videos),
        label=labels,
        has_image=np.ones(len(labels), bool),
    )
    return table, features, 2.0 * features[:, :8]  # the "frame model" reads its own frame only


def shuffled_in_time(table, features, logits, seed=0):
    rng = np.random.default_rng(seed)
    order = np.concatenate(
        [rows.start + rng.permutation(rows.stop - rows.start) for _, rows in table.video_slices()]
    )
    shuffled = table.select(order)
    shuffled.frame = table.frame  # same frame numbers, features and labels in another order
    return shuffled, features[order], logits[order]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    write_store(root / "train", *pulses(0, videos=40)[:1], ENCODER, *pulses(0, videos=40)[1:])
    validation = pulses(1, videos=6)
    write_store(root / "val", validation[0], ENCODER, *validation[1:])
    shuffled = shuffled_in_time(*validation)
    write_store(root / "shuffled", shuffled[0], ENCODER, *shuffled[1:])
    return root


def overrides(stores, *extra) -> list[str]:
    return [
        f"data.root={stores / 'no-dataset'}",  # stores only: the split check is skipped
        f"temporal.train_store={stores / 'train'}",
        f"temporal.val_store={stores / 'val'}",
        *TINY,
        *extra,
    ]


def config(stores, *extra):
    return load_config(None, overrides(stores, *extra))


@pytest.fixture(scope="module")
def trained(stores):
    run = stores / "run"
    metrics = train_stage2(
        config(stores, "temporal.epochs=4", "temporal.steps_per_epoch=80"), run, progress=False
    )
    return run, metrics


@pytest.mark.slow
def test_temporal_encoder_uses_frame_order_and_loses_its_advantage_when_shuffled(stores, trained):
    run, metrics = trained
    table = metrics["comparison"]["table"]
    frame_f1 = table["frame model"]["macro_f1"]
    temporal_f1 = table["temporal encoder"]["macro_f1"]
    assert metrics["macro_f1"] == pytest.approx(temporal_f1)
    assert temporal_f1 > frame_f1 + 0.25, table

    shuffled = compare(stores / "shuffled", run, smoothing_window=1)
    assert shuffled.loc["temporal encoder", "macro_f1"] < temporal_f1 - 0.25
    assert shuffled.loc["temporal encoder", "macro_f1"] < frame_f1 + 0.1
    assert "temporal encoder" in format_comparison(shuffled)


def test_a_run_writes_its_model_log_and_comparison(stores, trained):
    run, metrics = trained
    state, meta = load_weights(run / "model.safetensors")
    assert meta["kind"] == "temporal" and meta["feature_dim"] == 16
    assert meta["frame_encoder"]["sha256"] == ENCODER["sha256"]
    assert meta["config"]["temporal"]["window"] == 32
    assert "feature_mean" in state and "feature_std" in state
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in log] == [1, 2, 3, 4]
    assert log[-1]["val_macro_f1"] == pytest.approx(metrics["macro_f1"])
    for name in ["comparison.csv", "comparison.json", "metrics.json", "predictions.parquet"]:
        assert (run / "eval" / "validation" / name).exists(), name
    assert metrics["comparison"]["smoothing_window"] in TemporalConfig().smoothing_windows
    with pytest.raises(FileExistsError):
        train_stage2(config(stores), run, progress=False)


@pytest.mark.slow
def test_resume_after_a_kill_ends_with_the_same_weights(stores, tmp_path, monkeypatch):
    options = [
        "temporal.epochs=3",
        "temporal.steps_per_epoch=4",
        "temporal.dropout=0.2",
        "temporal.feature_noise=0.3",
        "temporal.feature_dropout=0.1",
        "train.eval_every=0",
    ]
    train_stage2(config(stores, *options), tmp_path / "full", progress=False)

    original = common.save_state  # the checkpoint writer of both stages

    def save_then_die(path, state):
        original(path, state)
        if state["epoch"] == 0:
            raise KeyboardInterrupt  # killed right after the first checkpoint

    monkeypatch.setattr(common, "save_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_stage2(config(stores, *options), tmp_path / "killed", progress=False)
    monkeypatch.setattr(common, "save_state", original)
    train_stage2(config(stores, *options), tmp_path / "killed", resume=True, progress=False)

    full, _ = load_weights(tmp_path / "full" / "model.safetensors")
    resumed, _ = load_weights(tmp_path / "killed" / "model.safetensors")
    for key in full:
        torch.testing.assert_close(full[key], resumed[key], rtol=0, atol=0, msg=key)
    log = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [1, 2, 3]


@pytest.mark.slow
def test_a_sigkilled_stage2_process_resumes_to_the_same_weights(stores, tmp_path, monkeypatch):
    """`fervid train --stage 2` in a subprocess, SIGKILLed as soon as its first checkpoint
    exists (a real kill, not an exception inside the writer), then resumed with `--resume`:
    bit for bit the weights of an uninterrupted run (noise and dropout on, so the RNG state
    must come back too)."""
    options = overrides(
        stores,
        "temporal.epochs=3",
        "temporal.steps_per_epoch=30",  # ~0.2 s an epoch: the kill lands before the end
        "temporal.dropout=0.2",
        "temporal.feature_noise=0.3",
        "temporal.feature_dropout=0.1",
        "train.eval_every=0",
    )
    train_stage2(load_config(None, options), tmp_path / "full", progress=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one thread, as this module runs in-process
    killed = tmp_path / "killed"
    kill_after_first_checkpoint(
        killed, ["train", "--stage", "2", "--run-dir", str(killed), *options]
    )
    assert (
        main(["-q", "train", "--stage", "2", "--run-dir", str(killed), "--resume", *options]) == 0
    )
    difference = max_weight_difference(
        tmp_path / "full" / "model.safetensors", killed / "model.safetensors"
    )
    assert difference == 0.0, f"resumed weights differ by up to {difference:.3g}"
    log = (killed / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [1, 2, 3]


def test_validation_store_of_another_encoder_is_refused(stores, tmp_path):
    table, features, logits = pulses(3, videos=2)
    write_store(tmp_path / "val", table, {**ENCODER, "sha256": "6" * 64}, features, logits)
    with pytest.raises(DataError, match="the encoder of the training store"):
        train_stage2(
            config(stores, f"temporal.val_store={tmp_path / 'val'}"),
            tmp_path / "run",
            progress=False,
        )


def test_balanced_sampling_draws_windows_of_rare_classes_more_often():
    labels = np.r_[np.zeros(300), np.ones(60)].astype(np.int8)  # class 1 is five times rarer
    table = FrameTable(["a"], ["{}"], np.zeros(360), np.arange(1, 361), labels, np.ones(360, bool))
    windows = make_windows([slice(0, 360)], size=30, stride=30)
    cfg = TemporalConfig(window=30)
    weights = window_weights(windows, table, cfg)
    assert weights[-1] == pytest.approx(5 * weights[0])
    per_class = [weights[:10].sum(), weights[10:].sum()]
    assert per_class[0] == pytest.approx(per_class[1])  # each class drawn equally often
    uniform = window_weights(windows, table, TemporalConfig(window=30, sampling="uniform"))
    assert (uniform == 1).all()


def test_window_loss_counts_annotated_frames_only_and_survives_empty_batches():
    logits = torch.zeros(2, 4, 8, requires_grad=True)
    labels = torch.tensor([[0, -1, 2, 3], [-1, -1, -1, -1]])
    mask = torch.tensor([[False, False, True, False], [False] * 4])
    with_missing = window_loss(logits, labels, mask, train_missing=True)
    assert with_missing.item() == pytest.approx(np.log(8))  # 3 frames, each log(8)
    no_targets = window_loss(logits, torch.full((2, 4), -1), mask, train_missing=True)
    assert no_targets.item() == 0 and torch.isfinite(no_targets)
    peaked = logits.detach().clone()
    peaked[0, 2, 2] = 10.0  # the frame with no face is right
    assert window_loss(peaked, labels, mask, train_missing=False) == pytest.approx(np.log(8))
    assert window_loss(peaked, labels, mask, train_missing=True) < np.log(8)


def test_moving_average_is_centred_skips_frames_without_a_face_and_stays_in_its_video():
    table = FrameTable(
        ["a", "b"], ["{}"] * 2, [0] * 5 + [1] * 2, [1, 2, 3, 4, 5, 1, 2], [0] * 7, [True] * 7
    )
    probs = np.zeros((7, 8), np.float32)
    probs[:, 0] = [1, 2, 3, 0, 5, 100, 200]
    known = np.array([True, True, True, False, True, True, True])
    smoothed, smoothed_known = moving_average_per_video(table, probs, known, 3)
    np.testing.assert_allclose(smoothed[:, 0], [1.5, 2, 2.5, 4, 5, 150, 150])
    assert smoothed_known.all()
    unsmoothed, _ = moving_average_per_video(table, probs, known, 1)
    np.testing.assert_allclose(unsmoothed, probs)


def test_the_smoothing_window_is_the_best_one_on_the_given_split():
    table, features, logits = pulses(4, videos=4)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    best, scores = choose_window(table, probs, np.ones(len(table), bool), (1, 11, 201))
    assert best == 11 and scores[11] > scores[1] and scores[11] > scores[201]


@pytest.mark.slow
def test_with_per_video_normalisation_training_reads_each_video_standardised(tmp_path):
    # every video shifted by its own constant (who is in it): the Temporal Encoder's input
    # statistics come from what it trains on, so they show whether training read the store raw
    table, features, logits = pulses(2, videos=6)
    shifts = np.random.default_rng(3).normal(5.0, 3.0, (6, features.shape[1]))
    features = (features + np.repeat(shifts, 240, axis=0)).astype(np.float32)
    write_store(tmp_path / "train", table, ENCODER, features, logits)
    write_store(tmp_path / "val", table, ENCODER, features, logits)
    means = {}
    for normalize in ("video", "global"):
        cfg = load_config(
            None,
            [
                f"data.root={tmp_path / 'no-dataset'}",
                f"temporal.train_store={tmp_path / 'train'}",
                f"temporal.val_store={tmp_path / 'val'}",
                *TINY,
                f"temporal.normalize={normalize}",
                "temporal.epochs=1",
                "temporal.steps_per_epoch=2",
            ],
        )
        train_stage2(cfg, tmp_path / normalize, progress=False)
        state, meta = load_weights(tmp_path / normalize / "model")
        assert meta["config"]["temporal"]["normalize"] == normalize
        means[normalize] = state["feature_mean"].numpy()
        if normalize == "video":
            np.testing.assert_allclose(state["feature_std"].numpy(), 1.0, atol=0.02)
    np.testing.assert_allclose(means["video"], 0.0, atol=0.02)
    assert np.abs(means["global"]).mean() > 2.0  # the raw store: the shifts' mean, about 5
