"""Give each face a track id that stays the same from frame to frame.

``FaceTracker.update(boxes)`` matches this frame's boxes to the live tracks by IoU with the
track's last box (greedy, best pair first; pairs below ``min_iou`` never match), optionally
mixed with the cosine similarity of appearance vectors (``appearance_weight``; e.g.
``colour_histograms`` of the aligned crops, or embeddings from a network). A track that finds no
box keeps its last box for up to ``max_missed`` frames, so a detection missing for a few frames
does not change the id. Unmatched boxes start new tracks. A face that is gone longer than that
comes back with a new id; two faces that do not cross never swap ids, because a box only ever
matches a track it overlaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fervid.video.detect import box_iou


@dataclass
class Track:
    """One face over time: its id, last box, frames since it was last seen, frames seen."""

    id: int
    box: np.ndarray
    missed: int = 0
    hits: int = 1
    appearance: np.ndarray | None = None
    first_frame: int = 0
    last_frame: int = 0
    centre_x_sum: float = field(default=0.0, repr=False)

    @property
    def mean_centre_x(self) -> float:
        """Mean horizontal box centre over the frames the track was seen in."""
        return self.centre_x_sum / self.hits


class FaceTracker:
    """IoU tracker with a short memory. ``min_iou``: least overlap for a box to continue a
    track. ``max_missed``: frames a track survives unseen. ``appearance_weight`` in [0, 1]: the
    match score is ``(1 - w) * IoU + w * cosine`` when appearance vectors are passed in;
    ``appearance_momentum``: how slowly a track's appearance follows new observations."""

    def __init__(
        self,
        min_iou: float = 0.3,
        max_missed: int = 10,
        appearance_weight: float = 0.0,
        appearance_momentum: float = 0.9,
    ):
        if not 0.0 <= appearance_weight <= 1.0:
            raise ValueError(f"appearance_weight must be within [0, 1], got {appearance_weight}")
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.appearance_weight = appearance_weight
        self.appearance_momentum = appearance_momentum
        self.live: list[Track] = []
        self.finished: list[Track] = []
        self.frame = -1
        self._next_id = 1

    def update(self, boxes: np.ndarray, appearance: np.ndarray | None = None) -> np.ndarray:
        """Track ids (int64, one per row of ``boxes`` (N, 4+)) for the next frame."""
        self.frame += 1
        boxes = np.asarray(boxes, np.float64)
        boxes = boxes[:, :4] if boxes.size else np.zeros((0, 4))
        features = _unit_rows(appearance) if appearance is not None else None
        ids = np.zeros(len(boxes), np.int64)
        matched_tracks: set[int] = set()
        for box_index, track_index in self._match(boxes, features):
            track = self.live[track_index]
            self._observe(
                track, boxes[box_index], None if features is None else features[box_index]
            )
            track.missed = 0
            track.hits += 1
            ids[box_index] = track.id
            matched_tracks.add(track_index)
        for track_index, track in enumerate(self.live):
            if track_index not in matched_tracks:
                track.missed += 1
        for box_index in np.flatnonzero(ids == 0):
            track = Track(self._next_id, boxes[box_index], first_frame=self.frame)
            self._next_id += 1
            self._observe(
                track, boxes[box_index], None if features is None else features[box_index]
            )
            self.live.append(track)
            ids[box_index] = track.id
        self.finished += [t for t in self.live if t.missed > self.max_missed]
        self.live = [t for t in self.live if t.missed <= self.max_missed]
        return ids

    def tracks(self) -> list[Track]:
        """Every track so far, finished or live, by id."""
        return sorted(self.finished + self.live, key=lambda t: t.id)

    def _match(self, boxes: np.ndarray, features: np.ndarray | None) -> list[tuple[int, int]]:
        if not len(boxes) or not self.live:
            return []
        overlap = box_iou(boxes, np.stack([t.box for t in self.live]))
        score = overlap.copy()
        weight = self.appearance_weight
        if features is not None and weight > 0:
            for track_index, track in enumerate(self.live):
                if track.appearance is not None:
                    cosine = features @ track.appearance
                    score[:, track_index] = (1 - weight) * overlap[:, track_index] + weight * cosine
        score[overlap < self.min_iou] = -np.inf
        pairs = []
        while np.isfinite(score).any():
            box_index, track_index = np.unravel_index(np.argmax(score), score.shape)
            pairs.append((int(box_index), int(track_index)))
            score[box_index, :] = -np.inf
            score[:, track_index] = -np.inf
        return pairs

    def _observe(self, track: Track, box: np.ndarray, feature: np.ndarray | None) -> None:
        track.box = box.copy()
        track.last_frame = self.frame
        track.centre_x_sum += float(box[0] + box[2]) / 2
        if feature is not None:
            if track.appearance is None:
                track.appearance = feature
            else:
                mixed = self.appearance_momentum * track.appearance
                track.appearance = _unit_rows(mixed + (1 - self.appearance_momentum) * feature)


def colour_histograms(crops: np.ndarray, bins: int = 4) -> np.ndarray:
    """A tiny appearance vector per crop: the normalised joint RGB histogram (bins**3 values)
    of uint8 crops (N, 3, H, W). Cheap, and enough to tell differently dressed faces apart."""
    crops = np.asarray(crops)
    quantised = (crops.astype(np.int64) * bins) // 256
    codes = (quantised[:, 0] * bins + quantised[:, 1]) * bins + quantised[:, 2]
    counts = np.stack([np.bincount(c.ravel(), minlength=bins**3) for c in codes])
    return counts.astype(np.float32) / max(1, codes[0].size)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
