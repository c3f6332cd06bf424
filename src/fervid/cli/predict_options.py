"""The arguments of ``fervid predict``: what to read and where to write (the job's), and one
flag per field of :class:`~fervid.predict.options.PredictOptions`, made from the field
(fervid/cli/dataclass_flags.py: its annotation the check, its docstring the help), so that the
flags and the Python API cannot accept or describe different values."""

from __future__ import annotations

import argparse

from fervid.cli.dataclass_flags import add_dataclass_flags
from fervid.predict.options import PredictOptions

PYTHON_ONLY = ("min_score", "batch_size", "min_track_frames", "threads")
"""PredictOptions fields with no flag (tuning a caller sets in Python)."""


def add_predict_arguments(predict: argparse.ArgumentParser) -> None:
    predict.add_argument(
        "inputs",
        nargs="*",
        help="videos, images or folders of them; - (standard input), a URL (http://, rtsp://) "
        "or a camera (/dev/video0)",
    )
    predict.add_argument(
        "--inputs-from",
        metavar="LIST",
        help="a text file with one input (video, image or folder) per line, added to INPUTS",
    )
    predict.add_argument(
        "--model",
        action="append",
        help="model file or installed name (default: the installed real-face model); repeat it "
        "for an ensemble (probabilities averaged)",
    )
    predict.add_argument(
        "--out", default="fervid-predictions", help="output folder (default: fervid-predictions)"
    )
    predict.add_argument(
        "--redo",
        action="store_true",
        help="predict inputs again whose outputs in --out are complete (default: skip them, so "
        "a killed job continues where it stopped)",
    )
    predict.add_argument(
        "--annotate",
        action="store_true",
        help="also write an mp4 with each face's box and expression drawn",
    )
    predict.add_argument(
        "--report",
        action="store_true",
        help="also write <input>_report.html: the video beside a per-track timeline that follows "
        "playback (click to seek), dominant expressions, the table to download; works offline",
    )
    options = predict.add_argument_group("options (fervid.predict.PredictOptions)")
    add_dataclass_flags(options, PredictOptions, skip=PYTHON_ONLY)


def predict_options(args: argparse.Namespace) -> PredictOptions:
    """The PredictOptions the parsed flags ask for."""
    names = [name for name in PredictOptions.__dataclass_fields__ if name not in PYTHON_ONLY]
    return PredictOptions(**{name: getattr(args, name) for name in names})
