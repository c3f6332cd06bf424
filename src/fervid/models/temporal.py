"""Stage 2: the Temporal Encoder, a Transformer over windows of per-frame features.

A window is ``T`` consecutive rows of one video in a feature store (rows of a video are sorted
by frame). Windows at a video's end, and a video shorter than ``T``, are padded to ``T``; padding
and frames with no face are masked: they are never attended to, but each still gets a
prediction made from the faces around it (its input is a learned "missing" token plus its
position). Whole videos are predicted with overlapping windows whose per-frame probabilities
are averaged (a frame covered by k windows gets the mean of the k predictions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fervid.config import TemporalConfig
from fervid.errors import DataError
from fervid.labels import NUM_CLASSES
from fervid.models.windows import (  # noqa: F401 - the window helpers, importable from here too
    VideoStandardised,
    WindowAverager,
    Windows,
    make_windows,
    normalised_for,
    predict_windows_with,
    window_arrays,
)
from fervid.runtime.registry import Registry

POSITIONAL_ENCODINGS: Registry[nn.Module] = Registry("positional encoding")
"""The ``temporal.positional`` choices (the config field lists the same names)."""


@POSITIONAL_ENCODINGS.register("sinusoidal")
class SinusoidalPosition(nn.Module):
    """Adds the fixed sine/cosine encoding of Vaswani et al. (2017)."""

    def __init__(self, width: int, max_len: int):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, width, 2) * (-math.log(10_000.0) / width))
        table = torch.zeros(max_len, width + width % 2)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency)
        self.register_buffer("table", table[:, :width], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[: x.shape[1]].to(x.dtype)


@POSITIONAL_ENCODINGS.register("learned")
class LearnedPosition(nn.Module):
    """Adds one learned vector per position (windows are at most ``max_len`` long)."""

    def __init__(self, width: int, max_len: int):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(max_len, width))
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[: x.shape[1]].to(x.dtype)


class TemporalEncoder(nn.Module):
    """Frame features (B, T, D) + padding mask (B, T), True = no face or padding -> logits
    (B, T, 8).

    Features are standardised with ``feature_mean``/``feature_std`` (buffers set from the
    training store, so they travel with the weights), projected to ``width`` (Linear, LayerNorm,
    dropout), masked frames replaced by a learned token, positions added, then a
    ``nn.TransformerEncoder`` whose key padding mask keeps masked frames from influencing others.
    The standardisation is folded into the projection's weights (one small matrix per call
    instead of two passes over every feature).
    """

    def __init__(self, feature_dim: int, config: TemporalConfig, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.config = config
        self.feature_dim = feature_dim
        width = feature_dim
        if config.input == "logits":  # the frame model's head, frozen (set_frame_head)
            self.register_buffer("frame_head_weight", torch.zeros(num_classes, feature_dim))
            self.register_buffer("frame_head_bias", torch.zeros(num_classes))
            width = num_classes
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_std", torch.ones(width))
        self.input = nn.Linear(width, config.width)
        self.input_norm = nn.LayerNorm(config.width)
        self.input_drop = nn.Dropout(config.input_dropout)
        self.missing_token = nn.Parameter(torch.zeros(config.width))
        nn.init.trunc_normal_(self.missing_token, std=0.02)
        self.position = POSITIONAL_ENCODINGS.build(config.positional, config.width, config.window)
        layer = nn.TransformerEncoderLayer(
            config.width,
            config.heads,
            config.ffn_width,
            config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=config.norm_first,
        )
        self.encoder = nn.TransformerEncoder(
            layer,
            config.layers,
            norm=nn.LayerNorm(config.width) if config.norm_first else None,
            enable_nested_tensor=False,  # nested tensors would zero the outputs of masked frames
        )
        self.head = nn.Linear(config.width, num_classes)

    def set_feature_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def normalised(self, features, has_image: np.ndarray, video_slices: list[slice]):
        """A store's ``features`` as this model reads them (:func:`normalised_for`)."""
        return normalised_for(self.config, features, has_image, video_slices)

    def set_frame_head(self, head: nn.Linear) -> None:
        """Copy the frame model's head (``temporal.input: logits``)."""
        self.frame_head_weight.copy_(head.weight.detach())
        self.frame_head_bias.copy_(head.bias.detach())

    def inputs(self, features: torch.Tensor) -> torch.Tensor:
        """What the encoder reads per frame: the features, or the frame head's logits of them."""
        if self.config.input == "logits":
            return F.linear(features, self.frame_head_weight, self.frame_head_bias)
        return features

    def project(self, features: torch.Tensor, given_logits: bool = False) -> torch.Tensor:
        """Linear((inputs - mean) / std), LayerNorm, dropout; ``given_logits``: ``features``
        are already the inputs (frame logits, e.g. out of fold in training)."""
        if not given_logits:
            features = self.inputs(features)
        weight = self.input.weight / self.feature_std
        bias = self.input.bias - weight @ self.feature_mean
        return self.input_drop(self.input_norm(F.linear(features, weight, bias)))

    def forward(
        self, features: torch.Tensor, padding_mask: torch.Tensor, given_logits: bool = False
    ) -> torch.Tensor:
        if features.shape[1] > self.config.window:
            raise ValueError(
                f"window of {features.shape[1]} frames; this model takes at most {self.config.window}"
            )
        x = self.project(features, given_logits)
        x = torch.where(padding_mask.unsqueeze(-1), self.missing_token.to(x.dtype), x)
        x = self.position(x)
        # In a window with no face at all nothing may be attended to, and a softmax over no keys
        # is NaN: there, let the (identical) missing tokens attend to each other instead.
        attend_mask = padding_mask & ~padding_mask.all(dim=1, keepdim=True)
        return self.head(self.encoder(x, src_key_padding_mask=attend_mask))


