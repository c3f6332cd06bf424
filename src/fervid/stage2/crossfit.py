"""Out-of-fold frame logits to train the Temporal Encoder on (``temporal.cross_fit``).

The stage-1 model has trained on every frame of the train split, so its logits there are far
more reliable than on people it has never seen: a Temporal Encoder trained on them learns to
trust single frames and smooths too little on new people (CHANGELOG.md, 2026-12-03, measures it
losing to a plain moving average that way). With K folds of the train videos (whole source videos),
K more stage-1 models each leave one fold out, and every train video gets the logits of the
model that did not see it, as reliable as on new people. This is stacking's usual remedy.

The store written here keeps the main model's features and encoder identity (inference reads
features through the Temporal Encoder's frozen copy of the main model's head) and replaces the
logits, which stage-2 training reads when ``temporal.input`` is ``logits``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from fervid.config import Config
from fervid.data.sources import labelled_split, present_videos, video_folds
from fervid.stage1.train import train_stage1
from fervid.stage2.extract import extract_features
from fervid.stage2.store import FeatureStore, write_store

log = logging.getLogger("fervid")


def out_of_fold_store(
    config: Config, store: FeatureStore, run: str | Path, progress: bool = True
) -> FeatureStore:
    """``store`` (the train split's features) with out-of-fold logits, in
    ``run/features/train-out-of-fold``; the fold models in ``run/folds/fold<k>``. Resumable:
    finished fold models and extractions are reused."""
    folds = config.temporal.cross_fit
    run = Path(run)
    out = run / "features" / "train-out-of-fold"
    if (out / "store.json").is_file() and json.loads((out / "store.json").read_text())["complete"]:
        return FeatureStore.open(out)
    kept = labelled_split(dataclasses.replace(config.data, extra_labelled=[]), "train")
    fold_of = video_folds(present_videos(kept), folds, config.data.labelled_seed)
    table = store.table
    row_fold = np.array([fold_of.get(name, -1) for name in table.videos], np.int64)[table.video]
    logits = np.array(store.logits, dtype=np.float32)
    for fold in range(folds):
        fold_run = run / "folds" / f"fold{fold}"
        data = dataclasses.replace(config.data, leave_out_fold=[fold, folds])
        train_stage1(
            dataclasses.replace(config, data=data),
            fold_run,
            resume=(fold_run / "checkpoints" / "last.pt").exists(),
            progress=progress,
        )
        rows = np.flatnonzero(row_fold == fold)
        held_out = extract_features(
            fold_run,
            table.select(rows),
            fold_run / "features",
            config.eval.batch_size,
            config.data.workers,
            config.train.device,
            progress,
            flip=config.eval.flip,
        )
        logits[rows] = held_out.logits
        log.info(
            "cross-fit: fold %d/%d gave the logits of %d train frames", fold + 1, folds, len(rows)
        )
    encoder = {**store.encoder, "logits": f"out of fold ({folds} folds, {run / 'folds'})"}
    return write_store(out, table, encoder, store.features, logits)


def with_out_of_fold_logits(
    config: Config, store: FeatureStore, run: str | Path, progress: bool = True
) -> Config:
    """``config`` with ``temporal.train_store`` pointing at :func:`out_of_fold_store`."""
    oof = out_of_fold_store(config, store, run, progress)
    temporal = dataclasses.replace(config.temporal, train_store=str(oof.path))
    return dataclasses.replace(config, temporal=temporal)
