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


def temporal_graph(temporal: nn.Module, spec: dict) -> tuple[bytes, dict]:
    """The Temporal Encoder's ONNX bytes and the sidecar's ``temporal`` entry (``spec``: its
    config and feature width)."""
    temporal = temporal.eval()
    window = int(temporal.config.window)
    features = torch.zeros(2, window, temporal.feature_dim)
    mask = torch.zeros(2, window, dtype=torch.bool)
    graph = to_onnx(temporal, (features, mask), ["features", "mask"], ["logits"])
    entry = {
        **spec,
        "sha256": hashlib.sha256(graph).hexdigest(),
        "inputs": {"features": "features", "mask": "mask"},
        "output": "logits",
    }
    return graph, entry


def attach_temporal(onnx_model: str | Path, temporal_run: str | Path, out: str | Path) -> Path:
    """An ONNX model file (e.g. an imported EmotiEffLib model) with the Temporal Encoder a
    stage-2 run trained on its features (``fervid features --model`` it, then ``fervid train
    --stage 2``), as one ONNX model file for ``fervid predict``."""
    from fervid.models.temporal import load_temporal_model
    from fervid.runtime.model_file import load_arrays
    from fervid.zoo.store import resolve_model

    path = resolve_model(onnx_model)
    arrays, meta = load_arrays(path)
    if meta.get("temporal"):
        raise DataError(path.with_suffix(".json"), "this ONNX model has a Temporal Encoder already")
    temporal, temporal_meta = load_temporal_model(temporal_run)
    trained_on = temporal_meta.get("frame_encoder", {})
    if trained_on.get("sha256") != meta["sha256"]:
        raise DataError(
            temporal_run,
            f"this temporal model was trained on features of another frame encoder "
            f"({trained_on.get('backbone')} {str(trained_on.get('sha256'))[:12]}..., not "
            f"{meta['sha256'][:12]}... of {path})",
        )
    if int(temporal_meta["feature_dim"]) != int(meta["frame"]["feature_dim"]):
        raise DataError(temporal_run, "its feature width is not the ONNX model's")
    spec = {
        "config": temporal_meta["config"]["temporal"],
        "feature_dim": int(temporal_meta["feature_dim"]),
        "trained_with_flip": bool(trained_on.get("flip_tta")),
    }
    graph, meta["temporal"] = temporal_graph(temporal, spec)
    arrays = {FRAME_KEY: arrays[FRAME_KEY], TEMPORAL_KEY: np.frombuffer(graph, np.uint8)}
    for key in ("format_version", "fervid_version", "class_names", "sha256"):
        meta.pop(key, None)  # written again for the new file
    meta["source"] = {
        **meta.get("source", {}),
        "frame_model_file": str(path),
        "temporal": str(temporal_run),
    }
    return save_arrays(out, arrays, meta)


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
        graph, meta["temporal"] = temporal_graph(model.temporal, model.meta["temporal"])
        arrays[TEMPORAL_KEY] = np.frombuffer(graph, np.uint8)
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
