"""Fast unit tests of stage 2's comparison and test path with values worked out by hand: the
frame model / moving average / Temporal Encoder table, the choice of the smoothing window, the
printed comparison, the ensemble rule and the frames of a frame list."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fervid import schema
from fervid.config import TemporalConfig, to_dict
from fervid.data.frame_lists import read_test_frames
from fervid.data.table import FrameTable
from fervid.errors import DataError
from fervid.evaluate import prediction_table, score
from fervid.labels import CLASS_NAMES
from fervid.models.temporal import TemporalEncoder, predict_windows
from fervid.runtime.checkpoint import save_weights
from fervid.stage2 import submission
from fervid.stage2.compare import (
    check_model_fits_store,
    choose_window,
    compare,
    compare_probabilities,
    evaluate_temporal,
    format_comparison,
    moving_average_per_video,
    temporal_model_for,
    temporal_probabilities,
)
from fervid.stage2.store import write_store

ENCODER = {"sha256": "8" * 64, "backbone": "synthetic", "input_size": 0, "source": "test"}
PROBS = list(schema.PROB_COLUMNS)


def one_video(labels, has_image) -> FrameTable:
    n = len(labels)
    return FrameTable(["a"], ["{}"], np.zeros(n), np.arange(1, n + 1), labels, has_image)


def test_the_smoothing_window_is_the_best_and_on_a_tie_the_smallest():
    # truth 0 0 1 0 0, the frame model right everywhere: window 1 scores (1 + 1) / 8; window 3
    # averages the 1 away (F1 of class 0: 2*4 / (2*4 + 1) = 8/9, class 1: 0); so does window 5
    table = one_video([0, 0, 1, 0, 0], np.ones(5, bool))
    probs = np.eye(8, dtype=np.float32)[[0, 0, 1, 0, 0]]
    best, scores = choose_window(table, probs, np.ones(5, bool), (5, 3, 1))
    assert best == 1
    assert scores == pytest.approx({1: 0.25, 3: 1 / 9, 5: 1 / 9})
    best, _ = choose_window(table, probs, np.ones(5, bool), (5, 3))
    assert best == 3  # tie: the smaller window


@pytest.fixture
def store(tmp_path):
    """Truth 0 0 0 1 1 1; frame 1 has no face; the frame model predicts 0 (logit 4) at frame 2
    and 1 (logit 2) at frames 3-6."""
    table = one_video([0, 0, 0, 1, 1, 1], [False, True, True, True, True, True])
    logits = np.zeros((6, 8), np.float32)
    logits[1, 0] = 4.0
    logits[2:, 1] = 2.0
    return write_store(tmp_path / "store", table, ENCODER, np.ones((6, 4), np.float32), logits)


def test_the_comparison_of_frame_model_moving_average_and_temporal_encoder(store):
    # frame model: frame 1 filled from frame 2 (class 0), so 0 0 1 1 1 1 against 0 0 0 1 1 1:
    # Neutral F1 2*2 / (2*2 + 1) = 4/5, Anger 2*3 / (2*3 + 1) = 6/7. The moving average over 3
    # frames predicts the same (frame 2: its own 0 at logit 4 outweighs frame 3's 1 at logit 2).
    # The Temporal Encoder is given the truth: 1 on both classes.
    temporal = (np.eye(8, dtype=np.float32)[[0, 0, 0, 1, 1, 1]], np.ones(6, bool))
    table = compare_probabilities(store, temporal, smoothing_window=3)
    assert list(table.index) == ["frame model", "moving average (3)", "temporal encoder"]
    for system in ("frame model", "moving average (3)"):
        assert table.loc[system, "Neutral"] == pytest.approx(4 / 5)
        assert table.loc[system, "Anger"] == pytest.approx(6 / 7)
        assert table.loc[system, "Fear"] == 0
        assert table.loc[system, "macro_f1"] == pytest.approx((4 / 5 + 6 / 7) / 8)
    assert table.loc["temporal encoder", "macro_f1"] == pytest.approx(2 / 8)
    assert table.attrs == {"smoothing_window": 3, "window_scores": {}}

    chosen = compare_probabilities(store, temporal, windows=(3, 1))
    assert chosen.attrs["smoothing_window"] == 1  # the same score: the smaller window
    same = (4 / 5 + 6 / 7) / 8
    assert chosen.attrs["window_scores"] == pytest.approx({1: same, 3: same})


def test_the_printed_comparison():
    table = pd.DataFrame(
        [[0.5, 0.8, *[0.0] * 6, np.nan], [0.25, *[1.0] * 8]],
        index=["frame model", "temporal"],
        columns=["macro_f1", "Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness",
                 "Surprise", "Other"],
    )  # fmt: skip
    assert format_comparison(table).splitlines() == [
        "             macro F1  Neutr Anger Disgu  Fear Happi Sadne Surpr Other",
        "frame model    0.5000  0.800 0.000 0.000 0.000 0.000 0.000 0.000   n/a",
        "temporal       0.2500  1.000 1.000 1.000 1.000 1.000 1.000 1.000 1.000",
    ]


def test_a_temporal_model_is_checked_against_the_stores_encoder(store):
    model = TemporalEncoder(4, TemporalConfig(window=8, width=8, heads=2, ffn_width=8))
    assert temporal_model_for(model, store) is model
    check_model_fits_store({"frame_encoder": ENCODER}, store)
    other = {**ENCODER, "sha256": "9" * 64, "source": "other.safetensors"}
    with pytest.raises(DataError, match=r"made by frame model synthetic 888888888888 .*other"):
        check_model_fits_store({"frame_encoder": other}, store)


def test_an_ensemble_needs_a_model():
    with pytest.raises(DataError, match="--model: no model given"):
        submission.ensemble_predictions([], one_video([0], [True]), "unused")


def test_listed_frames_are_predicted_on_the_frame_axis_and_returned_in_the_lists_order(
    tmp_path, monkeypatch, caplog
):
    """Video b has crops at frames 1-3, video a at 1, 2 and 5; the list asks for b 2, 4 and a
    5, 1, 6 (in that order). The models see each video's frames 1..last (b: 1-4, a: 1-6)."""
    for name, frames in (("b", (1, 2, 3)), ("a", (1, 2, 5))):
        folder = tmp_path / "cropped_aligned" / name
        folder.mkdir(parents=True)
        for frame in frames:
            Image.new("RGB", (8, 8)).save(folder / f"{frame:05d}.jpg")
    frame_list = tmp_path / "frames.txt"
    frame_list.write_text("b/00002.jpg\nb/00004.jpg\na/00005.jpg\na/00001.jpg\na/00006.jpg\n")
    wanted = read_test_frames(tmp_path, frame_list)
    seen = {}

    def ensemble(models, axis, work, **options):
        seen["call"] = (models, work, options)
        seen["axis"] = [(axis.videos[v], int(f)) for v, f in zip(axis.video, axis.frame)]
        seen["has_image"] = axis.has_image.tolist()
        probs = np.zeros((len(axis), 8), np.float32)
        probs[:, 0] = np.arange(len(axis))  # row number, to see which rows come back
        return pd.DataFrame({schema.VIDEO: [axis.videos[v] for v in axis.video],
                             schema.FRAME: axis.frame, **dict(zip(PROBS, probs.T))})  # fmt: skip

    monkeypatch.setattr(submission, "ensemble_predictions", ensemble)
    predictions, after = submission.predict_frames(
        ["m"], wanted, tmp_path, tmp_path / "work", batch_size=5
    )
    assert seen["call"] == (["m"], tmp_path / "work", {"batch_size": 5})
    assert list(predictions.columns) == [schema.VIDEO, schema.FRAME, *PROBS]
    assert seen["axis"] == [("b", f) for f in range(1, 5)] + [("a", f) for f in range(1, 7)]
    assert seen["has_image"] == [True, True, True, False, True, True, False, False, True, False]
    assert list(zip(predictions[schema.VIDEO], predictions[schema.FRAME])) == [
        ("b", 2), ("b", 4), ("a", 1), ("a", 5), ("a", 6)
    ]  # fmt: skip
    assert predictions[PROBS[0]].tolist() == [1, 3, 4, 8, 9]
    assert after == {"b": 1, "a": 1}
    assert caplog.messages == [
        f"{name}: 1 listed frames come after its last face crop (frame {last}); they are "
        "predicted from the frames before it"
        for name, last in (("b", 3), ("a", 5))
    ]


