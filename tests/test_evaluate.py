import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from fervid import schema
from fervid.data.table import FrameTable
from fervid.evaluate import (
    SUBMISSION_HEADER,
    confusion_matrix,
    f1_scores,
    macro_f1,
    prediction_table,
    write_evaluation,
    write_submission,
)

EIGHT = list(range(8))


def sklearn_macro_f1(y_true, y_pred) -> float:
    """The challenge's metric: scikit-learn's macro F1 over the 8 ABAW classes."""
    return f1_score(y_true, y_pred, average="macro", labels=EIGHT, zero_division=0)


@pytest.mark.parametrize("seed", range(5))
def test_macro_f1_equals_sklearn_over_the_8_classes_on_random_data(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 8, 500)
    y_pred = rng.integers(0, 8, 500)
    assert macro_f1(y_true, y_pred) == pytest.approx(sklearn_macro_f1(y_true, y_pred))


def test_macro_f1_with_classes_absent_from_predictions_truth_or_both():
    rng = np.random.default_rng(7)
    y_true = rng.integers(0, 8, 300)
    y_pred = rng.choice([0, 4, 7], 300)  # five classes never predicted
    assert macro_f1(y_true, y_pred) == pytest.approx(sklearn_macro_f1(y_true, y_pred))
    y_true = rng.choice([0, 1, 2], 300)  # classes only in predictions
    y_pred = rng.integers(0, 8, 300)
    assert macro_f1(y_true, y_pred) == pytest.approx(sklearn_macro_f1(y_true, y_pred))
    y_true = rng.choice([0, 1], 300)  # six classes absent from both: they count as 0
    y_pred = rng.choice([0, 1], 300)
    assert macro_f1(y_true, y_pred) == pytest.approx(sklearn_macro_f1(y_true, y_pred))
    present_only = f1_score(y_true, y_pred, average="macro")  # sklearn's default: 2 classes
    assert macro_f1(y_true, y_pred) == pytest.approx(present_only * 2 / 8)


def test_per_class_f1_by_hand():
    confusion = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), num_classes=3)
    macro, per_class = f1_scores(confusion)
    assert per_class[0] == pytest.approx(2 / 3)  # P=1, R=0.5
    assert per_class[1] == pytest.approx(0.8)  # P=2/3, R=1
    assert per_class[2] == 0  # absent from truth and predictions: counted, as 0
    assert macro == pytest.approx((2 / 3 + 0.8 + 0) / 3)


def small_table():
    return FrameTable(
        videos=["a", "b"],
        patterns=["/a/{:05d}.jpg", "/b/{:05d}.jpg"],
        video=[0, 0, 0, 1, 1],
        frame=[1, 2, 3, 1, 2],
        label=[4, 4, 0, 5, 5],
        has_image=[True, False, True, True, True],
    )


def test_prediction_table_fills_frames_within_their_own_video():
    table = small_table()
    probs = np.zeros((5, 8), np.float32)
    probs[0, 4] = probs[2, 0] = probs[3, 5] = probs[4, 5] = 1
    known = table.has_image.copy()
    frame = prediction_table(table, probs, known)
    assert list(frame[schema.VIDEO]) == ["a", "a", "a", "b", "b"]
    assert frame[schema.FILLED].tolist() == [False, True, False, False, False]
    assert frame.loc[1, "Happiness"] == pytest.approx(0.5) and frame.loc[
        1, "Neutral"
    ] == pytest.approx(0.5)
    assert frame[schema.PRED].tolist()[2:] == [0, 5, 5]


def test_write_evaluation_outputs_open_in_pandas(tmp_path):
    table = small_table()
    probs = np.eye(8, dtype=np.float32)[[4, 4, 0, 5, 1]]
    metrics = write_evaluation(tmp_path, prediction_table(table, probs, np.ones(5, bool)))
    for name in [
        "metrics.json",
        "per_class.csv",
        "confusion.csv",
        "confusion.png",
        "predictions.parquet",
        "predictions.csv",
    ]:
        assert (tmp_path / name).stat().st_size > 0
    back = pd.read_parquet(tmp_path / "predictions.parquet")
    assert list(back[schema.PRED]) == [4, 4, 0, 5, 1]
    confusion = pd.read_csv(tmp_path / "confusion.csv", index_col=0)
    assert confusion.loc["Sadness", "Anger"] == 1
    assert metrics["macro_f1"] == pytest.approx(sklearn_macro_f1([4, 4, 0, 5, 5], [4, 4, 0, 5, 1]))


def test_submission_format(tmp_path):
    path = tmp_path / "sub.txt"
    write_submission(path, ["v1", "v1", "v2_left"], [1, 2, 10], [0, 7, 4])
    lines = path.read_text().splitlines()
    assert lines[0] == "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
    assert lines[0] == SUBMISSION_HEADER
    assert lines[1:] == ["v1/00001.jpg,0", "v1/00002.jpg,7", "v2_left/00010.jpg,4"]
    with pytest.raises(ValueError, match="not a class"):
        write_submission(path, ["v"], [1], [8])
    assert path.read_text().splitlines()[1] == "v1/00001.jpg,0"  # failed write left the file intact
