"""What ``fervid predict`` writes per input: the per-frame table (CSV + Parquet), a JSON summary,
a timeline plot per track and, on request, an annotated copy of the video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fervid import schema
from fervid.errors import DataError
from fervid.labels import CLASS_COLOURS, CLASS_NAMES
from fervid.predict.predictor import Prediction
from fervid.predict.report import write_report
from fervid.runtime.io import atomic_path, atomic_write_text
from fervid.video.annotate import AnnotatedVideoWriter, FaceLabel
from fervid.video.decode import probe, read_frames


def write_outputs(
    prediction: Prediction, out_dir: str | Path, annotate: bool = False, report: bool = False
) -> list[Path]:
    """Per input: ``<stem>.csv`` / ``.parquet`` (per-frame table), a timeline PNG per track,
    with ``annotate`` ``<stem>_annotated.mp4``, with ``report`` ``<stem>_report.html``, and
    last ``<stem>.json`` (the summary, listing every output: written last, so its presence
    means the rest is whole)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = prediction.path.stem
    table = prediction.table
    written = [out_dir / f"{stem}.csv", out_dir / f"{stem}.parquet", out_dir / f"{stem}.json"]
    atomic_write_text(written[0], table.to_csv(index=False))
    with atomic_path(written[1]) as temporary:
        table.to_parquet(temporary, index=False)
    for track, rows in table.groupby(schema.TRACK, sort=True):
        if len(rows) > 1:
            written.append(
                plot_timeline(
                    rows,
                    out_dir / f"{stem}_track{int(track)}_timeline.png",
                    f"{prediction.path.name}, track {int(track)}",
                )
            )
    annotated = None
    is_file = isinstance(prediction.path, Path)  # a stream cannot be read a second time
    if annotate and is_file and len(table) and probe(prediction.path).kind == "video":
        annotated = annotate_video(prediction.path, table, out_dir / f"{stem}_annotated.mp4")
        written.append(annotated)
    if report:
        page = out_dir / f"{stem}_report.html"
        written.append(write_report(prediction, page, annotated or prediction.path))
    prediction.summary["outputs"] = [str(p) for p in written]
    atomic_write_text(written[2], json.dumps(prediction.summary, indent=2, default=str))
    return written


def read_table(path: str | Path) -> pd.DataFrame:
    """A per-frame table ``fervid predict`` wrote (``<stem>.csv`` or ``.parquet``), whichever
    fervid wrote it: tables from before ``pred_name`` had its name hold the predicted class
    name as ``label`` (a name that now means the true class only), renamed here."""
    path = Path(path)
    table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    old = schema.OLD_PREDICT_PRED_NAME
    if schema.PRED_NAME not in table.columns and old in table.columns:
        table = table.rename(columns={old: schema.PRED_NAME})
    missing = [column for column in schema.PREDICT_COLUMNS if column not in table.columns]
    if missing:
        raise DataError(path, f"not a fervid predict table (no column {missing[0]!r})")
    return table


def plot_timeline(rows: pd.DataFrame, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    time = rows[schema.TIME].to_numpy()
    probs = rows[schema.PROB_COLUMNS].to_numpy()
    figure, (top, strip) = plt.subplots(
        2, 1, figsize=(11, 4), sharex=True, gridspec_kw={"height_ratios": [5, 1]}
    )
    top.stackplot(time, probs.T, labels=CLASS_NAMES, colors=CLASS_COLOURS, alpha=0.9)
    top.set_ylim(0, 1)
    top.set_ylabel("probability")
    top.set_title(title)
    top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    predicted = probs.argmax(axis=1)
    strip.scatter(
        time, np.zeros_like(time), c=[CLASS_COLOURS[k] for k in predicted], marker="|", s=400
    )
    strip.set_yticks([])
    strip.set_xlabel("time (s)")
    strip.set_ylabel("predicted", rotation=0, ha="right")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
    return path


def annotate_video(video: Path, table: pd.DataFrame, out: Path) -> Path:
    """A copy of ``video`` with each face's box, track and predicted class drawn (a second
    decoding pass, streamed)."""
    boxes = table[table[schema.DETECTED]]
    by_frame = {frame: group for frame, group in boxes.groupby(schema.FRAME, sort=False)}
    partial = out.with_name(f".{out.stem}.partial.mp4")  # the muxer picks the format by suffix
    try:
        with AnnotatedVideoWriter(partial, probe(video).fps) as writer:
            for frame in read_frames(video):
                rows = by_frame.get(frame.index + 1)
                faces = []
                if rows is not None:
                    for row in rows.to_dict("records"):
                        name = str(row[schema.PRED_NAME])
                        box = tuple(row[column] for column in schema.BOX_COLUMNS)
                        faces.append(FaceLabel(box, name, float(row[name]), int(row[schema.TRACK])))
                writer.write(frame.image, faces)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return out
