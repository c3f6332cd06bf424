"""Baselines beside the Temporal Encoder, computed from a feature store without the encoder.

- frame model alone: the softmax of the logits the store holds for every frame with a face;
- moving average: a centred moving average of those probabilities over ``w`` rows (frames) of a
  video, frames with no face left out of each average (HSEmotion's ABAW6 baseline).

The window ``w`` is chosen on the validation split, as the ABAW baselines do: the smoothed
validation score is therefore tuned on the split it is reported on (slightly optimistic). On a
test split pass the window chosen on validation instead of choosing again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fervid import schema
from fervid.data.sequences import moving_average
from fervid.data.table import FrameTable
from fervid.evaluate import prediction_table, score, write_evaluation
from fervid.labels import CLASS_NAMES
from fervid.models.temporal import TemporalEncoder, load_temporal_model, predict_windows
from fervid.runtime.dist import all_reduce_sum_, rank, world_size
from fervid.runtime.io import atomic_write_text
from fervid.runtime.training import pick_device
from fervid.stage2.store import FeatureStore

log = logging.getLogger("fervid")

DEFAULT_WINDOWS = (1, 5, 11, 21, 41, 61, 101)


def moving_average_per_video(
    table: FrameTable, probs: np.ndarray, known: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fervid.data.sequences.moving_average` over each video of ``table`` on its own
    (windows never reach into the next video): the averages and which rows got one."""
    out = np.zeros_like(probs, dtype=np.float32)
    has_value = np.zeros(len(probs), dtype=bool)
    for _, rows in table.video_slices():
        out[rows], has_value[rows] = moving_average(probs[rows], window, known[rows])
    return out, has_value


def choose_window(
    table: FrameTable, probs: np.ndarray, known: np.ndarray, windows=DEFAULT_WINDOWS
) -> tuple[int, dict[int, float]]:
    """The moving-average window with the best macro F1 on this (validation) split, and the
    macro F1 of every window tried."""
    scores = {
        int(w): score(
            prediction_table(table, *moving_average_per_video(table, probs, known, int(w)))
        )["macro_f1"]
        for w in windows
    }
    best = max(scores, key=lambda w: (scores[w], -w))
    return best, scores


def temporal_probabilities(
    model: TemporalEncoder, store: FeatureStore, batch_size: int = 64, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The Temporal Encoder's per-row probabilities over a whole store (on the model's device).
    Under torchrun each process predicts a share of the videos and every process gets the whole
    result (the shares summed once)."""
    slices = [rows for _, rows in store.table.video_slices()][rank() :: world_size()]
    probs, known = predict_windows(
        model, store.features, store.table.has_image, slices, batch_size, progress=progress
    )
    if world_size() > 1:
        probs = all_reduce_sum_(torch.from_numpy(probs)).numpy()
        known = all_reduce_sum_(torch.from_numpy(known.astype(np.int32))).numpy() > 0
    return probs, known


def compare(
    store: FeatureStore | str | Path,
    temporal_model: TemporalEncoder | str | Path,
    smoothing_window: int | None = None,
    windows=DEFAULT_WINDOWS,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> pd.DataFrame:
    """Macro F1 and per-class F1 of the frame model alone, the moving average and the Temporal
    Encoder on the annotated frames of ``store``, one row each.

    ``smoothing_window`` None = choose it on this store from ``windows`` (pass a validation
    store; on a test store pass the validation choice). ``attrs`` holds the window and the
    macro F1 of every window tried."""
    store = store if isinstance(store, FeatureStore) else FeatureStore.open(store)
    model = temporal_model_for(temporal_model, store, device)
    temporal = temporal_probabilities(model, store, batch_size, progress)
    return compare_probabilities(store, temporal, smoothing_window, windows)


def compare_probabilities(
    store: FeatureStore,
    temporal: tuple[np.ndarray, np.ndarray],
    smoothing_window: int | None = None,
    windows=DEFAULT_WINDOWS,
) -> pd.DataFrame:
    """:func:`compare` given the Temporal Encoder's (probabilities, known) over ``store``."""
    table = store.table
    frame_probs, frame_known = store.frame_probabilities()
    window_scores: dict[int, float] = {}
    if smoothing_window is None:
        smoothing_window, window_scores = choose_window(table, frame_probs, frame_known, windows)
    systems = {
        "frame model": (frame_probs, frame_known),
        f"moving average ({smoothing_window})": moving_average_per_video(
            table, frame_probs, frame_known, smoothing_window
        ),
        "temporal encoder": temporal,
    }
    rows = {}
    for name, (probs, known) in systems.items():
        metrics = score(prediction_table(table, probs, known))
        rows[name] = {schema.MACRO_F1: metrics["macro_f1"], **metrics["per_class_f1"]}
    result = pd.DataFrame.from_dict(rows, orient="index", columns=[schema.MACRO_F1, *CLASS_NAMES])
    result.attrs.update(smoothing_window=smoothing_window, window_scores=window_scores)
    return result


