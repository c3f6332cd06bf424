"""Stage 1: the frame encoder, trained on class-uniformly drawn labelled frames and, with
``ssl.enabled``, on pseudo-labelled unlabelled faces (see fervid.stage1.objective).

One epoch = ``steps_per_epoch`` optimizer steps, each of ``accumulate`` batches. A batch holds
labelled frames in which every class is equally likely (the paper's uniform sampling) and, with
SSL, mu times as many unlabelled faces (each read once, in a weak and a strong view). After each
epoch: validation macro F1 and an atomic checkpoint holding everything that evolves (weights,
optimizer, EMA teacher, threshold statistics, p_hat, RNG), from which ``resume`` continues
exactly (the skeleton around the epochs is :class:`fervid.runtime.training.TrainingRun`, shared
with stage 2).
"""

from __future__ import annotations

import contextlib
import logging
import time
from itertools import repeat
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from fervid.config import Config, to_dict
from fervid.data.frames import FrameBatch, UnlabelledBatch
from fervid.data.transforms import weak_augment
from fervid.evaluate import score, write_evaluation
from fervid.models.frame import FrameModel
from fervid.runtime.dist import broadcast_from_main_, world_size
from fervid.runtime.training import (
    TrainingRun,
    autocast,
    build_optimizer,
    cosine_lr,
    epoch_generator,
    pick_device,
    set_lr,
)
from fervid.stage1.data import Stage1Data
from fervid.stage1.losses import LabelledLoss
from fervid.stage1.objective import PseudoLabelObjective
from fervid.stage1.teachers import build_teacher

log = logging.getLogger("fervid")


