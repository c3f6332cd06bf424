"""Prediction in the Python API: per-frame expressions of every face in videos and images
(``fervid predict``), and reading the tables it writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fervid.api.data import check_output_folder
from fervid.predict.options import PredictOptions

if TYPE_CHECKING:
    import pandas as pd


def predict(
    inputs: list[str | Path],
    model: str | Path | list[str | Path] | None,
    out: str | Path,
    annotate: bool = False,
    options: PredictOptions | None = None,
    redo: bool = False,
    progress: bool = True,
    report: bool = False,
    on_row: Callable[[dict], None] | None = None,
) -> tuple[list, list[str]]:
    """Predict every input (videos, images, folders of them; ``-``, URLs and cameras are
    streams) into ``out`` with ``model`` (None: the installed real-face model; a list: an
    ensemble, probabilities averaged), as ``options`` say (:class:`PredictOptions`: frame step,
    detector, device, ...; checked when built).

    Per input: ``<stem>.csv`` / ``.parquet`` (one row per face and frame, columns in
    fervid/schema.py), ``<stem>.json`` (summary), timeline plots, with ``annotate`` an annotated
    video, with ``report`` an HTML page (:mod:`fervid.predict.report`); at the end
    ``out/fervid-job-summary.csv`` lists every input. Resumable: an input whose outputs in
    ``out`` are complete for this model and options is skipped (``redo`` predicts it again). An
    input that fails is reported and skipped; the others complete. ``on_row``: each face's row
    as it is encoded (live input, ``options.live``); Ctrl-C stops the job with the outputs so
    far. Returns (predictions made now, error messages).

    Under torchrun each process predicts every world_size()-th input and writes that input's
    outputs; the error messages of all processes are returned on every process."""
    from fervid.predict.batch import run_job
    from fervid.predict.predictor import Predictor
    from fervid.runtime.dist import init_from_environment

    init_from_environment()
    out = check_output_folder(out)
    predictor = Predictor(model, options)
    return run_job(predictor, inputs, out, annotate, redo, progress, report, on_row)


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A per-frame table :func:`predict` wrote (``<stem>.csv`` or ``.parquet``), columns as
    fervid/schema.py names them whichever fervid version wrote it (older tables called
    ``pred_name`` ``label``)."""
    from fervid.predict.outputs import read_table

    return read_table(path)
