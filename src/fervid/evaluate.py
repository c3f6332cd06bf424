"""ABAW EXPR evaluation: macro F1 over all annotated frames of a split pooled together,
per-class F1, confusion matrix, per-frame predictions, and the submission writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fervid import schema
from fervid.data.sequences import fill_from_neighbours
from fervid.data.table import FrameTable
from fervid.errors import DataError
from fervid.labels import CLASS_NAMES, NUM_CLASSES
from fervid.runtime.io import atomic_path, atomic_write_text


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES):
    """Rows: true class, columns: predicted class."""
    index = np.asarray(y_true, dtype=np.int64) * num_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def f1_scores(confusion: np.ndarray) -> tuple[float, np.ndarray]:
    """(macro F1, per-class F1) from a confusion matrix, as the ABAW challenge computes them:
    the mean runs over all classes of the matrix (the 8 ABAW classes), and a class with no
    true positive (including one absent from both the truth and the predictions) scores 0.
    Equal to scikit-learn's ``f1_score(average="macro", labels=range(8), zero_division=0)``.
    """
    true_positive = np.diag(confusion).astype(np.float64)
    denominator = confusion.sum(axis=0) + confusion.sum(axis=1)
    per_class = np.divide(
        2 * true_positive, denominator, out=np.zeros(len(confusion)), where=denominator > 0
    )
    return float(per_class.mean()), per_class


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> float:
    return f1_scores(confusion_matrix(y_true, y_pred, num_classes))[0]


def prediction_table(table: FrameTable, probs: np.ndarray, known: np.ndarray) -> pd.DataFrame:
    """Per-frame predictions for every row of ``table``.

    ``probs`` (rows x classes) holds the model's probabilities where ``known`` is true (frames
    whose image was read); the other rows are filled from neighbouring frames of their video.
    """
    probs = np.asarray(probs, dtype=np.float32)
    known = np.asarray(known, dtype=bool)
    filled = probs.copy()
    for _, rows in table.video_slices():
        filled[rows] = fill_from_neighbours(table.frame[rows], probs[rows], known[rows])
    pred = filled.argmax(axis=1)
    frame = pd.DataFrame(
        {
            schema.VIDEO: pd.Categorical.from_codes(table.video, categories=table.videos)
            if len(set(table.videos)) == len(table.videos)
            else [table.videos[v] for v in table.video],
            schema.FRAME: table.frame,
            schema.LABEL: table.label.astype(np.int16),
            schema.HAS_IMAGE: table.has_image,
            schema.FILLED: ~known,
            schema.PRED: pred.astype(np.int16),
            schema.PRED_NAME: pd.Categorical.from_codes(pred, categories=list(CLASS_NAMES)),
        }
    )
    for k, column in enumerate(schema.PROB_COLUMNS):
        frame[column] = filled[:, k]
    return frame


def score(predictions: pd.DataFrame) -> dict:
    """Macro F1, per-class F1 and confusion over the annotated rows (label >= 0)."""
    annotated = predictions[predictions[schema.LABEL] >= 0]
    confusion = confusion_matrix(
        annotated[schema.LABEL].to_numpy(), annotated[schema.PRED].to_numpy()
    )
    macro, per_class = f1_scores(confusion)
    return {
        "macro_f1": macro,
        "per_class_f1": {name: float(f) for name, f in zip(CLASS_NAMES, per_class, strict=True)},
        "accuracy": float(np.trace(confusion) / max(confusion.sum(), 1)),
        "frames": int(len(annotated)),
        "frames_filled": int(annotated[schema.FILLED].sum()),
        "confusion": confusion.tolist(),
    }


def write_evaluation(out_dir: str | Path, predictions: pd.DataFrame, title: str = "") -> dict:
    """Score predictions and write metrics.json, per_class.csv, confusion.csv/.png and the
    per-frame predictions (Parquet and CSV) into ``out_dir``. Returns the metrics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = score(predictions)
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    confusion = np.array(metrics["confusion"])
    per_class = pd.DataFrame(
        {
            schema.CLASS: list(CLASS_NAMES),
            schema.F1: [metrics["per_class_f1"][n] for n in CLASS_NAMES],
            schema.SUPPORT: confusion.sum(axis=1),
            schema.PREDICTED: confusion.sum(axis=0),
        }
    )
    atomic_write_text(out_dir / "per_class.csv", per_class.to_csv(index=False))
    atomic_write_text(
        out_dir / "confusion.csv",
        pd.DataFrame(confusion, index=list(CLASS_NAMES), columns=list(CLASS_NAMES)).to_csv(),
    )
    plot_confusion(
        confusion, out_dir / "confusion.png", title or f"macro F1 {metrics['macro_f1']:.3f}"
    )
    with atomic_path(out_dir / "predictions.parquet") as temporary:
        predictions.to_parquet(temporary, index=False)
    atomic_write_text(out_dir / "predictions.csv", predictions.to_csv(index=False))
    return metrics


def plot_confusion(confusion: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row_sums = confusion.sum(axis=1, keepdims=True)
    normalised = confusion / np.maximum(row_sums, 1)
    figure, axes = plt.subplots(figsize=(7, 6))
    axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(confusion)):
        for j in range(len(confusion)):
            colour = "white" if normalised[i, j] > 0.5 else "black"
            axes.text(
                j,
                i,
                f"{normalised[i, j]:.2f}\n{confusion[i, j]}",
                ha="center",
                va="center",
                fontsize=7,
                color=colour,
            )
    axes.set_xticks(range(NUM_CLASSES), CLASS_NAMES, rotation=45, ha="right")
    axes.set_yticks(range(NUM_CLASSES), CLASS_NAMES)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true (row-normalised; count below)")
    axes.set_title(title)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    plt.close(figure)


SUBMISSION_HEADER = ",".join([schema.IMAGE_LOCATION, *CLASS_NAMES])


def write_submission(
    path: str | Path, videos, frames, preds, expected: FrameTable | None = None
) -> None:
    """The official ABAW EXPR submission: header, then ``<video>/<NNNNN>.jpg,<label>`` per frame,
    written atomically. With ``expected`` (the frames the challenge asks for), the rows must be
    exactly those frames, each once; otherwise nothing is written (DataError)."""
    lines = [SUBMISSION_HEADER]
    for video, frame, pred in zip(videos, frames, preds, strict=True):
        label = int(pred)
        if not 0 <= label < NUM_CLASSES:
            raise ValueError(f"submission label {label} for {video}/{frame} is not a class index")
        lines.append(f"{video}/{int(frame):05d}.jpg,{label}")
    if expected is not None:
        check_complete(path, [line.split(",", 1)[0] for line in lines[1:]], expected)
    atomic_write_text(path, "\n".join(lines) + "\n")


def check_complete(path: str | Path, locations: list[str], expected: FrameTable) -> None:
    """DataError (naming ``path``) unless ``locations`` (``<video>/<NNNNN>.jpg``) holds every
    frame of ``expected`` exactly once and nothing else."""
    wanted = {
        f"{expected.videos[video]}/{int(frame):05d}.jpg"
        for video, frame in zip(expected.video, expected.frame, strict=True)
    }
    seen: set[str] = set()
    twice = {location for location in locations if location in seen or seen.add(location)}
    missing, extra = wanted - seen, seen - wanted
    if twice or missing or extra:
        problems = [
            f"{len(group)} {what} (first: {sorted(group)[0]})"
            for group, what in (
                (missing, "frames missing"),
                (twice, "frames twice"),
                (extra, "frames not asked for"),
            )
            if group
        ]
        raise DataError(path, "incomplete submission, not written: " + "; ".join(problems))
