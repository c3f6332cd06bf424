"""``fervid predict --report``: one self-contained HTML page per input.

The video (the annotated copy when there is one, else the input itself, linked by a relative
path; an image is shown as it is) beside a stacked per-track timeline of the 8 class
probabilities that follows playback (clicking a timeline seeks the video there), the dominant
expression of each track, and a button that downloads the per-frame table as CSV. Everything
the page needs is inside it: the page template and its script ship in the package
(``report.html``), the data is embedded as JSON; no network at view time.
"""

from __future__ import annotations

import html
import json
import os
import urllib.parse
from importlib import resources
from pathlib import Path

import numpy as np

from fervid import __version__, schema
from fervid.labels import CLASS_COLOURS, CLASS_NAMES
from fervid.predict.predictor import Prediction
from fervid.runtime.io import atomic_write_text
from fervid.video.decode import StreamSource, media_kind


def report_data(prediction: Prediction) -> dict:
    """What the page shows: per track its times, frames, probabilities and predicted classes,
    and the columns of the table its download button writes."""
    table, summary = prediction.table, prediction.summary
    tracks = []
    for info in summary.get("tracks", []):
        rows = table[table[schema.TRACK] == info["track"]]
        tracks.append(
            {
                "track": int(info["track"]),
                "frames": int(info["frames"]),
                "dominant": info["dominant_label"],
                "share": float(info["dominant_share"]),
                "time": np.round(rows[schema.TIME].to_numpy(np.float64), 4).tolist(),
                "frame": rows[schema.FRAME].astype(int).tolist(),
                "probs": np.round(rows[schema.PROB_COLUMNS].to_numpy(np.float64), 4).tolist(),
                "predicted": rows[schema.PRED_NAME].astype(str).tolist(),
            }
        )
    times = table[schema.TIME] if len(table) else [0.0]
    duration = max(float(summary.get("duration_s") or 0.0), float(np.max(times)))
    about = (
        f"{summary.get('frames_decoded', 0)} frames, {duration:.1f} s, {len(tracks)} tracks, "
        f"model {summary.get('model', {}).get('path', '?')} (fervid {__version__})"
    )
    return {
        "stem": prediction.path.stem,
        "classes": list(CLASS_NAMES),
        "colours": list(CLASS_COLOURS),
        "duration": duration,
        "about": about,
        "tracks": tracks,
        "columns": [
            schema.TRACK,
            schema.FRAME,
            schema.TIME,
            *schema.PROB_COLUMNS,
            schema.PRED_NAME,
        ],
    }


def media_element(media: Path | StreamSource, page: Path) -> str:
    """The page's ``<video>`` (or ``<img>``), linking ``media`` relative to the page; a stream
    is linked by its URL when a browser can open it (http), else named."""
    if isinstance(media, StreamSource):
        if media.url.startswith(("http://", "https://")):
            return f'<video src="{html.escape(media.url)}" controls preload="metadata"></video>'
        return f"<p>live input {html.escape(media.url)}: no video to show</p>"
    relative = os.path.relpath(media.resolve(), page.parent.resolve())
    source = urllib.parse.quote(Path(relative).as_posix())
    if media_kind(media) == "image":
        return f'<img src="{source}" alt="{html.escape(media.name)}">'
    return f'<video src="{source}" controls preload="metadata"></video>'


def write_report(prediction: Prediction, page: Path, media: Path | StreamSource) -> Path:
    """The report page of ``prediction`` at ``page``, showing ``media`` (written atomically)."""
    template = resources.files("fervid.predict").joinpath("report.html").read_text("utf-8")
    data = json.dumps(report_data(prediction), separators=(",", ":")).replace("</", "<\\/")
    text = (
        template.replace("__TITLE__", html.escape(prediction.path.name))
        .replace("__MEDIA__", media_element(media, page))
        .replace("__DATA__", data)
    )
    atomic_write_text(page, text)
    return page