# ----------------------------------------------------------------------------------------------
# Windows over the rows of a feature store


@dataclass
class WindowBatch:
    features: torch.Tensor
    """float32 (B, T, D); zeros at padding."""
    mask: torch.Tensor
    """bool (B, T): True = padding or a frame with no face."""
    labels: torch.Tensor
    """int64 (B, T): class, or -1 for unannotated frames and padding."""
    real: np.ndarray
    """bool (B, T): a frame of the video (not padding)."""
    rows: np.ndarray
    """int64 (B, T): store row of each position (padding repeats the window's first row)."""


def gather_windows(
    features: np.ndarray,
    has_image: np.ndarray,
    labels: np.ndarray | None,
    windows: Windows,
    chosen: np.ndarray,
    size: int,
) -> WindowBatch:
    """The windows ``chosen`` (indices into ``windows``) read from (memory-mapped) arrays."""
    values, mask, real, rows = window_arrays(features, has_image, windows, chosen, size)
    if labels is None:
        targets = np.full(rows.shape, -1, dtype=np.int64)
    else:
        targets = np.where(real, labels[rows], -1).astype(np.int64)
    return WindowBatch(
        torch.from_numpy(values), torch.from_numpy(mask), torch.from_numpy(targets), real, rows
    )


@torch.no_grad()
def predict_windows(
    model: TemporalEncoder,
    features: np.ndarray,
    has_image: np.ndarray,
    video_slices: list[slice],
    batch_size: int = 64,
    stride: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row probabilities (rows x 8) and a ``known`` mask for whole videos.

    Windows of ``model.config.window`` rows every ``stride`` (default ``eval_stride``, else
    T/2) rows; each row gets the mean over the windows covering it. With ``missing="context"``
    rows with no face are predicted from the faces in their windows; with ``"neighbours"`` they
    are left unknown (``evaluate.prediction_table`` interpolates them). Rows of windows with no
    face at all are unknown either way (a video with no face ends up uniform). Runs on the
    device of the model's parameters."""
    device = model.head.weight.device

    def run(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        logits = model(torch.from_numpy(values).to(device), torch.from_numpy(mask).to(device))
        return logits.float().softmax(dim=-1).cpu().numpy()

    def batches(starts):
        return tqdm(starts, desc="temporal", unit="batch", leave=False, disable=not progress)

    was_training = model.training
    model.eval()
    try:
        return predict_windows_with(
            run, model.config, features, has_image, video_slices, batch_size, stride, batches
        )
    finally:
        model.train(was_training)


def load_temporal_model(path: str | Path) -> tuple[TemporalEncoder, dict]:
    """A temporal model written by stage-2 training, and its sidecar metadata (which records
    the feature width and the frame encoder whose features it was trained on)."""
    from fervid.config import from_dict
    from fervid.runtime.checkpoint import load_weights

    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    state, meta = load_weights(path)
    if meta.get("kind") != "temporal":
        raise DataError(
            path.with_suffix(".json"), f"not a temporal model (kind {meta.get('kind')!r})"
        )
    config = from_dict(TemporalConfig, meta["config"]["temporal"], "temporal")
    model = TemporalEncoder(int(meta["feature_dim"]), config)
    model.load_state_dict(state)
    model.eval()
    return model, meta