class FakeFrame(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(1, 8)


class FakeVideo:
    def __init__(self, frame, temporal):
        self.frame, self.temporal = frame, temporal


class FakeTemporal:
    def to(self, device):
        self.device = device
        return self


@pytest.fixture
def fake_models(monkeypatch):
    """model_probabilities' collaborators, recording what they are given."""
    calls: dict = {}
    frame, temporal = FakeFrame(), FakeTemporal()
    models = {"frame.safetensors": frame, "video.safetensors": FakeVideo(frame, temporal)}

    class Store:
        def frame_probabilities(self):
            return "frame head", "faces"

    def extract(*args, **kwargs):
        calls["extract"] = (args, kwargs)
        calls["store"] = Store()
        return calls["store"]

    def run_temporal(model, store):
        calls["temporal"] = (model, store)
        return "temporal encoder", "predicted"

    monkeypatch.setattr(submission, "FrameModel", FakeFrame)
    monkeypatch.setattr(submission, "VideoModel", FakeVideo)
    monkeypatch.setattr(submission, "resolve_split_model", lambda model: Path(model))
    monkeypatch.setattr(submission, "load_model", lambda path: models[str(path)])
    monkeypatch.setattr(submission, "sha256_file", lambda path: f"{path.stem:0<64}")
    monkeypatch.setattr(submission, "extract_features", extract)
    monkeypatch.setattr(submission, "temporal_probabilities", run_temporal)
    return calls, frame, temporal


def test_model_probabilities_are_the_frame_heads_or_the_temporal_encoders_unfilled(
    fake_models, tmp_path
):
    calls, frame, temporal = fake_models
    table = one_video([0, 1], [True, False])
    got = submission.model_probabilities("frame.safetensors", table, tmp_path)
    assert got == ("frame head", "faces")  # the store's, as they are
    store_dir = tmp_path / "frame0000000"
    assert calls["extract"] == ((frame, table, store_dir, 128, 2, "cpu", True), {"flip": False})
    got = submission.model_probabilities(
        "video.safetensors", table, tmp_path, 7, 0, "cuda", True, False
    )
    assert got == ("temporal encoder", "predicted")
    store_dir = tmp_path / "video0000000"
    assert calls["extract"] == ((frame, table, store_dir, 7, 0, "cuda", False), {"flip": True})
    assert calls["temporal"] == (temporal, calls["store"])
    assert temporal.device == frame.head.weight.device


def test_an_ensemble_passes_each_model_the_table_work_folder_and_options(monkeypatch):
    table = one_video([0, 1], [True, True])
    seen = []

    def probabilities(model, given, work, **options):
        seen.append((model, given, work, options))
        return np.full((2, 8), 0.125, np.float32), np.ones(2, bool)

    monkeypatch.setattr(submission, "model_probabilities", probabilities)
    predictions = submission.ensemble_predictions(["A", "B"], table, "work", batch_size=3)
    assert seen == [
        ("A", table, "work", {"batch_size": 3}),
        ("B", table, "work", {"batch_size": 3}),
    ]
    assert predictions[PROBS].to_numpy().dtype == np.float32


# ----------------------------------------------------------------------------------------------
# The Temporal Encoder over a whole store, compared and evaluated


TINY = TemporalConfig(window=4, width=8, heads=2, ffn_width=8, layers=1)


@pytest.fixture
def three_videos(tmp_path):
    """A store of three videos (5, 3 and 6 frames, a few without a face) and a Temporal Encoder
    file trained on its encoder."""
    rng = np.random.default_rng(4)
    lengths = (5, 3, 6)
    table = FrameTable(
        ["a", "b", "c"],
        ["{}"] * 3,
        np.repeat(np.arange(3), lengths),
        np.concatenate([np.arange(1, n + 1) for n in lengths]),
        rng.integers(0, 3, sum(lengths)),
        rng.random(sum(lengths)) > 0.2,
    )
    features = rng.normal(size=(len(table), 4)).astype(np.float32)
    logits = rng.normal(size=(len(table), 8)).astype(np.float32)
    store = write_store(tmp_path / "store", table, ENCODER, features, logits)
    torch.manual_seed(0)
    model = TemporalEncoder(4, TINY).eval()
    meta = {"kind": "temporal", "config": {"temporal": to_dict(TINY)}, "feature_dim": 4,
            "frame_encoder": ENCODER}  # fmt: skip
    path = save_weights(tmp_path / "temporal", model.state_dict(), meta)
    return store, model, path


def test_temporal_probabilities_cover_every_video_of_the_store(three_videos):
    store, model, _ = three_videos
    probs, known = temporal_probabilities(model, store, batch_size=1)
    slices = [rows for _, rows in store.table.video_slices()]
    expected, expected_known = predict_windows(model, store.features, store.table.has_image, slices)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    assert known.tolist() == expected_known.tolist() and known.all()  # missing: context


def test_compare_runs_a_temporal_model_file_over_a_store_folder(three_videos):
    store, model, path = three_videos
    table = compare(str(store.path), str(path), windows=(3, 1), batch_size=2)
    expected = compare_probabilities(store, temporal_probabilities(model, store), windows=(3, 1))
    pd.testing.assert_frame_equal(table, expected, atol=1e-6)
    assert set(table.attrs["window_scores"]) == {1, 3}
    fixed = compare(store, model, smoothing_window=5)
    assert list(fixed.index)[1] == "moving average (5)" and fixed.attrs["window_scores"] == {}


def test_evaluate_temporal_writes_the_metrics_and_the_comparison(three_videos, tmp_path, caplog):
    store, model, path = three_videos
    caplog.set_level(logging.INFO, logger="fervid")
    out = tmp_path / "eval"
    metrics = evaluate_temporal(path, store.path, out, windows=(1, 3), batch_size=2)
    temporal = temporal_probabilities(model, store)
    predictions = prediction_table(store.table, *temporal)
    assert metrics["macro_f1"] == pytest.approx(score(predictions)["macro_f1"])
    assert json.loads((out / "metrics.json").read_text())["frames"] == len(store.table)
    comparison = compare_probabilities(store, temporal, windows=(1, 3))
    assert (out / "comparison.csv").read_text() == comparison.to_csv(index_label="system")
    text = format_comparison(comparison)
    assert metrics["comparison"]["text"] == text
    written = {key: value for key, value in metrics["comparison"].items() if key != "text"}
    assert (out / "comparison.json").read_text() == json.dumps(written, indent=2)
    assert written["smoothing_window"] == comparison.attrs["smoothing_window"]
    assert written["window_scores"] == comparison.attrs["window_scores"]
    assert written["table"] == json.loads(comparison.to_json(orient="index"))
    assert f"{store.path}:\n{text}" in caplog.messages

    # given probabilities are used as they are: the truth scores 1 on the classes present
    truth = (np.eye(8, dtype=np.float32)[store.table.label], np.ones(len(store.table), bool))
    given = evaluate_temporal(model, store, tmp_path / "given", smoothing_window=3, temporal=truth)
    assert given["macro_f1"] == pytest.approx(3 / 8)
    assert given["comparison"]["smoothing_window"] == 3
    assert given["comparison"]["window_scores"] == {}


def test_a_temporal_model_file_is_loaded_and_checked_against_the_store(three_videos):
    store, model, path = three_videos
    loaded = temporal_model_for(path, store)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert not loaded.training
    other = FrameTable(["a"], ["{}"], [0], [1], [0], [True])
    foreign = write_store(
        store.path.parent / "other", other, {**ENCODER, "sha256": "9" * 64}, np.ones((1, 4)),
        np.ones((1, 8)),
    )  # fmt: skip
    with pytest.raises(DataError, match="but the encoder the temporal model was trained on is"):
        temporal_model_for(path, foreign)


def test_the_moving_average_of_each_video_is_float32_with_a_boolean_mask():
    table = one_video([0, 0, 0], [True, False, True])
    averaged, has_value = moving_average_per_video(
        table, np.ones((3, 8)), np.array([True, False, False]), 1
    )
    assert averaged.dtype == np.float32 and has_value.dtype == bool
    assert has_value.tolist() == [True, False, False]


def test_the_comparison_has_the_macro_f1_then_the_eight_classes(store):
    temporal = (np.eye(8, dtype=np.float32)[[0, 0, 0, 1, 1, 1]], np.ones(6, bool))
    table = compare_probabilities(store, temporal, smoothing_window=1)
    assert list(table.columns) == ["macro_f1", *CLASS_NAMES]


# ----------------------------------------------------------------------------------------------
# Which models run over a split, and with what


def sidecar(path: Path, kind: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps({"kind": kind}))
    return path


def test_the_models_that_run_over_a_split_are_frame_video_and_onnx_models(tmp_path):
    run = sidecar(tmp_path / "run" / "model.safetensors", "frame").parent
    assert submission.resolve_split_model(run) == run / "model.safetensors"
    video = sidecar(tmp_path / "video.safetensors", "video")
    assert submission.resolve_split_model(str(video)) == video
    onnx = sidecar(tmp_path / "onnx.safetensors", "onnx")
    assert submission.resolve_split_model(onnx) == onnx
    temporal = sidecar(tmp_path / "stage2" / "model.safetensors", "temporal")
    with pytest.raises(DataError) as error:
        submission.resolve_split_model(temporal)
    assert str(error.value) == (
        f"{temporal}: a 'temporal' model cannot run over a split of face "
        "crops; give a stage-1 run or frame model, a video model from `fervid export` (a "
        "stage-2 run: export it with its frame encoder first) or an ONNX model"
    )
