"""Per-frame signals along one video's frame axis: filling frames that have no value from their
neighbours, and the centred moving average. Evaluation, the stage-2 baselines and predict all
use these two, so they live here, below every one of them."""

from __future__ import annotations

import numpy as np


def fill_from_neighbours(frames: np.ndarray, probs: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Probabilities of unknown frames of one video, interpolated linearly in frame number
    between the nearest known frames (nearest one at the ends); uniform if none is known."""
    filled = probs.copy()
    if known.all():
        return filled
    if not known.any():
        filled[:] = 1.0 / probs.shape[1]
        return filled
    for k in range(probs.shape[1]):
        filled[~known, k] = np.interp(frames[~known], frames[known], probs[known, k])
    return filled


def moving_average(
    probs: np.ndarray, window: int, known: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Centred moving average of one sequence over ``window`` rows (odd windows are symmetric;
    near the ends the window is cut). Only ``known`` rows (default: all) are averaged.

    Returns the float32 averages and which rows got one: a row whose window holds no known row
    gets zeros and ``False``."""
    if window < 1:
        raise ValueError(f"moving-average window must be positive, not {window}")
    weights = np.ones(len(probs)) if known is None else np.asarray(known, dtype=np.float64)
    values = probs.astype(np.float64) * weights[:, None]
    summed = np.concatenate([np.zeros((1, probs.shape[1])), np.cumsum(values, axis=0)])
    seen = np.concatenate([[0.0], np.cumsum(weights)])
    index = np.arange(len(probs))
    low = np.maximum(index - (window - 1) // 2, 0)
    high = np.minimum(index + window // 2 + 1, len(probs))
    count = seen[high] - seen[low]
    averaged = (summed[high] - summed[low]) / np.maximum(count, 1)[:, None]
    return averaged.astype(np.float32), count > 0
