"""The JSON summary of one input (``<stem>.json`` beside its tables; ``fervid predict`` prints
from it and the job summary is made from it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fervid import schema
from fervid.predict.options import PredictOptions
from fervid.video.decode import DecodeReport, StreamSource


def summarise(
    path: Path | StreamSource,
    table: pd.DataFrame,
    report: DecodeReport,
    options: PredictOptions,
    timings: dict,
    seconds: float,
) -> dict:
    """The JSON summary of one input's prediction: what was decoded, per track its frames,
    times and dominant expression (the most frequent predicted class), the timings and the
    options. ``frames_per_second`` is source frames covered per second of ``seconds``."""
    # frames_decoded counts every source frame decoded, the ones ``every`` skips included
    # (DecodeReport): the rate of source frames covered per second, not of frames processed
    frames = report.frames_decoded
    tracks = []
    for track, rows in table.groupby(schema.TRACK, sort=True):
        counts = rows[schema.PRED_NAME].value_counts()
        tracks.append(
            {
                "track": int(track),
                "frames": int(len(rows)),
                "detected_frames": int(rows[schema.DETECTED].sum()),
                "first_time": float(rows[schema.TIME].min()),
                "last_time": float(rows[schema.TIME].max()),
                "dominant_label": str(counts.idxmax()),
                "dominant_share": float(counts.max() / len(rows)),
                "label_counts": {str(k): int(v) for k, v in counts.items() if v},
            }
        )
    return {
        "file": str(path),
        "frames_decoded": frames,
        "frames_expected": report.frames_expected,
        "duration_s": frames / report.fps if report.fps else 0.0,
        "decode_complete": report.complete,
        "faces": int(table[schema.DETECTED].sum()) if len(table) else 0,
        "tracks": tracks,
        "seconds": seconds,
        "frames_per_second": frames / seconds if seconds else None,
        "timings": timings,
        "options": {k: getattr(options, k) for k in options.__dataclass_fields__},
    }
