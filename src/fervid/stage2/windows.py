"""Stage 2's training windows: which windows an epoch draws, and where their frames come from.

:class:`TrainingWindows` cuts the training store into windows of T consecutive frames and draws
each epoch's windows (``balanced``: with probability proportional to the mean inverse class
frequency of the window's annotated frames). One window source, chosen once at start-up by
:func:`window_source`, reads the drawn windows:

- :class:`StoredWindows`: the store's frame features (``temporal.input: features``) or the frame
  logits it holds (``logits``; out of fold when cross-fitted, fervid/stage2/crossfit.py);
- :class:`MixedLogitsWindows`: out-of-fold logits, some windows read as the main model's own
  logits instead (``temporal.out_of_fold_share`` < 1);
- :class:`CropWindows`: features the frame encoder computes from the frames' crops while it is
  fine-tuned along (``temporal.finetune_encoder``, :mod:`fervid.stage2.finetune`).

Each source also sets the Temporal Encoder up to read it: the frozen frame head for logits, and
the standardisation by the moments of what the windows will hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fervid.config import Config, TemporalConfig
from fervid.data.table import FrameTable
from fervid.errors import ConfigError, DataError
from fervid.labels import NUM_CLASSES
from fervid.models.frame import load_frame_model
from fervid.models.temporal import (
    TemporalEncoder,
    WindowBatch,
    Windows,
    gather_windows,
    make_windows,
)
from fervid.runtime.dist import rank, world_size
from fervid.runtime.training import autocast
from fervid.stage2.finetune import EncoderFinetuning
from fervid.stage2.store import FeatureStore, frame_model_path


class TrainingWindows:
    """The training store's windows: T consecutive frames every ``stride`` frames of each video,
    the weight each is drawn with (:func:`window_weights`) and the steps of an epoch
    (``temporal.steps_per_epoch``, else one pass over the windows with a frame to learn from)."""

    def __init__(self, table: FrameTable, cfg: TemporalConfig):
        self.table, self.size, self.batch_size = table, cfg.window, cfg.batch_size
        self.slices = [rows for _, rows in table.video_slices()]
        self.windows = make_windows(self.slices, cfg.window, cfg.stride or max(cfg.window // 2, 1))
        self.weights = window_weights(self.windows, table, cfg)
        self.learnable = int((self.weights > 0).sum())
        """Windows with a frame to learn from (the others are never drawn)."""
        self.steps = cfg.steps_per_epoch or max(1, self.learnable // cfg.batch_size)

    def draw(self, seed: int, epoch: int) -> np.ndarray:
        """This process's windows of ``epoch``, ``batch_size`` per step: every process draws
        the same global sequence and takes every world_size()-th window."""
        count = self.steps * self.batch_size * world_size()
        return draw_windows(self.weights, count, seed, epoch)[rank() :: world_size()]

    def batch(self, chosen: np.ndarray, step: int) -> np.ndarray:
        """The windows of ``step`` among the epoch's ``chosen``."""
        return chosen[step * self.batch_size : (step + 1) * self.batch_size]

    def gather(self, values, picked: np.ndarray, labelled: bool = True) -> WindowBatch:
        """The windows ``picked`` read from ``values`` (one row per store row), with their
        frames' labels unless not ``labelled``."""
        table = self.table
        labels = table.label if labelled else None
        return gather_windows(values, table.has_image, labels, self.windows, picked, self.size)


class StoredWindows:
    """Windows read from arrays of the training store: its features, or (``given_logits``) the
    frame logits it holds, which the Temporal Encoder then reads as they are (inference applies
    its frozen copy of the frame head to features instead). The other sources build on it and
    answer the same calls: ``start_epoch``, a call per step, ``state_dict``."""

    trained_along: tuple[nn.Module, float] | None = None
    """A module trained with the Temporal Encoder, and its learning-rate scale."""

    def __init__(self, values, windows: TrainingWindows, std: np.ndarray, given_logits: bool):
        self.values, self.windows, self.given_logits = values, windows, given_logits
        self.std = std
        """Per-input std over frames with a face: feature noise is in its units."""

    def start_epoch(self, chosen: np.ndarray) -> None:
        """Prepare the epoch's windows ``chosen`` (stored windows are read as they come)."""

    def __call__(
        self, picked: np.ndarray, rng: torch.Generator
    ) -> tuple[WindowBatch, torch.Tensor | float]:
        """The windows ``picked`` and the loss of a frame encoder trained along (0 here)."""
        return self.windows.gather(self.values, picked), 0.0

    def state_dict(self) -> dict:
        """What evolves in the source while training (nothing here)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`'s ``state``."""


