"""Small ONNX files with the signatures of EmotiEffLib / HSEmotion's expression models (input
float32 (batch, 3, S, S), S = 224 or 260; output (batch, 8) or (batch, 7) logits), made from a
tiny torch network with ``torch.onnx.export``, and onnxruntime run on them directly."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn


class TinyExpressionNet(nn.Module):
    """conv -> ReLU -> global mean -> linear: a (B, 3, S, S) image to class logits (and, with
    ``features``, the pooled vector as a second output)."""

    def __init__(self, classes: int, features: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 5, stride=4)
        self.head = nn.Linear(6, classes)
        self.features = features

    def forward(self, images):
        pooled = torch.relu(self.conv(images)).mean(dim=(2, 3))
        logits = self.head(pooled) * 3
        return (logits, pooled) if self.features else logits


class RankTwoNet(nn.Module):
    """A graph whose input is (batch, features): not an image model."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(12, 8)

    def forward(self, values):
        return self.head(values)


def export(module: nn.Module, example: torch.Tensor, path: Path, outputs: list[str]) -> Path:
    buffer = io.BytesIO()
    torch.manual_seed(0)
    torch.onnx.export(
        module.eval(),
        (example,),
        buffer,
        input_names=["input"],
        output_names=outputs,
        dynamic_axes={name: {0: "batch"} for name in ["input", *outputs]},
        opset_version=17,
        dynamo=False,
    )
    path.write_bytes(buffer.getvalue())
    return path


def expression_onnx(
    path: Path, size: int, classes: int, features: bool = False, seed: int = 0
) -> Path:
    torch.manual_seed(seed)
    net = TinyExpressionNet(classes, features)
    outputs = ["logits", "features"] if features else ["logits"]
    return export(net, torch.zeros(2, 3, size, size), path, outputs)


def rank_two_onnx(path: Path) -> Path:
    return export(RankTwoNet(), torch.zeros(2, 12), path, ["logits"])


def run_directly(path: Path, inputs: np.ndarray, output: str = "logits") -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([output], {"input": inputs.astype(np.float32)})[0]


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)
