"""The faces of each track while a video is read: detections and frame-model probabilities in
memory, features in a temporary file per track.

A track's *frame axis* is every source frame from its first detection to its last, step 1.
With ``--every N`` or a missed detection, some frames of the axis have no face: they are the
gaps that the Temporal Encoder sees masked and that the per-frame table fills."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class TrackDetections:
    frames: np.ndarray  # 0-based source frame indices
    times: np.ndarray
    geometry: np.ndarray  # (n, 15): box, score, landmarks
    probs: np.ndarray  # (n, 8) frame-model probabilities

    @property
    def axis(self) -> np.ndarray:
        """The track's source frame indices, first to last, step 1."""
        return np.arange(self.frames[0], self.frames[-1] + 1)

    @property
    def detected(self) -> np.ndarray:
        """Bool mask over ``axis``: the frames that were processed and had this face."""
        mask = np.zeros(self.frames[-1] - self.frames[0] + 1, bool)
        mask[self.frames - self.frames[0]] = True
        return mask

    def on_axis(self, values: np.ndarray) -> np.ndarray:
        """``values`` (one row per detection) placed on ``axis``; zeros elsewhere, same dtype."""
        length = self.frames[-1] - self.frames[0] + 1
        placed = np.zeros((length, *values.shape[1:]), values.dtype)
        placed[self.frames - self.frames[0]] = values
        return placed


class TrackedFaces:
    """Per-track detections and probabilities in memory (small), features in a temporary file
    per track (so a long video does not grow memory by its features)."""

    def __init__(self, scratch: Path):
        self.scratch = scratch
        self._rows: dict[int, list] = {}
        self._files: dict[int, object] = {}
        self._dim: int | None = None

    def add(
        self,
        track: int,
        frame,
        detection: np.ndarray,
        probs: np.ndarray,
        features: np.ndarray | None,
    ) -> None:
        self._rows.setdefault(track, []).append(
            (frame.index, frame.time, detection.astype(np.float32), probs)
        )
        if features is not None:
            if track not in self._files:
                self._files[track] = open(self.scratch / f"track{track}.f16", "wb")  # noqa: SIM115
            self._dim = len(features)
            self._files[track].write(features.astype(np.float16).tobytes())

    def tracks(self) -> dict[int, TrackDetections]:
        result = {}
        for track, rows in sorted(self._rows.items()):
            frames, times, geometry, probs = zip(*rows, strict=True)
            result[track] = TrackDetections(
                np.array(frames), np.array(times), np.stack(geometry), np.stack(probs)
            )
        return result

    def features(self, track: int) -> np.ndarray:
        handle = self._files[track]
        handle.flush()
        return np.memmap(handle.name, dtype=np.float16, mode="r").reshape(-1, self._dim)

    def features_on_axis(self, track: int, detections: TrackDetections) -> np.ndarray:
        """The track's float16 features on its frame axis, zeros on frames without a face: the
        memory-mapped file itself when there is no gap, else one float16 array of the axis
        (an hour at 25 fps and 512 features is 92 MB; nothing wider is made)."""
        features = self.features(track)
        if len(features) == len(detections.axis):
            return features
        return detections.on_axis(features)

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
