"""Stage 2: training the Temporal Encoder on windows of stored frame features.

An epoch is ``steps_per_epoch`` steps; each draws a batch of windows of T consecutive frames
(``balanced``: with probability proportional to the mean inverse class frequency of the window's
annotated frames), optionally hides frames (feature dropout) and adds Gaussian noise to the
features, and takes one AdamW step on the cross-entropy over the window's annotated frames.
Annotated frames with no face are in the loss (``train_missing``): the model must predict them
from the faces around them, which is what inference does. After each epoch: validation macro
F1 and an atomic checkpoint, from which ``resume`` continues a killed run exactly. With
``temporal.finetune_encoder`` the window features come from the frame encoder itself, trained
along (:mod:`fervid.stage2.finetune`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from fervid.config import Config, DataConfig, OptimConfig, TemporalConfig, to_dict
from fervid.data.affwild2 import read_split
from fervid.data.table import FrameTable
from fervid.errors import ConfigError, DataError
from fervid.evaluate import prediction_table, score
from fervid.labels import NUM_CLASSES
from fervid.models.frame import load_frame_model
from fervid.models.temporal import TemporalEncoder, Windows, gather_windows, make_windows
from fervid.runtime.checkpoint import save_weights
from fervid.runtime.dist import barrier, check_same_everywhere, is_main, rank, world_size
from fervid.runtime.run_dir import RunDir
from fervid.runtime.training import (
    autocast,
    build_optimizer,
    cosine_lr,
    load_resume_state,
    log_validation,
    pick_device,
    save_resume_state,
    set_lr,
)
from fervid.stage2.compare import evaluate_temporal, temporal_probabilities
from fervid.stage2.finetune import ENCODER_FILE, EncoderFinetuning
from fervid.stage2.store import FeatureStore, encoder_identity, frame_model_path

log = logging.getLogger("fervid")


def train_stage2(
    config: Config, run_dir: str | Path, resume: bool = False, progress: bool = True
) -> dict:
    """Train the Temporal Encoder on ``temporal.train_store``; returns the validation metrics
    (with ``comparison``: frame model / moving average / temporal encoder macro and per-class F1)."""
    run = RunDir(Path(run_dir))
    if run.checkpoint.exists() and not resume:
        raise FileExistsError(
            f"{run.path} already holds a run; pass --resume or pick another --run-dir"
        )
    cfg = config.temporal
    train_store, val_store = open_stores(config)
    device = pick_device(config.train.device)
    finetuning = EncoderFinetuning(config, train_store, device) if cfg.finetune_encoder else None
    check_same_everywhere(yaml.safe_dump(to_dict(config)), "configs")
    run.start(config, "stage2")
    torch.manual_seed(config.train.seed)
    table = train_store.table

    slices = [rows for _, rows in table.video_slices()]
    windows = make_windows(slices, cfg.window, cfg.stride or max(cfg.window // 2, 1))
    weights = window_weights(windows, table, cfg)
    steps = cfg.steps_per_epoch or max(1, int((weights > 0).sum()) // cfg.batch_size)
    model = TemporalEncoder(train_store.feature_dim, cfg)
    # with input: logits, training reads the store's logits (out of fold when cross-fitted,
    # fervid/stage2/crossfit.py); inference applies the frozen frame head to features
    reads_logits = cfg.input == "logits"
    if reads_logits:
        model.set_frame_head(frame_head(config, train_store))
    source = train_store.logits if reads_logits else train_store.features
    source = model.normalised(source, table.has_image, slices)  # temporal.normalize
    mixes_own_logits = bool(cfg.cross_fit) and cfg.out_of_fold_share < 1
    mean, std = input_stats(source, table.has_image, train_store.path)
    if mixes_own_logits:  # standardise by the moments of the mixture the windows will hold
        own_stats = input_stats(
            train_store.features,
            table.has_image,
            train_store.path,
            transform=lambda values: model.inputs(torch.from_numpy(values)).numpy(),
        )
        mean, std = mixture_stats((mean, std), own_stats, 1 - cfg.out_of_fold_share)
    model.set_feature_stats(mean, std)
    model.to(device)
    trained = DistributedDataParallel(model) if world_size() > 1 else model
    optim = OptimConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_epochs=cfg.warmup_epochs)
    encoder = (finetuning.encoder, cfg.encoder_lr_scale) if finetuning else None
    optimizer = build_optimizer(model, optim, scaled=encoder)
    class_weight = inverse_frequency(table.class_counts()).to(device) if cfg.class_weights else None
    total_steps, warmup_steps = cfg.epochs * steps, round(cfg.warmup_epochs * steps)
    log.info(
        "train: %d windows of %d frames, %d steps per epoch",
        int((weights > 0).sum()),
        cfg.window,
        steps,
    )

    start_epoch = 0
    if resume and run.checkpoint.exists():
        state = load_resume_state(run.checkpoint, "windows are shared out")
        model.load_state_dict(state["model"])
        if finetuning:
            finetuning.encoder.load_state_dict(state["encoder"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start_epoch = state["epoch"] + 1
        run.truncate_logs(state["log_lines"])
        log.info("resumed %s after epoch %d", run.path, start_epoch)

    temporal = None  # validation predictions of the last epoch (always evaluated)
    for epoch in range(start_epoch, cfg.epochs):
        # every process draws the same global sequence and takes every world_size()-th window
        chosen = draw_windows(
            weights, steps * cfg.batch_size * world_size(), config.train.seed, epoch
        )
        chosen = chosen[rank() :: world_size()]
        augment_rng = torch.Generator().manual_seed(
            config.train.seed * 100_003 + epoch * 101 + rank()
        )
        model.train()
        if finetuning:
            finetuning.train()
            crops = finetuning.epoch_crops(windows, chosen, cfg.batch_size, steps)
        started, loss_sum = time.perf_counter(), 0.0
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress)
        for step in bar:
            set_lr(optimizer, cosine_lr(epoch * steps + step, total_steps, warmup_steps, optim))
            picked = chosen[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            batch = gather_windows(
                source, table.has_image, table.label, windows, picked, cfg.window
            )
            features, mask, frame_loss = batch.features, batch.mask, 0.0
            if mixes_own_logits:  # some windows read the main model's own logits instead
                own = gather_windows(
                    train_store.features, table.has_image, None, windows, picked, cfg.window
                )
                own_logits = model.inputs(own.features.to(device)).cpu()
                features = mix_windows(features, own_logits, 1 - cfg.out_of_fold_share, augment_rng)
            with autocast(config.train.precision, device):
                if finetuning:  # the window's features from its crops, by the encoder
                    features, mask, frame_loss = finetuning.encode(batch, next(crops))
                features, mask = augment(features, mask, std, cfg, augment_rng)
                features, mask = features.to(device), mask.to(device)
                logits = trained(features, mask, given_logits=reads_logits)
            labels = batch.labels.to(device)
            loss = window_loss(logits.float(), labels, mask, cfg.train_missing, class_weight)
            loss = loss + cfg.frame_loss * frame_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
            if step % config.train.log_every == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        record = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * steps,
            "loss": loss_sum / steps,
            "lr": optimizer.param_groups[0]["lr"],
            "windows_per_s": steps * cfg.batch_size / (time.perf_counter() - started),
        }
        last = epoch + 1 == cfg.epochs
        if last or (config.train.eval_every and (epoch + 1) % config.train.eval_every == 0):
            if finetuning:  # the features changed: extract the validation split again
                val_store = finetuning.validation_store(run.path, progress)
            temporal = temporal_probabilities(model, val_store, config.eval.batch_size, progress)
            metrics = score(prediction_table(val_store.table, *temporal))
            log_validation(record, metrics)
        run.log(record)
        encoder_state = {"encoder": finetuning.encoder.state_dict()} if finetuning else {}
        save_resume_state(
            run,
            epoch=epoch,
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            **encoder_state,
        )

    if finetuning and val_store.encoder["sha256"] == train_store.encoder["sha256"]:
        val_store = finetuning.validation_store(run.path, progress)  # resumed after the last epoch
    meta = {
        "kind": "temporal",
        "config": to_dict(config),
        "feature_dim": train_store.feature_dim,
        "frame_encoder": val_store.encoder,
    }
    if finetuning:
        meta["finetuned_encoder"] = ENCODER_FILE
    if temporal is None:  # resumed after the last epoch
        temporal = temporal_probabilities(model, val_store, config.eval.batch_size, progress)
    metrics = None
    if is_main():
        save_weights(run.path / "model", model.state_dict(), meta)
        metrics = evaluate_temporal(
            model,
            val_store,
            run.path / "eval" / config.eval.split,
            windows=cfg.smoothing_windows,
            batch_size=config.eval.batch_size,
            device=device,
            progress=progress,
            temporal=temporal,
        )
    barrier()
    return metrics if metrics is not None else score(prediction_table(val_store.table, *temporal))


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


def frame_head(config: Config, store: FeatureStore) -> nn.Linear:
    """The head of the frame model whose features ``store`` holds (``temporal.frame_model``,
    else the store's recorded encoder file)."""
    source = config.temporal.frame_model or store.encoder.get("source")
    path = frame_model_path(source) if source else None
    if path is None or not path.is_file():
        raise ConfigError(
            "temporal.input: logits needs the frame model's head: set temporal.frame_model "
            f"(the store's encoder file {path} is not here)"
        )
    return load_frame_model(path).head


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


def input_stats(
    values: np.ndarray,
    has_image: np.ndarray,
    where: Path,
    limit: int = 65_536,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std of ``values`` (a store's features or logits; ``transform``ed, if
    given, e.g. features to the frame head's logits) over (up to ``limit``, evenly spaced) frames
    with a face."""
    rows = np.flatnonzero(has_image)
    if len(rows) == 0:
        raise DataError(where, "no frame in this store has a face; nothing to train on")
    rows = rows[np.linspace(0, len(rows) - 1, min(limit, len(rows))).astype(np.int64)]
    values = np.asarray(values[rows], dtype=np.float32)
    if transform is not None:
        values = transform(values)
    values = values.astype(np.float64)
    std = np.maximum(values.std(axis=0), 1e-3)
    return values.mean(axis=0).astype(np.float32), std.astype(np.float32)


def mixture_stats(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray], share: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of a mixture drawing from ``second`` with probability ``share``."""
    (mean1, std1), (mean2, std2) = first, second
    mean = (1 - share) * mean1 + share * mean2
    square = (1 - share) * (std1**2 + mean1**2) + share * (std2**2 + mean2**2)
    std = np.maximum(np.sqrt(np.maximum(square - mean**2, 0.0)), 1e-3)
    return mean.astype(np.float32), std.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Sampling, augmentation, loss


def window_weights(windows: Windows, table: FrameTable, cfg: TemporalConfig) -> np.ndarray:
    """Drawing weight of each window: 0 without a frame to learn from (an annotated frame, with a
    face unless ``train_missing``, in a window with at least one face); otherwise 1
    (``uniform``) or the mean over its annotated frames of their class's inverse frequency
    (``balanced``: windows of rare classes are drawn more often)."""
    offsets = np.arange(cfg.window)[None, :]
    real = offsets < windows.lengths[:, None]
    rows = np.where(real, windows.starts[:, None] + offsets, windows.starts[:, None])
    face = real & table.has_image[rows]
    labels = np.where(real, table.label[rows], -1)
    learn = (labels >= 0) & (True if cfg.train_missing else face) & face.any(axis=1, keepdims=True)
    if not learn.any():
        raise DataError("temporal.train_store", "no window holds an annotated frame to learn from")
    if cfg.sampling == "uniform":
        return learn.any(axis=1).astype(np.float64)
    counts = np.bincount(labels[learn], minlength=NUM_CLASSES)
    inverse = counts.sum() / np.maximum(counts, 1)
    per_frame = np.where(learn, inverse[np.maximum(labels, 0)], 0.0)
    return per_frame.sum(axis=1) / np.maximum(learn.sum(axis=1), 1)


def draw_windows(weights: np.ndarray, count: int, seed: int, epoch: int) -> np.ndarray:
    """``count`` window indices drawn with replacement, deterministic given (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    return rng.choice(len(weights), size=count, p=weights / weights.sum())


def inverse_frequency(counts: np.ndarray) -> torch.Tensor:
    """Class weights total/count, normalised to mean 1 over the classes present."""
    present = counts > 0
    weights = np.zeros(len(counts))
    weights[present] = counts.sum() / counts[present]
    weights[present] /= weights[present].mean()
    return torch.tensor(weights, dtype=torch.float32)


def augment(
    features: torch.Tensor,
    mask: torch.Tensor,
    std: np.ndarray,
    cfg: TemporalConfig,
    rng: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian feature noise (in units of each dimension's std) and feature dropout (frames
    hidden as if they had no face)."""
    if cfg.feature_noise > 0:
        noise = torch.randn(features.shape, generator=rng) * torch.from_numpy(std)
        features = features + cfg.feature_noise * noise.to(features.device)
    if cfg.feature_dropout > 0:
        mask = mask | (torch.rand(mask.shape, generator=rng) < cfg.feature_dropout).to(mask.device)
    return features, mask


def mix_windows(
    first: torch.Tensor, second: torch.Tensor, share: float, rng: torch.Generator
) -> torch.Tensor:
    """``first`` (B, T, D) with each window replaced by its ``second`` with probability
    ``share``."""
    chosen = torch.rand(first.shape[0], generator=rng) < share
    return torch.where(chosen[:, None, None], second, first)


def window_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    train_missing: bool,
    class_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy over annotated frames of windows with a face (frames with no face
    included when ``train_missing``); 0 when a batch has none."""
    valid = (labels >= 0) & ~mask.all(dim=1, keepdim=True)
    if not train_missing:
        valid &= ~mask
    targets = labels.clamp(min=0)
    losses = F.cross_entropy(
        logits.flatten(0, 1), targets.flatten(), weight=class_weight, reduction="none"
    )
    weight = valid.flatten().float()
    if class_weight is not None:
        weight = weight * class_weight[targets.flatten()]
    return (losses * valid.flatten()).sum() / weight.sum().clamp(min=1e-6)
