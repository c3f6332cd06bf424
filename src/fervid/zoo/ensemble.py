"""Several fervid models used as one (``fervid predict --model A --model B``): every face goes
through each member's frame encoder, each track through each member's Temporal Encoder (a member
without one contributes its frame probabilities), and the probabilities are averaged."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fervid.data.sequences import fill_from_neighbours
from fervid.errors import DataError
from fervid.labels import NUM_CLASSES
from fervid.zoo.video_model import VideoModel


class EnsembleModel(VideoModel):
    """The mean of ``members``' probabilities. ``frame_outputs`` returns the mean frame
    probabilities and, as "features", every member's features and frame probabilities side by
    side, which ``track_probabilities`` splits again per member."""

    def __init__(self, members: list[nn.Module], names: list[str]):
        for member, name in zip(members, names, strict=True):
            if not isinstance(member, VideoModel):
                raise DataError(name, "only fervid frame and video models can be ensembled")
        temporal = [m.temporal for m in members if m.temporal is not None]
        meta = {
            "kind": "ensemble",
            "members": names,
            "trained_on_synthetic": any(m.meta.get("trained_on_synthetic") for m in members),
        }
        super().__init__(None, nn.ModuleList(temporal) if temporal else None, meta)
        self.members = nn.ModuleList(members)
        self.widths = [m.frame.num_features for m in members]

    @torch.no_grad()
    def frame_outputs(
        self, crops: torch.Tensor, flip: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [member.frame_outputs(crops, flip) for member in self.members]
        probs = torch.stack([p for p, _ in outputs]).mean(dim=0)
        features = torch.cat([f.float() for _, f in outputs] + [p for p, _ in outputs], dim=1)
        return probs, features

    def track_probabilities(
        self, features: np.ndarray, has_face: np.ndarray, stride: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The mean over members of their per-frame probabilities of one track, each member's
        filled from neighbours where it gave none; every frame gets one."""
        frames = np.arange(len(has_face))
        edges = np.cumsum([0, *self.widths])
        total = np.zeros((len(has_face), NUM_CLASSES), np.float64)
        for k, member in enumerate(self.members):
            if member.temporal is not None:
                mine = features[:, edges[k] : edges[k + 1]]
                probs, known = member.track_probabilities(mine, has_face, stride)
            else:
                start = edges[-1] + NUM_CLASSES * k
                probs = np.asarray(features[:, start : start + NUM_CLASSES], np.float32)
                probs /= np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)  # stored as fp16
                known = has_face
            total += fill_from_neighbours(frames, probs, known)
        return (total / len(self.members)).astype(np.float32), np.ones(len(has_face), bool)
