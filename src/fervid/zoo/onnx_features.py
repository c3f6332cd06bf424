"""An ONNX model (:mod:`fervid.zoo.onnx_model`) as stage 2's frame encoder: ``fervid features
--model`` with an imported EmotiEffLib / HSEmotion model (or any ONNX model file) writes a store
whose rows are, per face:

- ``features``: the graph's penultimate features when the import named them
  (``--features-output``), else its logits in the source's own class order;
- ``logits``: the log of the model's ABAW probabilities (its source classes mapped onto the 8
  ABAW classes, :func:`fervid.zoo.onnx_model.to_abaw`; a class with no source counterpart gets
  log(1e-12)), so that the store's frame-model baseline reads the ABAW classes.

The Temporal Encoder then trains on the ``features`` (``temporal.input: features``): the recipe
the HSEmotion ABAW entries used, frame outputs and features of an AffectNet model smoothed over
time (docs/recipes/onnx-temporal.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fervid.zoo.onnx_model import KIND, OnnxModel, load_onnx_model, softmax, to_abaw

LOG_FLOOR = 1e-12


class OnnxFrameEncoder:
    """What ``extract_features`` needs of a frame encoder, from an ONNX model: the crop size to
    load (the network's input size), the feature width, and ``encode(uint8 images, flip)``."""

    def __init__(self, model: OnnxModel, path: Path):
        self.model = model
        self.input_size = int(model.input["size"])
        self.num_features = model.num_features
        preset = model.meta.get("preset")
        self.identity = {
            "sha256": model.meta["sha256"],
            "backbone": f"onnx:{preset or Path(path).stem}",
            "input_size": self.input_size,
            "source": str(path),
        }

    def to(self, device) -> OnnxFrameEncoder:
        return self  # onnxruntime's CPU session

    def eval(self) -> OnnxFrameEncoder:
        return self

    def encode(self, images, flip: bool = False):
        """(features, ABAW log-probabilities) as torch tensors for uint8 images (B, 3, S, S)."""
        import torch

        crops = images.cpu().numpy()
        logits, features = self.model.logits_and_features(crops, flip)
        probs = to_abaw(softmax(logits), self.model.abaw_index)
        scores = np.log(np.maximum(probs, LOG_FLOOR)).astype(np.float32)
        return torch.from_numpy(features), torch.from_numpy(scores)


def onnx_encoder(model) -> OnnxFrameEncoder | None:
    """The ONNX frame encoder of ``model`` when it names an ONNX model file, else None (a
    torch frame model, a stage-1 run or frame model file)."""
    from fervid.zoo.store import read_sidecar, resolve_model

    if not isinstance(model, (str, Path)):
        return None
    try:
        path = resolve_model(model)
    except Exception:  # noqa: BLE001 - not a model fervid resolves: the torch path says why
        return None
    if read_sidecar(path).get("kind") != KIND:
        return None
    return OnnxFrameEncoder(load_onnx_model(path), path)
