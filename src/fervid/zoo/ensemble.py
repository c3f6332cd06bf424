"""Several fervid models used as one (``fervid predict --model A --model B``): every face goes
through each member's frame encoder (each member reads its own crop: fervid's aligned one, or an
ONNX model's detector box), each track through each member's Temporal Encoder (a member without
one contributes its frame probabilities), and the probabilities are averaged.

Members have the interface ``fervid predict`` uses (numpy in and out): fervid's torch models
behind :class:`fervid.zoo.video_model.TorchFaceModel`, ONNX models
(:class:`fervid.zoo.onnx_model.OnnxModel`) as they are."""

from __future__ import annotations

import numpy as np

from fervid.data.sequences import fill_from_neighbours
from fervid.errors import DataError
from fervid.labels import NUM_CLASSES


class EnsembleModel:
    """The mean of ``members``' probabilities. ``frame_outputs`` takes the crops of every crop
    spec the members read (``{spec: crops}``) and returns the mean frame probabilities and, as
    "features", every member's features and frame probabilities side by side, which
    ``track_probabilities`` splits again per member."""

    def __init__(self, members: list, names: list[str]):
        for member, name in zip(members, names, strict=True):
            if not callable(getattr(member, "frame_outputs", None)):
                raise DataError(
                    name, "only fervid frame and video models and ONNX models can be ensembled"
                )
        self.members = members
        self.temporal = any(m.temporal for m in members)
        self.meta = {
            "kind": "ensemble",
            "members": names,
            "trained_on_synthetic": any(m.meta.get("trained_on_synthetic") for m in members),
        }
        self.crop_specs = list(dict.fromkeys(m.crop_spec for m in members))
        self.widths = [m.num_features for m in members]

    def frame_outputs(self, crops: dict, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        outputs = [member.frame_outputs(crops[member.crop_spec], flip) for member in self.members]
        probs = np.mean([p for p, _ in outputs], axis=0)
        widths = [np.zeros((len(probs), 0)) if f is None else f for _, f in outputs]
        features = np.concatenate(
            [np.asarray(f, np.float32) for f in widths] + [p for p, _ in outputs], axis=1
        )
        return probs.astype(np.float32), features

    def track_probabilities(
        self, features: np.ndarray, has_face: np.ndarray, stride: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The mean over members of their per-frame probabilities of one track, each member's
        filled from neighbours where it gave none; every frame gets one."""
        frames = np.arange(len(has_face))
        edges = np.cumsum([0, *self.widths])
        total = np.zeros((len(has_face), NUM_CLASSES), np.float64)
        for k, member in enumerate(self.members):
            if member.temporal:
                mine = features[:, edges[k] : edges[k + 1]]
                probs, known = member.track_probabilities(mine, has_face, stride)
            else:
                start = edges[-1] + NUM_CLASSES * k
                probs = np.asarray(features[:, start : start + NUM_CLASSES], np.float32)
                probs /= np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)  # stored as fp16
                known = has_face
            total += fill_from_neighbours(frames, probs, known)
        return (total / len(self.members)).astype(np.float32), np.ones(len(has_face), bool)
