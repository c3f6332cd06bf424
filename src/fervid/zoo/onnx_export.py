"""``fervid export --onnx``: a fervid model (frame encoder and, when there is one, Temporal
Encoder) as a model file of kind ``onnx`` (:mod:`fervid.zoo.onnx_model`), which ``fervid
predict`` runs with onnxruntime, without importing torch.

The frame graph takes the normalised input (B, 3, S, S) and gives ``logits`` (B, 8) and
``features`` (B, F); the sidecar holds the normalisation (the model's mean/std) and the resize
(bilinear with antialiasing, as ``FrameModel.prepare``), so the numbers match the torch path.
The temporal graph takes ``features`` (B, T, F) and ``mask`` (B, T) of T = the model's window
and gives ``logits`` (B, T, 8); predict builds the windows in numpy as the torch path does.
Needs the ``onnx`` package (``pip install 'fervid[export]'``).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fervid.errors import DataError, FervidError
from fervid.labels import CLASS_NAMES
from fervid.runtime.model_file import save_arrays
from fervid.zoo.onnx_model import FRAME_KEY, KIND, TEMPORAL_KEY
from fervid.zoo.video_model import GEOMETRY_SIZE, VideoModel

OPSET = 17


class FrameGraph(nn.Module):
    """A frame model's normalised input -> (logits, features)."""

    def __init__(self, frame: nn.Module):
        super().__init__()
        self.frame = frame

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.frame.features(images)
        return self.frame.head(features), features


def to_onnx(module: nn.Module, args: tuple, inputs: list[str], outputs: list[str]) -> bytes:
    """ONNX bytes of ``module`` (TorchScript-based exporter, batch axis dynamic)."""
    try:
        import onnx  # noqa: F401 - torch.onnx needs it
    except ImportError:
        raise FervidError(
            "exporting to ONNX needs the onnx package: pip install 'fervid[export]'"
        ) from None
    buffer = io.BytesIO()
    axes = {name: {0: "batch"} for name in inputs + outputs}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused encoder layer has no ONNX op
    try:
        with warnings.catch_warnings():
            # the window-length check and given_logits are constants of the traced graph (windows
            # are always the model's T)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                module.eval(),
                args,
                buffer,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return buffer.getvalue()


def export_onnx_model(model: VideoModel, out: str | Path, source: dict | None = None) -> Path:
    """Write ``model`` (a :class:`VideoModel`) as an ONNX model file ``out``."""
    frame = model.frame.eval()
    size = int(frame.input_size)
    example = torch.zeros(2, 3, size, size)
    frame_graph = to_onnx(FrameGraph(frame), (example,), ["input"], ["logits", "features"])
    arrays = {FRAME_KEY: np.frombuffer(frame_graph, np.uint8)}
    meta = {
        "kind": KIND,
        "trained_on_synthetic": bool(model.meta.get("trained_on_synthetic")),
        "source": source or {},
        "frame": {
            "sha256": hashlib.sha256(frame_graph).hexdigest(),
            "input": {
                "name": "input",
                "size": size,
                "layout": "NCHW",
                "colour": "RGB",
                "scale": "x / 255",
                "mean": frame.mean.flatten().tolist(),
                "std": frame.std.flatten().tolist(),
                "resize": {"filter": "bilinear", "antialias": True, "round": False},
            },
            "crop": {"type": "aligned", "size": GEOMETRY_SIZE},
            "outputs": {"logits": "logits", "features": "features", "logit_columns": 8},
            "feature_dim": int(frame.num_features),
            "classes": {
                "source": list(CLASS_NAMES),
                "abaw_index": list(range(len(CLASS_NAMES))),
                "to_abaw": {name: name for name in CLASS_NAMES},
                "contempt": None,
            },
        },
        "temporal": None,
    }
    if model.temporal is not None:
        temporal = model.temporal.eval()
        window = int(temporal.config.window)
        features = torch.zeros(2, window, temporal.feature_dim)
        mask = torch.zeros(2, window, dtype=torch.bool)
        temporal_graph = to_onnx(temporal, (features, mask), ["features", "mask"], ["logits"])
        arrays[TEMPORAL_KEY] = np.frombuffer(temporal_graph, np.uint8)
        meta["temporal"] = {
            **model.meta["temporal"],
            "sha256": hashlib.sha256(temporal_graph).hexdigest(),
            "inputs": {"features": "features", "mask": "mask"},
            "output": "logits",
        }
    return save_arrays(out, arrays, meta)


def export_onnx(model_file: str | Path, out: str | Path, source: dict | None = None) -> Path:
    """An ONNX model file from a fervid model file (kind ``video`` or ``frame``); ``source``:
    what the sidecar records it was made from (default: that file and its sha256)."""
    from fervid.zoo.store import load_model, read_sidecar, resolve_model
    from fervid.zoo.video_model import as_video_model

    path = resolve_model(model_file)
    sidecar = read_sidecar(path)
    if sidecar.get("kind") not in ("video", "frame"):
        raise DataError(
            path.with_suffix(".json"),
            f"only fervid's own models export to ONNX (kind video or frame, not {sidecar.get('kind')!r})",
        )
    model = as_video_model(load_model(path), sidecar)
    source = source or {"file": str(path), "sha256": sidecar.get("sha256")}
    return export_onnx_model(model, out, source)
