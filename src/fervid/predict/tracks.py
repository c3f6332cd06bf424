"""The faces of each track while a video is read: detections and frame-model probabilities in
memory, features in a temporary file per track."""

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

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
