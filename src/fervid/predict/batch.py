"""Many inputs in one job: inputs expanded and shared out, resumable, one progress bar, a
summary table across inputs.

An input's outputs are complete once its ``<stem>.json`` exists (written last, atomically) and
lists outputs that exist, made with the same models and options (the predictor's ``run_key``):
a rerun of the same command skips such inputs, so a killed job continues where it stopped and
no output is ever half-written. ``fervid-job-summary.csv`` (and ``.parquet``) has a row per input:
file, duration, frames, faces, tracks, the dominant expression of each track, and the error, if
any (columns: fervid/schema.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from fervid import schema
from fervid.errors import FervidError
from fervid.predict.outputs import write_outputs
from fervid.predict.predictor import Prediction, Predictor
from fervid.runtime import dist
from fervid.runtime.io import atomic_path, atomic_write_text
from fervid.video.decode import StreamSource, expand_inputs

log = logging.getLogger("fervid")

SUMMARY = "fervid-job-summary"


def run_job(
    predictor: Predictor,
    inputs: list[str | Path],
    out: Path,
    annotate: bool = False,
    redo: bool = False,
    progress: bool = True,
    report: bool = False,
    on_row: Callable[[dict], None] | None = None,
) -> tuple[list[Prediction], list[str]]:
    """:func:`fervid.api.predict` once the predictor is built and ``out`` checked: expand the
    inputs (folders, lists of names) and refuse two with one name, share them out among
    torchrun's processes, predict each (:func:`predict_inputs`), then write the job summary.
    Returns (predictions made now, error messages of every process)."""
    paths, errors = unique_inputs(inputs)
    if not dist.is_main():
        errors = []  # every process found the same problems with the inputs; report them once
    share = paths[dist.rank() :: dist.world_size()]
    try:
        results, failed, skipped = predict_inputs(
            predictor, share, out, annotate, redo, progress and dist.is_main(), report, on_row
        )
    except KeyboardInterrupt:
        if dist.world_size() == 1:  # the inputs done so far, and the interrupted one, are listed
            write_summary(out, paths, {}, predictor.run_key)
        raise
    if skipped:
        log.info("%d inputs already done in %s (same model and options): skipped", skipped, out)
    failed = dict(dist.gather_lists(list(failed.items())))
    dist.barrier()  # every process's outputs are written
    if dist.is_main():
        write_summary(out, paths, failed, predictor.run_key)
    return results, dist.gather_lists(errors) + list(failed.values())


def unique_inputs(inputs: list[str | Path]) -> tuple[list[Path | StreamSource], list[str]]:
    """The files and streams of ``inputs`` (folders searched), and why any were left out: an
    input that cannot be read, or one whose name another input has (their outputs, named
    after it, would collide)."""
    errors, paths, seen = [], [], {}
    for item in inputs:
        try:
            paths.extend(expand_inputs([item]))
        except FervidError as error:
            errors.append(str(error))
    unique = []
    for path in paths:
        if path.stem in seen:
            errors.append(
                f"{path}: same name as {seen[path.stem]}; their outputs would collide, skipped"
            )
            continue
        seen[path.stem] = path
        unique.append(path)
    return unique, errors


def summary_path(out: Path, path: Path) -> Path:
    return out / f"{path.stem}.json"


def completed(out: Path, path: Path, run_key: dict) -> dict | None:
    """The summary of ``path``'s outputs in ``out`` if they are complete for ``run_key``."""
    try:
        summary = json.loads(summary_path(out, path).read_text())
    except (OSError, ValueError):
        return None
    if summary.get("file") != str(path) or summary.get("run_key") != run_key:
        return None
    if summary.get("interrupted"):  # stopped by Ctrl-C: what it holds is only a part
        return None
    if not all(Path(output).is_file() for output in summary.get("outputs", [])):
        return None
    return summary


def predict_inputs(
    predictor: Predictor,
    paths: list[Path],
    out: Path,
    annotate: bool = False,
    redo: bool = False,
    progress: bool = True,
    report: bool = False,
    on_row: Callable[[dict], None] | None = None,
) -> tuple[list[Prediction], dict[str, str], int]:
    """Predict each of ``paths`` into ``out``, skipping (unless ``redo``) files whose outputs
    are complete (a stream is always read). ``on_row`` gets each face's row as it is encoded,
    with its ``file``. An input stopped by Ctrl-C has its outputs written (marked interrupted),
    then KeyboardInterrupt ends the job. Returns (predictions made now, error message per
    failed input, skipped)."""
    results, errors, skipped = [], {}, 0
    for path in tqdm(paths, desc="predict", unit="input", disable=not progress):
        is_file = isinstance(path, Path)
        if is_file and not redo and completed(out, path, predictor.run_key) is not None:
            skipped += 1
            continue
        rows = (
            None if on_row is None else (lambda row, p=str(path): on_row({schema.FILE: p, **row}))
        )
        try:
            prediction = predictor.run(path, on_row=rows)
            write_outputs(prediction, out, annotate=annotate, report=report)
            results.append(prediction)
        except FervidError as error:
            errors[str(path)] = str(error)
            continue
        if prediction.summary["interrupted"]:
            raise KeyboardInterrupt
    return results, errors, skipped


def write_summary(out: Path, paths: list[Path], errors: dict[str, str], run_key: dict) -> Path:
    """``fervid-job-summary.csv`` / ``.parquet``: every input of the job, from its outputs."""
    rows = []
    for path in paths:
        summary = completed(out, path, run_key)
        row = dict.fromkeys(schema.JOB_SUMMARY_COLUMNS, None)
        row |= {schema.FILE: str(path), schema.ERROR: ""}
        if summary is not None:
            tracks = summary.get("tracks", [])
            row |= {
                schema.DURATION: summary.get("duration_s"),
                schema.FRAMES: summary.get("frames_decoded"),
                schema.FACES: summary.get("faces"),
                schema.TRACKS: len(tracks),
                schema.DOMINANT: "; ".join(f"{t['track']}: {t['dominant_label']}" for t in tracks),
            }
        else:
            row[schema.ERROR] = errors.get(str(path), "not done")
        rows.append(row)
    table = pd.DataFrame(rows, columns=schema.JOB_SUMMARY_COLUMNS)
    atomic_write_text(out / f"{SUMMARY}.csv", table.to_csv(index=False))
    with atomic_path(out / f"{SUMMARY}.parquet") as temporary:
        table.to_parquet(temporary, index=False)
    return out / f"{SUMMARY}.csv"
