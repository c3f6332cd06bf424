"""Stage 1: training the frame encoder on class-uniformly drawn labelled frames.

One epoch = ``steps_per_epoch`` steps; each step draws a batch in which every class is equally
likely (the paper's uniform sampling), applies the weak augmentation and takes one optimizer
step. After each epoch: validation macro F1 and an atomic checkpoint, from which ``resume``
continues a killed run exactly (same weights as an uninterrupted run with the same seed).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.utils import ModelEmaV3
from tqdm import tqdm

from fervid.checkpoint import load_state, save_state, save_weights
from fervid.config import Config, to_dict
from fervid.data.frames import FrameDataset, decode_all, fits_in_memory
from fervid.data.samplers import ClassBalancedSampler
from fervid.data.sources import labelled_split
from fervid.data.transforms import weak_augment
from fervid.evaluate import prediction_table, score, write_evaluation
from fervid.infer import frame_probabilities
from fervid.models.frame import FrameModel
from fervid.run import RunDir
from fervid.train.common import (
    LabelledBatches,
    autocast,
    build_optimizer,
    cosine_lr,
    pick_device,
    set_lr,
)

log = logging.getLogger("fervid")


def train_stage1(
    config: Config, run_dir: str | Path, resume: bool = False, progress: bool = True
) -> dict:
    """Train the frame model; returns the final validation metrics."""
    run = RunDir(Path(run_dir))
    if run.checkpoint.exists() and not resume:
        raise FileExistsError(
            f"{run.path} already holds a run; pass --resume or pick another --run"
        )
    run.start(config, "stage1")
    train_cfg = config.train
    torch.manual_seed(train_cfg.seed)
    device = pick_device(train_cfg.device)
    size = config.model.input_size

    train_table = labelled_split(config.data, "train").with_images()
    val_table = labelled_split(config.data, config.eval.split)
    keep_in_memory = config.data.cache_images and fits_in_memory(
        train_table, size, config.data.cache_limit_gb
    )
    if keep_in_memory:
        source = decode_all(train_table, size, config.data.workers, desc="decode train")
        labels = source.labels.numpy()
        val_decoded = decode_all(val_table, size, config.data.workers, desc="decode validation")
    else:
        source = FrameDataset(train_table, size)
        labels = train_table.label[source.rows]
        val_decoded = None
    log.info("train: %d frames, validation: %d annotated frames", len(labels), len(val_table))

    model = FrameModel(config.model).to(device)
    optimizer = build_optimizer(model, config.optim)
    ema = ModelEmaV3(model, decay=train_cfg.ema_momentum) if train_cfg.ema else None
    sampler = ClassBalancedSampler(
        labels,
        train_cfg.steps_per_epoch * train_cfg.batch_size,
        seed=train_cfg.seed,
        balanced=train_cfg.class_balanced,
    )
    batches = LabelledBatches(source, sampler, train_cfg.batch_size, config.data.workers)
    total_steps = train_cfg.epochs * train_cfg.steps_per_epoch
    warmup_steps = round(config.optim.warmup_epochs * train_cfg.steps_per_epoch)

    start_epoch = 0
    if resume and run.checkpoint.exists():
        state = load_state(run.checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.module.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng"])
        start_epoch = state["epoch"] + 1
        run.truncate_log(state["log_lines"])
        log.info("resumed %s after epoch %d", run.path, state["epoch"] + 1)

    metrics: dict = {}
    for epoch in range(start_epoch, train_cfg.epochs):
        sampler.set_epoch(epoch)
        augment_rng = torch.Generator().manual_seed(train_cfg.seed * 100_003 + epoch)
        model.train()
        started, seen, loss_sum, skipped = time.perf_counter(), 0, 0.0, 0
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{train_cfg.epochs}", disable=not progress)
        for step, batch in enumerate(bar):
            global_step = epoch * train_cfg.steps_per_epoch + step
            set_lr(optimizer, cosine_lr(global_step, total_steps, warmup_steps, config.optim))
            skipped += len(batch.corrupt)
            images = model.normalize(weak_augment(batch.images, augment_rng).to(device))
            with autocast(train_cfg.precision, device):
                loss = F.cross_entropy(model(images), batch.labels.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update(model)
            seen += len(batch.labels)
            loss_sum += loss.item() * len(batch.labels)
            if step % train_cfg.log_every == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        record = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * train_cfg.steps_per_epoch,
            "loss": loss_sum / max(seen, 1),
            "lr": optimizer.param_groups[0]["lr"],
            "images_per_s": seen / (time.perf_counter() - started),
            "corrupt_skipped": skipped,
        }
        last = epoch + 1 == train_cfg.epochs
        if last or (train_cfg.eval_every and (epoch + 1) % train_cfg.eval_every == 0):
            eval_model = ema.module if ema is not None else model
            probs, known = frame_probabilities(
                eval_model,
                val_table,
                device,
                config.eval.batch_size,
                config.data.workers,
                val_decoded,
                progress,
            )
            predictions = prediction_table(val_table, probs, known)
            metrics = score(predictions)
            record["val_macro_f1"] = metrics["macro_f1"]
            record["val_per_class_f1"] = metrics["per_class_f1"]
            log.info(
                "epoch %d: loss %.4f, validation macro F1 %.4f",
                epoch + 1,
                record["loss"],
                metrics["macro_f1"],
            )
        run.log(record)
        save_state(
            run.checkpoint,
            {
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "ema": ema.module.state_dict() if ema is not None else {},
                "rng": torch.get_rng_state(),
                "log_lines": run.log_lines(),
            },
        )

    final_model = ema.module if ema is not None else model
    save_weights(
        run.path / "model", final_model.state_dict(), {"kind": "frame", "config": to_dict(config)}
    )
    probs, known = frame_probabilities(
        final_model,
        val_table,
        device,
        config.eval.batch_size,
        config.data.workers,
        val_decoded,
        progress,
    )
    metrics = write_evaluation(
        run.path / "eval" / config.eval.split, prediction_table(val_table, probs, known)
    )
    return metrics
