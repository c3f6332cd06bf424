"""Stage 2: training the Temporal Encoder on windows of stored frame features.

An epoch is ``steps_per_epoch`` steps; each draws a batch of windows of T consecutive frames
(``balanced``: with probability proportional to the mean inverse class frequency of the window's
annotated frames), optionally hides frames (feature dropout) and adds Gaussian noise to the
features, and takes one AdamW step on the cross-entropy over the window's annotated frames.
Annotated frames with no face are in the loss (``train_missing``): the model must predict them
from the faces around them, which is what inference does. After each epoch: validation macro
F1 and an atomic checkpoint, from which ``resume`` continues a killed run exactly (the skeleton
around the epochs is :class:`fervid.runtime.training.TrainingRun`, shared with stage 1).

Where the windows' frames come from is chosen once, at start-up (:mod:`fervid.stage2.windows`):
the store's features or frame logits, out-of-fold logits mixed with the main model's own, or,
with ``temporal.finetune_encoder``, features of the frames' crops from the frame encoder
itself, trained along (:mod:`fervid.stage2.finetune`). One step is :class:`Stage2Step`
(:mod:`fervid.stage2.step`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fervid.config import Config, DataConfig, to_dict
from fervid.data.affwild2 import read_split
from fervid.errors import ConfigError
from fervid.evaluate import prediction_table, score
from fervid.models.temporal import TemporalEncoder
from fervid.runtime.training import (
    TrainingRun,
    cosine_lr,
    epoch_generator,
    pick_device,
    set_lr,
)
from fervid.stage2.compare import evaluate_temporal, temporal_probabilities
from fervid.stage2.finetune import ENCODER_FILE, EncoderFinetuning
from fervid.stage2.step import Stage2Step
from fervid.stage2.store import FeatureStore, encoder_identity
from fervid.stage2.windows import TrainingWindows, window_source

log = logging.getLogger("fervid")


def train_stage2(
    config: Config, run_dir: str | Path, resume: bool = False, progress: bool = True
) -> dict:
    """Train the Temporal Encoder on ``temporal.train_store``; returns the validation metrics
    (with ``comparison``: frame model / moving average / temporal encoder macro and per-class F1)."""
    cfg = config.temporal
    loop = TrainingRun(run_dir, resume, cfg.epochs, config.train.eval_every)
    train_store, val_store = open_stores(config)
    device = pick_device(config.train.device)
    finetuning = EncoderFinetuning(config, train_store, device) if cfg.finetune_encoder else None
    loop.start(config, "stage2")
    torch.manual_seed(config.train.seed)
    windows = TrainingWindows(train_store.table, cfg)
    model = TemporalEncoder(train_store.feature_dim, cfg)
    source = window_source(config, train_store, windows, model, finetuning, device)
    step = Stage2Step(config, model, source, train_store.table, device)
    validation = TemporalValidation(
        config, model, val_store, finetuning, loop.run.path, device, progress
    )
    total_steps, warmup_steps = cfg.epochs * windows.steps, round(cfg.warmup_epochs * windows.steps)
    log.info(
        "train: %d windows of %d frames, %d steps per epoch",
        windows.learnable,
        cfg.window,
        windows.steps,
    )

    for epoch in loop.epochs_left(step, "windows are shared out"):
        chosen = windows.draw(config.train.seed, epoch)
        augment_rng = epoch_generator(config.train.seed, epoch)
        step.start_epoch(chosen)
        started, loss_sum = time.perf_counter(), 0.0
        bar = tqdm(
            range(windows.steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress
        )
        for index in bar:
            global_step = epoch * windows.steps + index
            set_lr(step.optimizer, cosine_lr(global_step, total_steps, warmup_steps, step.optim))
            loss = step(windows.batch(chosen, index), augment_rng)
            loss_sum += loss.item()
            if index % config.train.log_every == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        record = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * windows.steps,
            "loss": loss_sum / windows.steps,
            "lr": step.optimizer.param_groups[0]["lr"],
            "windows_per_s": windows.steps * cfg.batch_size / (time.perf_counter() - started),
        }
        loop.end_epoch(epoch, record, step, validation)

    loop.final_predictions(validation)  # a fine-tuned encoder's validation store is its own
    meta = {
        "kind": "temporal",
        "config": to_dict(config),
        "feature_dim": train_store.feature_dim,
        "frame_encoder": validation.store.encoder,
    }
    if finetuning:
        meta["finetuned_encoder"] = ENCODER_FILE
    return loop.finish(model.state_dict(), meta, validation, config.eval.split)


class TemporalValidation:
    """The Temporal Encoder on the validation store: its per-frame probabilities, their score,
    and the evaluation files with the frame model and moving-average baselines beside it
    (:func:`~fervid.stage2.compare.evaluate_temporal`). With a fine-tuned encoder the features
    changed: each prediction first extracts the validation split again with the current encoder
    (into the run's ``features/<split>``)."""

    def __init__(
        self,
        config: Config,
        model: TemporalEncoder,
        store: FeatureStore,
        finetuning: EncoderFinetuning | None,
        run_path: Path,
        device: torch.device,
        progress: bool,
    ):
        self.config, self.model, self.store, self.finetuning = config, model, store, finetuning
        self.run_path, self.device, self.progress = run_path, device, progress

    def predict(self) -> tuple[np.ndarray, np.ndarray]:
        if self.finetuning is not None:
            self.store = self.finetuning.validation_store(self.run_path, self.progress)
        batch_size = self.config.eval.batch_size
        return temporal_probabilities(self.model, self.store, batch_size, self.progress)

    def score(self, temporal: tuple[np.ndarray, np.ndarray]) -> dict:
        return score(prediction_table(self.store.table, *temporal))

    def write(self, out_dir: Path, temporal: tuple[np.ndarray, np.ndarray]) -> dict:
        return evaluate_temporal(
            self.model,
            self.store,
            out_dir,
            windows=self.config.temporal.smoothing_windows,
            batch_size=self.config.eval.batch_size,
            device=self.device,
            progress=self.progress,
            temporal=temporal,
        )


# ----------------------------------------------------------------------------------------------
# Stores


def open_stores(config: Config) -> tuple[FeatureStore, FeatureStore]:
    """The training and validation stores, checked to come from the encoder the config names
    (``temporal.frame_model``, else the training store's) and to cover their splits."""
    cfg = config.temporal
    for key in ("train_store", "val_store"):
        if not getattr(cfg, key):
            raise ConfigError(
                f"temporal.{key} is not set: write a store with `fervid features --model RUN "
                f"--split ... --out STORE` and pass temporal.{key}=STORE"
            )
    train_store, val_store = FeatureStore.open(cfg.train_store), FeatureStore.open(cfg.val_store)
    if cfg.frame_model:
        expected, what = encoder_identity(cfg.frame_model), "temporal.frame_model"
    else:
        expected, what = (
            train_store.encoder,
            f"the encoder of the training store {train_store.path}",
        )
    for store in (train_store, val_store):
        store.check_encoder(expected, what)
    check_split_videos(train_store, config.data, "train")
    check_split_videos(val_store, config.data, config.eval.split)
    return train_store, val_store


def check_split_videos(store: FeatureStore, data: DataConfig, split: str) -> None:
    """DataError if the store lacks videos of ``split`` (skipped, with a warning, when the
    dataset is not on this machine)."""
    if not Path(data.root).is_dir():
        log.warning(
            "data.root %s not found: not checking that %s covers the %s split",
            data.root,
            store.path,
            split,
        )
        return
    store.check_videos(read_split(data.root, split, annotations=data.annotations).videos, split)