class MixedLogitsWindows(StoredWindows):
    """Out-of-fold logits, with each window read instead, with probability ``own_share``, as
    the main model's own logits of the same frames (its features through the Temporal
    Encoder's frozen frame head), so one Temporal Encoder learns from both kinds of evidence."""

    def __init__(
        self,
        logits,
        windows: TrainingWindows,
        std: np.ndarray,
        features,
        model: TemporalEncoder,
        own_share: float,
        device: torch.device,
    ):
        super().__init__(logits, windows, std, given_logits=True)
        self.features, self.model, self.own_share, self.device = features, model, own_share, device

    def __call__(self, picked: np.ndarray, rng: torch.Generator) -> tuple[WindowBatch, float]:
        batch, frame_loss = super().__call__(picked, rng)
        own = self.windows.gather(self.features, picked, labelled=False)
        own_logits = self.model.inputs(own.features.to(self.device)).cpu()
        batch.features = mix_windows(batch.features, own_logits, self.own_share, rng)
        return batch, frame_loss


class CropWindows(StoredWindows):
    """Windows whose features the frame encoder being fine-tuned computes from the frames'
    face crops, with gradients (:class:`~fervid.stage2.finetune.EncoderFinetuning`); the loss
    of the encoder's own head over the annotated crops comes along."""

    def __init__(
        self,
        features,
        windows: TrainingWindows,
        std: np.ndarray,
        finetuning: EncoderFinetuning,
        config: Config,
        device: torch.device,
    ):
        super().__init__(features, windows, std, given_logits=False)
        self.finetuning, self.precision, self.device = finetuning, config.train.precision, device
        self.trained_along = (finetuning.encoder, config.temporal.encoder_lr_scale)
        self.crops = iter(())

    def start_epoch(self, chosen: np.ndarray) -> None:
        """The encoder in training mode, and the crops of the epoch's windows decoded ahead."""
        self.finetuning.train()
        windows = self.windows
        self.crops = self.finetuning.epoch_crops(
            windows.windows, chosen, windows.batch_size, windows.steps
        )

    def __call__(
        self, picked: np.ndarray, rng: torch.Generator
    ) -> tuple[WindowBatch, torch.Tensor]:
        batch, _ = super().__call__(picked, rng)  # its rows, mask and labels; new features:
        with autocast(self.precision, self.device):
            features, mask, frame_loss = self.finetuning.encode(batch, next(self.crops))
        return dataclasses.replace(batch, features=features, mask=mask), frame_loss

    def state_dict(self) -> dict:
        return {"encoder": self.finetuning.encoder.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.finetuning.encoder.load_state_dict(state["encoder"])


def window_source(
    config: Config,
    store: FeatureStore,
    windows: TrainingWindows,
    model: TemporalEncoder,
    finetuning: EncoderFinetuning | None,
    device: torch.device,
) -> StoredWindows:
    """The source of the training windows ``temporal`` asks for, with ``model`` set up to read
    it: the frame model's head copied in (``input: logits``) and its inputs standardised by
    the moments of what the windows will hold (of the mixture, when they mix two kinds)."""
    cfg, table = config.temporal, store.table
    if cfg.input == "logits":
        model.set_frame_head(frame_head(config, store))
    values = store.logits if cfg.input == "logits" else store.features
    values = model.normalised(values, table.has_image, windows.slices)  # temporal.normalize
    mean, std = input_stats(values, table.has_image, store.path)
    mixes_own_logits = bool(cfg.cross_fit) and cfg.out_of_fold_share < 1
    own_share = 1 - cfg.out_of_fold_share
    if mixes_own_logits:  # standardise by the moments of the mixture the windows will hold
        own_stats = input_stats(
            store.features,
            table.has_image,
            store.path,
            transform=lambda values: model.inputs(torch.from_numpy(values)).numpy(),
        )
        mean, std = mixture_stats((mean, std), own_stats, own_share)
    model.set_feature_stats(mean, std)
    if finetuning is not None:
        return CropWindows(values, windows, std, finetuning, config, device)
    if mixes_own_logits:
        return MixedLogitsWindows(values, windows, std, store.features, model, own_share, device)
    return StoredWindows(values, windows, std, given_logits=cfg.input == "logits")


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


def mix_windows(
    first: torch.Tensor, second: torch.Tensor, share: float, rng: torch.Generator
) -> torch.Tensor:
    """``first`` (B, T, D) with each window replaced by its ``second`` with probability
    ``share``."""
    chosen = torch.rand(first.shape[0], generator=rng) < share
    return torch.where(chosen[:, None, None], second, first)
