"""Windows over the rows of a feature store, without torch: which windows cover a video, the
per-video standardisation, the arrays of a batch of windows and the per-row mean over the windows
covering each row. :mod:`fervid.models.temporal` runs the Temporal Encoder on them with torch,
:mod:`fervid.zoo.onnx_model` with onnxruntime; both through :func:`predict_windows_with`, so the
two give the same rows the same windows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fervid.errors import ConfigError
from fervid.labels import NUM_CLASSES

if TYPE_CHECKING:
    from fervid.config import TemporalConfig


@dataclass
class Windows:
    starts: np.ndarray
    """int64, first row of each window."""
    lengths: np.ndarray
    """int64, rows of the video in each window (<= T); the rest of the window is padding."""

    def __len__(self) -> int:
        return len(self.starts)


def make_windows(video_slices: list[slice], size: int, stride: int) -> Windows:
    """Windows of ``size`` rows every ``stride`` rows within each video, the first at the video's
    first row, the last the first one reaching its end (padded past it). A video shorter than
    ``size`` is one padded window. Windows never cross videos."""
    if size < 1 or stride < 1:
        raise ConfigError(f"window size and stride must be positive (got {size}, {stride})")
    if stride > size:
        raise ConfigError(
            f"window stride {stride} is larger than the window ({size}): the frames between "
            "two windows would be skipped"
        )
    starts, lengths = [], []
    for rows in video_slices:
        count = rows.stop - rows.start
        if count <= 0:
            continue
        offsets = np.arange(1 + max(0, -(-(count - size) // stride)), dtype=np.int64) * stride
        starts.append(rows.start + offsets)
        lengths.append(np.minimum(size, count - offsets))
    if not starts:
        return Windows(np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Windows(np.concatenate(starts), np.concatenate(lengths))


class VideoStandardised:
    """Rows of a feature array standardised per video: minus the mean of that video's frames with
    a face, over their std (``temporal.normalize: video``). It takes out what stays constant
    within a video (who the person is, the camera, the light) and keeps what changes (the
    expression), so the windows of new people look like the training ones (docs/temporal.md).
    Indexed by row arrays like the array it wraps; rows with no face stay zero."""

    def __init__(self, features: np.ndarray, has_image: np.ndarray, video_slices: list[slice]):
        self.features, self.has_image = features, has_image
        self.shape = features.shape
        self.video = np.zeros(len(features), dtype=np.int64)
        self.mean = np.zeros((len(video_slices), features.shape[1]), dtype=np.float32)
        self.std = np.ones_like(self.mean)
        for index, rows in enumerate(video_slices):
            self.video[rows] = index
            count, total, squares = 0, 0.0, 0.0
            for start in range(rows.start, rows.stop, 8192):  # bounded memory on long videos
                chunk = slice(start, min(start + 8192, rows.stop))
                faces = np.asarray(features[chunk], dtype=np.float64)[has_image[chunk]]
                count += len(faces)
                total, squares = total + faces.sum(axis=0), squares + (faces**2).sum(axis=0)
            if count:
                mean = total / count
                self.mean[index] = mean
                self.std[index] = np.maximum(
                    np.sqrt(np.maximum(squares / count - mean**2, 0)), 1e-3
                )

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        values = np.asarray(self.features[rows], dtype=np.float32)
        video = self.video[rows]
        values = (values - self.mean[video]) / self.std[video]
        return values * self.has_image[rows][..., None]


def normalised_for(config: TemporalConfig, features, has_image, video_slices: list[slice]):
    """``features`` as a Temporal Encoder of ``config`` reads them: per video standardised
    (:class:`VideoStandardised`) with ``normalize: video``, as they are otherwise."""
    if config.normalize == "video":
        return VideoStandardised(features, has_image, video_slices)
    return features


class WindowAverager:
    """Per-row mean of the probabilities of every window position that covers the row."""

    def __init__(self, rows: int, classes: int = NUM_CLASSES):
        self.sums = np.zeros((rows, classes), dtype=np.float64)
        self.counts = np.zeros(rows, dtype=np.int64)

    def add(self, probs: np.ndarray, rows: np.ndarray, use: np.ndarray) -> None:
        """``probs`` (B, T, C) of windows whose positions are store ``rows`` (B, T); only
        positions where ``use`` is true count."""
        np.add.at(self.sums, rows[use], probs[use])
        np.add.at(self.counts, rows[use], 1)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities float32, known): rows no window predicted are zeros and not known."""
        known = self.counts > 0
        probs = self.sums / np.maximum(self.counts, 1)[:, None]
        return probs.astype(np.float32), known


def window_arrays(
    features, has_image: np.ndarray, windows: Windows, chosen: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features float32 (B, T, D) zero at padding, mask bool (B, T) True = padding or no face,
    real bool (B, T), rows int64 (B, T): padding repeats the window's first row) of the windows
    ``chosen`` (indices into ``windows``), read from (memory-mapped) arrays."""
    starts = windows.starts[chosen][:, None]
    offsets = np.arange(size)[None, :]
    real = offsets < windows.lengths[chosen][:, None]
    rows = np.where(real, starts + offsets, starts)
    values = np.asarray(features[rows.ravel()], dtype=np.float32).reshape(*rows.shape, -1)
    values[~real] = 0.0
    mask = ~(real & has_image[rows])
    return values, mask, real, rows


def predict_windows_with(
    run: Callable[[np.ndarray, np.ndarray], np.ndarray],
    config: TemporalConfig,
    features: np.ndarray,
    has_image: np.ndarray,
    video_slices: list[slice],
    batch_size: int = 64,
    stride: int | None = None,
    batches=iter,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row probabilities (rows x classes) and a ``known`` mask for whole videos, ``run``
    mapping a batch of windows (features (B, T, D), mask (B, T)) to probabilities (B, T, C).

    Windows of ``config.window`` rows every ``stride`` (default ``eval_stride``, else T/2) rows;
    each row gets the mean over the windows covering it. With ``missing="context"`` rows with no
    face are predicted from the faces in their windows; with ``"neighbours"`` they are left
    unknown. Rows of windows with no face at all are unknown either way. ``batches`` wraps the
    batch starts (a progress bar)."""
    size = config.window
    stride = stride or config.eval_stride or max(size // 2, 1)
    windows = make_windows(video_slices, size, stride)
    features = normalised_for(config, features, has_image, video_slices)
    averager = None
    for start in batches(range(0, len(windows), batch_size)):
        chosen = np.arange(start, min(start + batch_size, len(windows)))
        values, mask, real, rows = window_arrays(features, has_image, windows, chosen, size)
        probs = run(values, mask)
        averager = averager or WindowAverager(len(has_image), probs.shape[-1])
        use = real & ~mask.all(axis=1, keepdims=True)
        if config.missing == "neighbours":
            use &= ~mask
        averager.add(probs, rows, use)
    return (averager or WindowAverager(len(has_image))).result()
