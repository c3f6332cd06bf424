"""The ABAW test path: trained models -> probabilities for every frame of a split -> one
submission file (or an evaluation).

Each model (an exported video model: frame encoder + Temporal Encoder, or a frame model: a
stage-1 run or its model file) runs its encoder once over every frame that has a face crop,
into a feature store of its own under ``work`` (resumable: rerun the same command to finish a
killed run; a finished store is reused). The Temporal Encoder, when the model has one, then runs
over the store's overlapping windows; frames with no face crop are filled from their
neighbours. With several models the filled probabilities are averaged (an ensemble).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fervid import schema
from fervid.data.table import FrameTable
from fervid.errors import DataError
from fervid.evaluate import prediction_table
from fervid.models.frame import FrameModel
from fervid.runtime.checkpoint import sha256_file
from fervid.stage2.compare import temporal_probabilities
from fervid.stage2.extract import extract_features
from fervid.stage2.store import frame_model_path
from fervid.zoo.store import load_model, read_sidecar, resolve_model
from fervid.zoo.video_model import VideoModel

log = logging.getLogger("fervid")

KINDS = ("frame", "video")
"""Model kinds that can run over a split of face crops (their encoder makes features)."""


def resolve_split_model(model: str | Path) -> Path:
    """A model file of a kind that runs over face crops: a stage-1 run folder or frame model
    file, an exported video model, or an installed name."""
    path = Path(model)
    path = frame_model_path(path) if path.is_dir() else resolve_model(model)
    kind = read_sidecar(path).get("kind")
    if kind not in KINDS:
        raise DataError(
            path,
            f"a {kind!r} model cannot run over a split of face crops; give a stage-1 run or "
            "frame model, or a video model from `fervid export` (a stage-2 run: export it with "
            "its frame encoder first)",
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
) -> np.ndarray:
    """(rows x 8) probabilities of one model for every row of ``table``: the Temporal Encoder's
    when the model has one, else its frame head's; rows without a face crop filled from their
    neighbours. Features go to ``work/<model sha256[:12]>``."""
    path = resolve_split_model(model)
    loaded = load_model(path)
    frame = loaded.frame if isinstance(loaded, VideoModel) else loaded
    temporal = loaded.temporal if isinstance(loaded, VideoModel) else None
    assert isinstance(frame, FrameModel)
    store_dir = Path(work) / sha256_file(path)[:12]
    store = extract_features(
        frame, table, store_dir, batch_size, workers, device, progress, flip=flip
    )
    if temporal is not None:
        probs, known = temporal_probabilities(temporal.to(frame.head.weight.device), store)
    else:
        probs, known = store.frame_probabilities()
    filled = prediction_table(store.table, probs, known)
    return filled[list(schema.PROB_COLUMNS)].to_numpy(np.float32)


def ensemble_predictions(models: list[str | Path], table: FrameTable, work: str | Path, **options):
    """Per-frame predictions (``evaluate.prediction_table``) for every row of ``table`` from the
    mean of the models' probabilities (one model: its own)."""
    if not models:
        raise DataError("--model", "no model given")
    total = np.zeros((len(table), len(schema.PROB_COLUMNS)), np.float64)
    for model in models:
        total += model_probabilities(model, table, work, **options)
    return prediction_table(table, (total / len(models)).astype(np.float32), table.has_image)