def evaluate_temporal(
    temporal_model: TemporalEncoder | str | Path,
    store: FeatureStore | str | Path,
    out_dir: str | Path,
    smoothing_window: int | None = None,
    windows=DEFAULT_WINDOWS,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = False,
    temporal: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Evaluate a Temporal Encoder on an annotated store: ``evaluate.write_evaluation``'s files
    (metrics, per-class F1, confusion, per-frame predictions) plus ``comparison.csv`` and
    ``comparison.json`` (see :func:`compare`) in ``out_dir``. Returns the metrics with a
    ``comparison`` entry. ``temporal``: the model's (probabilities, known), if computed."""
    store = store if isinstance(store, FeatureStore) else FeatureStore.open(store)
    model = temporal_model_for(temporal_model, store, device)
    if temporal is None:
        temporal = temporal_probabilities(model, store, batch_size, progress)
    out_dir = Path(out_dir)
    metrics = write_evaluation(out_dir, prediction_table(store.table, *temporal))
    comparison = compare_probabilities(store, temporal, smoothing_window, windows)
    atomic_write_text(out_dir / "comparison.csv", comparison.to_csv(index_label=schema.SYSTEM))
    metrics["comparison"] = {
        "table": json.loads(comparison.to_json(orient="index")),
        "smoothing_window": comparison.attrs["smoothing_window"],
        "window_scores": comparison.attrs["window_scores"],
    }
    atomic_write_text(out_dir / "comparison.json", json.dumps(metrics["comparison"], indent=2))
    metrics["comparison"]["text"] = format_comparison(comparison)
    log.info("%s:\n%s", store.path, metrics["comparison"]["text"])
    return metrics


def temporal_model_for(
    model: TemporalEncoder | str | Path, store: FeatureStore, device: torch.device | str = "cpu"
) -> TemporalEncoder:
    """A Temporal Encoder given as a model or a model file (loaded onto ``device`` and checked
    to have been trained on features of the store's encoder)."""
    if isinstance(model, TemporalEncoder):
        return model
    loaded, meta = load_temporal_model(model)
    check_model_fits_store(meta, store)
    return loaded.to(pick_device(device))


def check_model_fits_store(meta: dict, store: FeatureStore) -> None:
    """DataError unless the temporal model was trained on features of the store's encoder."""
    store.check_encoder(meta["frame_encoder"], "the encoder the temporal model was trained on")


def format_comparison(table: pd.DataFrame) -> str:
    """The comparison as aligned text: one line per system, macro F1 then per-class F1."""
    short = [name[:5] for name in CLASS_NAMES]
    width = max(len(name) for name in table.index)
    lines = [f"{'':<{width}}  macro F1  " + " ".join(f"{s:>5}" for s in short)]
    for name, row in table.iterrows():
        cells = " ".join("  n/a" if pd.isna(row[c]) else f"{row[c]:5.3f}" for c in CLASS_NAMES)
        lines.append(f"{name:<{width}}  {row['macro_f1']:8.4f}  {cells}")
    return "\n".join(lines)
