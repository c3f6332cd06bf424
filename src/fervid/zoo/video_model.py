"""A packaged fervid model for ``fervid predict``: the stage-1 frame encoder and, when stage 2
was trained, the Temporal Encoder, in one model file (safetensors + JSON sidecar with both
configs, the class names, the input geometry and the sha256), written by ``fervid export``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fervid.config import ModelConfig, TemporalConfig, from_dict
from fervid.errors import DataError
from fervid.models.frame import FrameModel
from fervid.models.temporal import TemporalEncoder, load_temporal_model, predict_windows
from fervid.runtime.checkpoint import load_weights, save_weights

log = logging.getLogger("fervid")

KIND = "video"
GEOMETRY_SIZE = 112
GEOMETRY = {
    "crop_size": GEOMETRY_SIZE,
    "alignment": "5-point similarity onto the ArcFace 112x112 template",
}


class VideoModel(nn.Module):
    """Frame encoder (+ optional Temporal Encoder). ``frame_outputs`` gives per-face
    probabilities and features; ``track_probabilities`` turns one track's features into
    per-frame probabilities with the temporal model."""

    def __init__(self, frame: FrameModel, temporal: TemporalEncoder | None, meta: dict):
        super().__init__()
        self.frame = frame
        self.temporal = temporal
        self.meta = meta

    @torch.no_grad()
    def frame_outputs(
        self, crops: torch.Tensor, flip: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-face probabilities and features of uint8 crops; ``flip``: the mean over each crop
        and its mirror image (``FrameModel.embed``)."""
        features = self.frame.embed(self.frame.prepare(crops), flip)
        return self.frame.head(features).float().softmax(dim=1), features

    @torch.no_grad()
    def probabilities(self, crops: torch.Tensor) -> torch.Tensor:
        return self.frame_outputs(crops)[0]

    def track_probabilities(
        self, features: np.ndarray, has_face: np.ndarray, stride: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame probabilities of one track (rows = consecutive frames; rows without a
        face are predicted from context) and a mask of rows that got one."""
        assert self.temporal is not None
        return predict_windows(
            self.temporal, features, has_face, [slice(0, len(has_face))], stride=stride
        )


def trained_on_synthetic(config: dict) -> bool:
    """Whether a run's data root is the synthetic dataset (it holds ``synth.json``)."""
    root = (config.get("data") or {}).get("root")
    return bool(root) and (Path(root) / "synth.json").exists()


def export_model(
    frame_model: str | Path | None, out: str | Path, temporal_model: str | Path | None = None
) -> Path:
    """One model file from a stage-1 run (or frame model file) and, optionally, a stage-2 run.
    A stage-2 run that fine-tuned the encoder brings its own (``encoder.safetensors``): it is
    the default frame model then, and the only one that fits."""
    temporal, temporal_meta = (None, None)
    if temporal_model is not None:
        temporal, temporal_meta = load_temporal_model(temporal_model)
        finetuned = temporal_meta.get("finetuned_encoder")
        if frame_model is None and finetuned:
            frame_model = _model_path(temporal_model).parent / finetuned
    if frame_model is None:
        raise DataError(
            _model_path(temporal_model) if temporal_model else Path(out),
            "no frame model given (--frame): a stage-1 run or frame model file",
        )
    frame_path = _model_path(frame_model)
    frame_state, frame_meta = load_weights(frame_path)
    if frame_meta.get("kind") != "frame":
        raise DataError(frame_path.with_suffix(".json"), "not a stage-1 frame model")
    state = {f"frame.{k}": v for k, v in frame_state.items()}
    meta = {
        "kind": KIND,
        "frame": {"config": frame_meta["config"], "sha256": frame_meta["sha256"]},
        "geometry": {**GEOMETRY, "input_size": frame_meta["config"]["model"]["input_size"]},
        "trained_on_synthetic": trained_on_synthetic(frame_meta["config"]),
        "temporal": None,
    }
    if temporal is not None:
        trained_on = temporal_meta["frame_encoder"]
        if trained_on["sha256"] != frame_meta["sha256"]:
            hint = (
                f"; it fine-tuned its own: --frame {_model_path(temporal_model).parent / finetuned}"
                if finetuned
                else ""
            )
            raise DataError(
                _model_path(temporal_model),
                "this temporal model was trained on features of another frame model "
                f"({trained_on['backbone']} {trained_on['sha256'][:12]}..., not "
                f"{frame_meta['sha256'][:12]}... of {frame_path}){hint}",
            )
        state.update({f"temporal.{k}": v for k, v in temporal.state_dict().items()})
        meta["temporal"] = {
            "config": temporal_meta["config"]["temporal"],
            "feature_dim": temporal_meta["feature_dim"],
        }
        meta["trained_on_synthetic"] |= trained_on_synthetic(temporal_meta["config"])
    return save_weights(out, state, meta)


def load_video_model(path: str | Path) -> VideoModel:
    state, meta = load_weights(path)
    model_config = from_dict(ModelConfig, meta["frame"]["config"]["model"], "model")
    model_config.pretrained, model_config.weights = False, None
    frame = FrameModel(model_config, for_loading=True)
    frame.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("frame.")})
    frame.use_channels_last()
    temporal = None
    if meta.get("temporal"):
        temporal = TemporalEncoder(
            int(meta["temporal"]["feature_dim"]),
            from_dict(TemporalConfig, meta["temporal"]["config"], "temporal"),
        )
        temporal.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("temporal.")})
    return VideoModel(frame, temporal, meta).eval()


def as_video_model(model: nn.Module, meta: dict) -> VideoModel | nn.Module:
    """A frame-kind model wrapped so predict can ask for features too."""
    if isinstance(model, FrameModel):
        wrapped = {
            "kind": "frame",
            "trained_on_synthetic": trained_on_synthetic(meta.get("config", {})),
        }
        return VideoModel(model, None, wrapped).eval()
    return model


class TorchFaceModel:
    """A torch model behind the numpy interface ``fervid predict`` uses (the one
    :class:`fervid.zoo.onnx_model.OnnxModel` has): uint8 crops in, numpy probabilities (B, 8)
    and features out, on ``device``. ``model``: a :class:`VideoModel` (features, maybe a
    Temporal Encoder) or any model with ``probabilities(crops)`` (e.g. the fer import: no
    features; ``flip`` averages the two views' probabilities)."""

    crop_spec = ("aligned", GEOMETRY_SIZE)

    def __init__(self, model: nn.Module, sidecar: dict, device: torch.device):
        self.model = model.to(device).eval()
        self.device = device
        self.meta = getattr(model, "meta", sidecar)
        self.video = isinstance(model, VideoModel)
        self.temporal = self.video and model.temporal is not None
        self.num_features = model.frame.num_features if self.video else 0

    def frame_outputs(self, crops: np.ndarray, flip: bool = False):
        crops = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
        if self.video:
            probs, features = self.model.frame_outputs(crops, flip)
            return probs.float().cpu().numpy(), features.float().cpu().numpy()
        probs = self.model.probabilities(crops)
        if flip:
            probs = (probs + self.model.probabilities(crops.flip(-1))) / 2
        return probs.float().cpu().numpy(), None

    def track_probabilities(self, features, has_face, stride=None):
        return self.model.track_probabilities(features, has_face, stride)


def _model_path(path: str | Path) -> Path:
    path = Path(path)
    return path / "model.safetensors" if path.is_dir() else path.with_suffix(".safetensors")
