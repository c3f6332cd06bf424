"""Fast unit tests of stage 2's comparison and test path with values worked out by hand: the
frame model / moving average / Temporal Encoder table, the choice of the smoothing window, the
printed comparison, the ensemble rule and the frames of a frame list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fervid import schema
from fervid.config import TemporalConfig
from fervid.data.frame_lists import read_test_frames
from fervid.data.table import FrameTable
from fervid.errors import DataError
from fervid.models.temporal import TemporalEncoder
from fervid.stage2 import submission
from fervid.stage2.compare import (
    check_model_fits_store,
    choose_window,
    compare_probabilities,
    format_comparison,
    temporal_model_for,
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
        seen["axis"] = [(axis.videos[v], int(f)) for v, f in zip(axis.video, axis.frame)]
        seen["has_image"] = axis.has_image.tolist()
        probs = np.zeros((len(axis), 8), np.float32)
        probs[:, 0] = np.arange(len(axis))  # row number, to see which rows come back
        return pd.DataFrame({schema.VIDEO: [axis.videos[v] for v in axis.video],
                             schema.FRAME: axis.frame, **dict(zip(PROBS, probs.T))})  # fmt: skip

    monkeypatch.setattr(submission, "ensemble_predictions", ensemble)
    predictions, after = submission.predict_frames(["m"], wanted, tmp_path, tmp_path / "work")
    assert seen["axis"] == [("b", f) for f in range(1, 5)] + [("a", f) for f in range(1, 7)]
    assert seen["has_image"] == [True, True, True, False, True, True, False, False, True, False]
    assert list(zip(predictions[schema.VIDEO], predictions[schema.FRAME])) == [
        ("b", 2), ("b", 4), ("a", 1), ("a", 5), ("a", 6)
    ]  # fmt: skip
    assert predictions[PROBS[0]].tolist() == [1, 3, 4, 8, 9]
    assert after == {"b": 1, "a": 1}
    assert "b: 1 listed frames come after its last face crop (frame 3)" in caplog.text
    assert "a: 1 listed frames come after its last face crop (frame 5)" in caplog.text


def test_model_probabilities_are_the_temporal_encoders_or_the_frame_heads_unfilled(
    tmp_path, monkeypatch
):
    """A frame model's probabilities are its head's softmax on frames with a face and nothing
    elsewhere (nothing is filled before the ensemble)."""
    table = one_video([0, 1, -1], [True, False, True])

    class Store:
        def frame_probabilities(self):
            return np.full((3, 8), 0.125, np.float32) * [[1], [0], [1]], np.array([1, 0, 1], bool)

    class Frame(torch.nn.Module):
        head = torch.nn.Linear(1, 8)

    frame = Frame()
    monkeypatch.setattr(submission, "FrameModel", Frame)
    monkeypatch.setattr(submission, "resolve_split_model", lambda model: Path(model))
    monkeypatch.setattr(submission, "load_model", lambda path: frame)
    monkeypatch.setattr(submission, "sha256_file", lambda path: "f" * 64)
    monkeypatch.setattr(submission, "extract_features", lambda *args, **kwargs: Store())
    probs, known = submission.model_probabilities("m.safetensors", table, tmp_path)
    assert known.tolist() == [True, False, True]
    assert probs[1].tolist() == [0.0] * 8
