"""The ABAW test path: trained models -> probabilities for every frame of a split -> one
submission file (or an evaluation).

Each model (an exported video model: frame encoder + Temporal Encoder, or a frame model: a
stage-1 run or its model file) runs its encoder once over every frame that has a face crop,
into a feature store of its own under ``work`` (resumable: rerun the same command to finish a
killed run; a finished store is reused). The Temporal Encoder, when the model has one, then runs
over the store's overlapping windows. With several models each frame gets the mean of the
models that predicted it (an ensemble); only frames that no model predicted (no face crop, and
no Temporal Encoder predicting them from the faces around them) are filled from their
neighbours, by the same ``evaluate.prediction_table`` as every evaluation.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from fervid import schema
from fervid.data.frame_lists import frame_axis
from fervid.data.table import FrameTable
from fervid.errors import DataError
from fervid.evaluate import prediction_table
from fervid.models.frame import FrameModel
from fervid.runtime.checkpoint import sha256_file
from fervid.stage2.compare import temporal_probabilities
from fervid.stage2.extract import extract_features
from fervid.zoo.onnx_model import OnnxModel
from fervid.zoo.store import load_model, read_sidecar, resolve_model
from fervid.zoo.video_model import VideoModel

log = logging.getLogger("fervid")

KINDS = ("frame", "video", "onnx")
"""Model kinds that can run over a split of face crops (their encoder makes features): fervid's
frame and video models, and ONNX models (imported, or fervid's own exported with ``--onnx``)."""


def resolve_split_model(model: str | Path) -> Path:
    """A model file of a kind that runs over face crops: a stage-1 run folder or frame model
    file, an exported video model, or an installed name."""
    path = resolve_model(model)  # a run folder: its model.safetensors
    kind = read_sidecar(path).get("kind")
    if kind not in KINDS:
        raise DataError(
            path,
            f"a {kind!r} model cannot run over a split of face crops; give a stage-1 run or "
            "frame model, a video model from `fervid export` (a stage-2 run: export it with "
            "its frame encoder first) or an ONNX model",
        )
    return path


def model_probabilities(
    model: str | Path,
    table: FrameTable,
    work: str | Path,
    batch_size: int = 128,
    workers: int = 2,
    device: str = "cpu",
    flip: bool = False,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """One model's (rows x 8) probabilities for the rows of ``table`` (on its frame axis), and
    which rows it predicted: the Temporal Encoder's when the model has one (with
    ``temporal.missing: context`` it predicts frames without a face too), else its frame head's
    on the frames with a face. The other rows are zeros and not predicted; nothing is filled
    here. Features go to ``work/<model sha256[:12]>``."""
    path = resolve_split_model(model)
    loaded = load_model(path)
    store_dir = Path(work) / sha256_file(path)[:12]
    if isinstance(loaded, OnnxModel):  # runs on onnxruntime's CPU sessions
        store = extract_features(
            path, table, store_dir, batch_size, workers, "cpu", progress, flip=flip
        )
        if loaded.temporal:
            slices = [rows for _, rows in store.table.video_slices()]
            return loaded.window_probabilities(store.features, store.table.has_image, slices)
        return store.frame_probabilities()
    frame = loaded.frame if isinstance(loaded, VideoModel) else loaded
    temporal = loaded.temporal if isinstance(loaded, VideoModel) else None
    assert isinstance(frame, FrameModel)
    store = extract_features(
        frame, table, store_dir, batch_size, workers, device, progress, flip=flip
    )
    if temporal is not None:
        return temporal_probabilities(temporal.to(frame.head.weight.device), store)
    return store.frame_probabilities()


def ensemble_predictions(
    models: list[str | Path], table: FrameTable, work: str | Path, **options
) -> pd.DataFrame:
    """Per-frame predictions (``evaluate.prediction_table``) for every row of ``table`` (each
    video on its frame axis): each frame gets the mean probabilities of the models that
    predicted it (one model: its own, exactly as its evaluation has them); only the frames that
    no model predicted are filled from their neighbours."""
    if not models:
        raise DataError("--model", "no model given")
    total = np.zeros((len(table), len(schema.PROB_COLUMNS)))
    count = np.zeros(len(table), np.int64)
    for model in models:
        probs, known = model_probabilities(model, table, work, **options)
        total[known] += probs[known]
        count += known
    return prediction_table(table, total / np.maximum(count, 1)[:, None], count > 0)


def predict_frames(
    models: list[str | Path], wanted: FrameTable, root: str | Path, work: str | Path, **options
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Predictions for exactly the frames of ``wanted`` (a frame list, in its order), and the
    number of listed frames after each video's last face crop, per video (predicted without a
    face; a warning names them). The models run over each video's whole frame axis (1 to its last listed frame or
    face crop), so every frame sees the same spacing as in training and validation."""
    axis = frame_axis(root, wanted)
    predictions = ensemble_predictions(models, axis, work, **options)
    rows = np.zeros(len(wanted), np.int64)
    after_last_face: dict[str, int] = {}
    for number, span in axis.video_slices():
        name = axis.videos[number]
        listed = wanted.video == wanted.videos.index(name)
        rows[listed] = span.start + wanted.frame[listed] - 1  # the axis holds frames 1..last
        last_face = int(axis.frame[span][axis.has_image[span]].max())
        count = int((wanted.frame[listed] > last_face).sum())
        if count:
            after_last_face[name] = count
            log.warning(
                "%s: %d listed frames come after its last face crop (frame %d); they are "
                "predicted from the frames before it",
                name,
                count,
                last_face,
            )
    return predictions.iloc[rows].reset_index(drop=True), after_last_face