def no_sync(model: torch.nn.Module, unless: bool):
    """DDP's no_sync (skip the gradient all-reduce) for batches that only accumulate."""
    if unless or not isinstance(model, DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


class Stage1Step:
    """The body of the stage-1 loop: the model (DDP-wrapped and compiled when asked), its
    optimizer, EMA teacher and pseudo-label objective, and one call = one training step on a
    labelled batch (and, with SSL, an unlabelled batch). Benchmarks time exactly this."""

    def __init__(
        self,
        config: Config,
        num_unlabelled: int,
        device: torch.device,
        class_counts: np.ndarray | None = None,
    ):
        cfg = config.train
        self.config, self.device = config, device
        self.accumulate = cfg.accumulate
        self.model = FrameModel(config.model).to(device)
        if cfg.channels_last:
            self.model.use_channels_last()
        trained = DistributedDataParallel(self.model) if world_size() > 1 else self.model
        self.trained = torch.compile(trained) if cfg.compile else trained
        self.optimizer = build_optimizer(self.model, config.optim)
        use_ema = cfg.ema or (config.ssl.enabled and config.ssl.teacher == "ema")
        momentum = config.ssl.teacher_momentum if config.ssl.enabled else cfg.ema_momentum
        self.ema = (
            ModelEmaV3(self.model, decay=momentum, use_warmup=cfg.ema_warmup) if use_ema else None
        )
        self.labelled_loss = LabelledLoss(cfg, class_counts)
        self.objective = (
            PseudoLabelObjective(config.ssl, num_unlabelled, self.labelled_loss)
            if config.ssl.enabled
            else None
        )
        self.teacher = (
            build_teacher(config.ssl, self.ema.module if self.ema else None, self.model, device)
            if self.objective
            else None
        )

    @property
    def eval_model(self) -> FrameModel:
        """The model validated and written at the end: the EMA teacher with ``train.ema``,
        else the trained model."""
        return self.ema.module if self.config.train.ema and self.ema is not None else self.model

    def state_dict(self) -> dict:
        """What evolves besides the RNG: weights, optimizer, EMA teacher, threshold statistics
        and p_hat (``{}`` for the parts this run has not)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else {},
            "objective": self.objective.state_dict() if self.objective is not None else {},
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`'s ``state`` (a resumed run)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.module.load_state_dict(state["ema"])
        if self.objective is not None:
            self.objective.load_state_dict(state["objective"])

    def to_input(self, images: torch.Tensor, rng: torch.Generator | None = None) -> torch.Tensor:
        """uint8 batch -> (weakly augmented) normalised input on the device."""
        images = images.to(self.device, non_blocking=True)
        if rng is not None:
            images = weak_augment(images, rng)
        return self.model.normalize(images)

    def __call__(
        self,
        batch: FrameBatch,
        unlabelled: UnlabelledBatch | None,
        rng: torch.Generator,
        update: bool = True,
        global_step: int = 0,
    ) -> torch.Tensor:
        """Forward and backward of one batch; with ``update``, the optimizer and EMA step too
        (gradient accumulation calls it ``accumulate`` times per update). ``global_step``: the
        optimizer step this batch counts towards (the EMA warm-up and the SSL ramp count those).
        Returns the loss."""
        images = self.to_input(batch.images, rng)
        labels = batch.labels.to(self.device, non_blocking=True)
        with autocast(self.config.train.precision, self.device), no_sync(self.trained, update):
            if self.objective is None:
                loss = self.labelled_loss(self.trained(images).float(), labels)
            else:
                self.objective.set_progress(global_step / self.config.train.steps_per_epoch)
                loss = self.objective(
                    self.trained,
                    self.teacher,
                    images,
                    labels,
                    self.to_input(unlabelled.images, rng),
                    self.to_input(unlabelled.strong),
                    unlabelled.indices.to(self.device),
                    unlabelled.truth,
                )
            (loss / self.accumulate).backward()
        if update:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update(self.model, step=global_step)
                # BatchNorm statistics are each process's own (its half of the batch): keep
                # process 0's in every teacher, so all pseudo-label alike and a resume, which
                # restores process 0's, continues exactly
                broadcast_from_main_(self.ema.module.buffers())
        return loss.detach()


class FrameValidation:
    """The frame model (the EMA teacher with ``train.ema``) on the validation split: its
    per-frame predictions, their score, and the evaluation files (:mod:`fervid.evaluate`)."""

    def __init__(self, data: Stage1Data, model: FrameModel, device: torch.device, progress: bool):
        self.data, self.model, self.device, self.progress = data, model, device, progress

    def predict(self) -> pd.DataFrame:
        return self.data.predict_validation(self.model, self.device, self.progress)

    def score(self, predictions: pd.DataFrame) -> dict:
        return score(predictions)

    def write(self, out_dir: Path, predictions: pd.DataFrame) -> dict:
        return write_evaluation(out_dir, predictions)


def train_stage1(
    config: Config, run_dir: str | Path, resume: bool = False, progress: bool = True
) -> dict:
    """Train the frame model; returns the final validation metrics."""
    cfg = config.train
    loop = TrainingRun(run_dir, resume, cfg.epochs, cfg.eval_every)
    loop.start(config, "stage1")
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    data = Stage1Data(config, progress)
    step = Stage1Step(config, data.num_unlabelled, device, data.class_counts)
    validation = FrameValidation(data, step.eval_model, device, progress)
    total_steps = cfg.epochs * cfg.steps_per_epoch
    warmup_steps = round(config.optim.warmup_epochs * cfg.steps_per_epoch)

    for epoch in loop.epochs_left(step, "samplers shard"):
        data.set_epoch(epoch)
        augment_rng = epoch_generator(cfg.seed, epoch)
        step.model.train()
        started, seen, loss_sum, skipped = time.perf_counter(), 0, 0.0, 0
        unlabelled_batches = data.unlabelled if step.objective is not None else repeat(None)
        bar = tqdm(
            zip(data.labelled, unlabelled_batches),
            total=len(data.labelled),
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not progress,
        )
        for index, (batch, unlabelled) in enumerate(bar):
            global_step = epoch * cfg.steps_per_epoch + index // cfg.accumulate  # optimizer steps
            set_lr(step.optimizer, cosine_lr(global_step, total_steps, warmup_steps, config.optim))
            update = (index + 1) % cfg.accumulate == 0  # optimizer step after `accumulate` batches
            loss = step(batch, unlabelled, augment_rng, update, global_step)
            skipped += len(batch.corrupt) + (len(unlabelled.corrupt) if unlabelled else 0)
            seen += len(batch.labels)
            loss_sum += loss.item() * len(batch.labels)
            if index % cfg.log_every == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
            ssl_report_due = update and (global_step + 1) % config.ssl.log_every == 0
            if step.objective is not None and ssl_report_due:
                report = {"epoch": epoch + 1, "step": global_step + 1, **step.objective.report()}
                loop.run.log(report, name="steps")
        record = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * cfg.steps_per_epoch,
            "loss": loss_sum / max(seen, 1),
            "lr": step.optimizer.param_groups[0]["lr"],
            "labelled_images_per_s": seen / (time.perf_counter() - started),
            "corrupt_skipped": skipped,
        }
        loop.end_epoch(epoch, record, step, validation)

    meta = {"kind": "frame", "config": to_dict(config)}
    return loop.finish(step.eval_model.state_dict(), meta, validation, config.eval.split)
