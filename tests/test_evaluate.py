import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import f1_score

from fervid import evaluate, schema
from fervid.data.table import FrameTable
from fervid.errors import DataError
from fervid.evaluate import (
    SUBMISSION_HEADER,
    confusion_matrix,
    f1_scores,
    macro_f1,
    plot_confusion,
    prediction_table,
    score,
    write_evaluation,
    write_submission,
)
from fervid.labels import CLASS_NAMES
from tests.helpers import REPO

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


# --- issue 17: tests that pin the method's claims (docs/testing.md) ----------------------------


def test_confusion_rows_are_the_truth_and_columns_the_predictions():
    confusion = confusion_matrix([0, 0, 1, 2], [1, 1, 1, 0], num_classes=3)
    assert confusion.tolist() == [[0, 2, 0], [0, 1, 0], [1, 0, 0]]
    assert confusion_matrix([7], [0]).shape == (8, 8)  # the 8 ABAW classes by default


def test_confusion_accepts_labels_given_as_floats():
    """e.g. labels read back from a CSV column with a missing value elsewhere"""
    confusion = confusion_matrix(np.array([0.0, 1.0]), np.array([1.0, 1.0]), num_classes=2)
    assert confusion.tolist() == [[0, 1], [0, 1]]


def test_macro_f1_averages_over_the_number_of_classes_it_is_given():
    # per class (by hand): class 0 P=1 R=1/2 -> 2/3; class 1 P=2/3 R=1 -> 0.8; class 2: 0
    assert macro_f1([0, 0, 1, 1], [0, 1, 1, 1], num_classes=3) == pytest.approx((2 / 3 + 0.8) / 3)
    assert macro_f1([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx((2 / 3 + 0.8) / 8)


def test_absent_classes_score_exactly_zero_without_warnings_whatever_memory_held():
    confusion = np.zeros((8, 8), dtype=np.int64)
    confusion[0, 0] = 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for count in range(1, 16):
            junk = [np.full(8, 7.5) for _ in range(count)]  # freed memory that is not zero
            del junk
            macro, per_class = f1_scores(confusion)
            assert per_class.tolist() == [1.0] + [0.0] * 7
            assert macro == 1 / 8


def predictions_frame(labels, preds, filled=None):
    n = len(labels)
    return pd.DataFrame(
        {
            schema.LABEL: np.array(labels, dtype=np.int16),
            schema.PRED: np.array(preds, dtype=np.int16),
            schema.FILLED: np.zeros(n, bool) if filled is None else np.array(filled),
        }
    )


def test_score_counts_neutral_frames_and_ignores_unannotated_ones():
    frame = predictions_frame([0, 0, -1, 4, -1], [0, 4, 4, 4, 0], filled=[1, 0, 1, 1, 0])
    metrics = score(frame)
    # annotated: (0 -> 0), (0 -> 4), (4 -> 4); class 0: P=1, R=1/2 -> 2/3; class 4: P=1/2, R=1
    # -> 2/3; the six other classes 0
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 8)
    assert list(metrics["per_class_f1"]) == list(CLASS_NAMES)
    assert metrics["per_class_f1"]["Neutral"] == pytest.approx(2 / 3)
    assert metrics["per_class_f1"]["Happiness"] == pytest.approx(2 / 3)
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["frames"] == 3
    assert metrics["frames_filled"] == 2  # rows 0 and 3; row 2 is not annotated
    assert metrics["confusion"][0][0] == 1 and metrics["confusion"][0][4] == 1
    assert set(metrics) == {
        "macro_f1",
        "per_class_f1",
        "accuracy",
        "frames",
        "frames_filled",
        "confusion",
    }


def test_score_of_a_single_annotated_frame():
    metrics = score(predictions_frame([5, -1], [5, 0]))
    assert metrics["accuracy"] == 1.0 and metrics["frames"] == 1
    assert metrics["macro_f1"] == pytest.approx(1 / 8)


def test_prediction_table_columns_and_types():
    table = small_table()
    probs = np.eye(8, dtype=np.float64)[[4, 4, 0, 5, 1]]
    known = [1, 0, 1, 1, 1]  # given as integers, not booleans
    frame = prediction_table(table, probs, known)
    assert frame[schema.FILLED].dtype == bool
    assert frame[schema.FILLED].tolist() == [False, True, False, False, False]
    assert frame[schema.HAS_IMAGE].tolist() == [True, False, True, True, True]
    assert frame[schema.FRAME].tolist() == [1, 2, 3, 1, 2]
    assert frame[schema.LABEL].tolist() == [4, 4, 0, 5, 5]
    assert np.issubdtype(frame[schema.LABEL].dtype, np.integer)
    assert np.issubdtype(frame[schema.PRED].dtype, np.integer)
    # row 1 (no image): the mean of rows 0 (Happiness) and 2 (Neutral), a tie -> the lower index
    assert frame[schema.PRED].tolist() == [4, 0, 0, 5, 1]
    names = ["Happiness", "Neutral", "Neutral", "Sadness", "Anger"]
    assert frame[schema.PRED_NAME].tolist() == names
    assert isinstance(frame[schema.VIDEO].dtype, pd.CategoricalDtype)
    assert list(frame.columns[-8:]) == list(CLASS_NAMES)
    assert all(frame[name].dtype == np.float32 for name in CLASS_NAMES)
    assert frame.loc[1, "Happiness"] == pytest.approx(0.5)


def test_prediction_table_names_rows_by_video_even_when_names_repeat():
    table = FrameTable(
        videos=["img", "img"],  # two still-image sources with the same name
        patterns=["/a/{:05d}.jpg", "/b/{:05d}.jpg"],
        video=[0, 1],
        frame=[0, 0],
        label=[1, 2],
        has_image=[True, True],
    )
    frame = prediction_table(table, np.eye(8, dtype=np.float32)[[1, 2]], np.ones(2, bool))
    assert frame[schema.VIDEO].tolist() == ["img", "img"]
    assert frame[schema.PRED].tolist() == [1, 2]


def test_write_evaluation_files_by_hand(tmp_path, monkeypatch):
    titles = []
    monkeypatch.setattr(evaluate, "plot_confusion", lambda c, path, title: titles.append(title))
    table = small_table()  # labels 4, 4, 0, 5, 5
    probs = np.eye(8, dtype=np.float32)[[4, 0, 0, 5, 1]]
    predictions = prediction_table(table, probs, np.ones(5, bool))
    predictions.index = [10, 11, 12, 13, 14]  # e.g. a selection of a larger table
    out = tmp_path / "nested" / "run" / "evaluation"
    metrics = write_evaluation(out, predictions)
    # per class: Neutral P=1/2 R=1 -> 2/3; Happiness P=1 R=1/2 -> 2/3; Sadness P=1 R=1/2
    # -> 2/3; Anger P=0 -> 0
    assert metrics["macro_f1"] == pytest.approx(3 * (2 / 3) / 8)
    assert titles == [f"macro F1 {3 * (2 / 3) / 8:.3f}"]
    text = (out / "metrics.json").read_text()
    assert json.loads(text) == metrics
    assert text.startswith('{\n  "macro_f1": ')  # indented for reading
    per_class = pd.read_csv(out / "per_class.csv")
    assert list(per_class.columns) == ["class", "f1", "support", "predicted"]
    assert per_class["class"].tolist() == list(CLASS_NAMES)
    assert per_class["support"].tolist() == [1, 0, 0, 0, 2, 2, 0, 0]  # true frames per class
    assert per_class["predicted"].tolist() == [2, 1, 0, 0, 1, 1, 0, 0]
    assert per_class["f1"].tolist() == pytest.approx([2 / 3, 0, 0, 0, 2 / 3, 2 / 3, 0, 0])
    back = pd.read_parquet(out / "predictions.parquet")
    assert list(back.columns) == list(predictions.columns)
    assert back.index.tolist() == [0, 1, 2, 3, 4]  # the frame's index is not stored
    csv = pd.read_csv(out / "predictions.csv")
    assert list(csv.columns) == list(predictions.columns)
    write_evaluation(out, predictions, title="run 7")
    assert titles[-1] == "run 7"


def test_confusion_plot_shows_row_normalised_values_and_counts(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    close = plt.close

    def keep(figure=None):
        figures.append(figure)
        close(figure)

    monkeypatch.setattr(plt, "close", keep)
    confusion = np.zeros((8, 8), dtype=np.int64)
    confusion[0, 0], confusion[0, 1] = 3, 1  # Neutral: 3/4 right, 1/4 called Anger
    confusion[1, 1] = 1  # Anger: 1/1
    confusion[2, 0] = confusion[2, 2] = 1  # Disgust: half and half
    path = tmp_path / "confusion.png"
    plot_confusion(confusion, path, "the title")
    (figure,) = figures
    assert figure is not None
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (770, 660)  # 7 x 6 inches at 110 dpi
    axes = figure.axes[0]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in axes.texts}
    assert len(texts) == 64
    assert texts[(0, 0)].get_text() == "0.75\n3" and texts[(0, 1)].get_text() == "0.25\n1"
    assert texts[(1, 1)].get_text() == "1.00\n1" and texts[(2, 0)].get_text() == "0.50\n1"
    assert texts[(7, 7)].get_text() == "0.00\n0"  # an empty row stays 0, not NaN
    # white on the dark cells (> 0.5), black elsewhere, 0.5 included
    assert texts[(0, 0)].get_color() == "white" and texts[(1, 1)].get_color() == "white"
    assert texts[(2, 0)].get_color() == "black" and texts[(0, 1)].get_color() == "black"
    assert all(t.get_fontsize() == 7 for t in axes.texts)
    assert all(t.get_ha() == "center" and t.get_va() == "center" for t in axes.texts)
    (image,) = axes.images
    assert image.get_cmap().name == "Blues" and image.get_clim() == (0, 1)
    np.testing.assert_allclose(image.get_array()[0, :2], [0.75, 0.25])
    xticks = axes.get_xticklabels()
    assert [t.get_text() for t in xticks] == list(CLASS_NAMES)
    assert all(t.get_rotation() == 45 and t.get_ha() == "right" for t in xticks)
    assert [t.get_text() for t in axes.get_yticklabels()] == list(CLASS_NAMES)
    assert axes.get_xlabel() == "predicted"
    assert axes.get_ylabel() == "true (row-normalised; count below)"
    assert axes.get_title() == "the title"
    assert tuple(figure.get_size_inches()) == (7, 6)


def test_submission_labels_must_be_class_indices_and_lengths_must_agree(tmp_path):
    path = tmp_path / "sub.txt"
    with pytest.raises(ValueError, match="^submission label -1 for v/1 is not a class index$"):
        write_submission(path, ["v"], [1], [-1])
    with pytest.raises(ValueError):
        write_submission(path, ["v", "v"], [1, 2], [0])  # a prediction missing
    with pytest.raises(ValueError):
        write_submission(path, ["v"], [1, 2], [0, 0])
    assert not path.exists()
    write_submission(path, ["v"], [1], [7])
    assert path.read_text() == SUBMISSION_HEADER + "\nv/00001.jpg,7\n"


def expected_frames():
    return FrameTable(
        videos=["a", "b"],
        patterns=["/a/{:05d}.jpg", "/b/{:05d}.jpg"],
        video=[0, 0, 1],
        frame=[1, 2, 1],
        label=[-1, -1, -1],
        has_image=[True, True, True],
    )


def test_complete_submission_is_written_in_any_row_order(tmp_path):
    path = tmp_path / "sub.csv"
    write_submission(path, ["b", "a", "a"], [1, 2, 1], [3, 2, 1], expected=expected_frames())
    assert path.read_text().splitlines()[1:] == ["b/00001.jpg,3", "a/00002.jpg,2", "a/00001.jpg,1"]


def test_incomplete_submission_names_the_file_and_every_problem(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text("earlier\n")
    # a/00002 missing, a/00001 twice, c/00001 not asked for, b/00001 missing
    with pytest.raises(DataError) as raised:
        write_submission(path, ["a", "a", "c"], [1, 1, 1], [0, 0, 0], expected=expected_frames())
    message = (
        f"{path}: incomplete submission, not written: 2 frames missing (first: a/00002.jpg); "
        "1 frames twice (first: a/00001.jpg); 1 frames not asked for (first: c/00001.jpg)"
    )
    assert str(raised.value) == message
    assert raised.value.path == str(path)
    assert path.read_text() == "earlier\n"
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}: incomplete submission, "):
        write_submission(path, ["a", "b"], [1, 1], [0, 0], expected=expected_frames())


def test_confusion_plot_colour_scale_is_zero_to_one_whatever_the_values(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda figure=None: (figures.append(figure), close(figure)))
    confusion = np.ones((8, 8), dtype=np.int64) + np.eye(8, dtype=np.int64)  # 1/9 .. 2/9
    plot_confusion(confusion, tmp_path / "confusion.png", "t")
    (image,) = figures[0].axes[0].images
    assert image.get_clim() == (0, 1)  # not the data range (1/9, 2/9)


def test_every_column_fervid_writes_is_in_the_one_table_of_docs_data_md():

    docs = (REPO / "docs" / "data.md").read_text()
    section = docs.split("## Columns of the tables fervid writes")[1].split("\n## ")[0]
    first_cells = re.findall(r"^\| (.+?) \|", section, re.MULTILINE)
    documented = {name for cell in first_cells for name in re.findall(r"`([^`]+)`", cell)}
    written = {v for k, v in vars(schema).items() if k.isupper() and isinstance(v, str)}
    written |= {*schema.BOX_COLUMNS, *schema.LANDMARK_COLUMNS, *schema.PREDICT_COLUMNS}
    written -= set(schema.PROB_COLUMNS)  # one row for the 8 classes: `Neutral` ... `Other`
    assert written <= documented, sorted(written - documented)
    assert {schema.PROB_COLUMNS[0], schema.PROB_COLUMNS[-1]} <= documented
