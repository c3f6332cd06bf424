"""ONNX expression models as fervid models, run with onnxruntime and numpy only (no torch).

A model file of kind ``onnx`` is the usual pair: ``<name>.safetensors`` holds the ONNX bytes of
the frame encoder (uint8 tensor ``onnx.frame``) and, for fervid's own exported models, of the
Temporal Encoder (``onnx.temporal``); ``<name>.json`` says how to feed and read them:

- ``frame.input``: the graph's input ``name``, its ``size``, ``colour`` order (RGB / BGR),
  ``mean`` / ``std`` (after ``x / 255``) and how crops are resized (``resize.antialias``,
  ``resize.round``);
- ``frame.crop``: the face crop the network was trained on: ``{"type": "aligned"}`` (fervid's
  5-point alignment, 112x112) or ``{"type": "box", "margin": m}`` (the detector's box widened by
  ``m`` each side, cut and resized to the input size, as EmotiEffLib / HSEmotion crop);
- ``frame.outputs``: which graph output holds the ``logits`` (the first ``logit_columns`` of it)
  and which, if any, the penultimate ``features``;
- ``frame.classes``: the ``source`` class order and ``abaw_index``, the ABAW class each source
  class adds its probability to (-1: dropped, the rest renormalised);
- ``frame.sha256`` (and ``temporal.sha256``): of the ONNX bytes, checked on loading besides the
  sha256 of the whole weights file;
- ``temporal``: the Temporal Encoder's config, feature width and graph names, or null.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from fervid.errors import DataError
from fervid.labels import NUM_CLASSES
from fervid.models.windows import predict_windows_with
from fervid.runtime.model_file import load_arrays
from fervid.zoo.preprocess import crop_spec, network_input

KIND = "onnx"
FRAME_KEY, TEMPORAL_KEY = "onnx.frame", "onnx.temporal"
REQUIRED = {
    "frame.input": ("name", "size", "colour", "mean", "std"),
    "frame.crop": ("type",),
    "frame.outputs": ("logits",),
    "frame.classes": ("source", "abaw_index"),
}


def missing_fields(meta: dict) -> list[str]:
    """The sidecar fields an ONNX model needs that ``meta`` lacks (dotted names)."""
    missing = []
    for section, keys in REQUIRED.items():
        node = meta
        for part in section.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            missing.append(section)
            continue
        missing += [f"{section}.{key}" for key in keys if node.get(key) in (None, "", [])]
    return missing


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def to_abaw(probs: np.ndarray, abaw_index: list[int]) -> np.ndarray:
    """(B, source classes) probabilities -> (B, 8) ABAW ones: each source class adds to its ABAW
    class; classes mapped to -1 are dropped and the rest renormalised."""
    index = np.asarray(abaw_index)
    abaw = np.zeros((len(probs), NUM_CLASSES), np.float64)
    for source, target in enumerate(index):
        if target >= 0:
            abaw[:, target] += probs[:, source]
    if (index < 0).any():
        abaw /= np.maximum(abaw.sum(axis=1, keepdims=True), 1e-12)
    return abaw.astype(np.float32)


def session(graph: bytes, threads: int | None = None):
    """An onnxruntime CPU session of ``graph`` (``threads``: intra-op threads, None = all)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """A frame encoder (+ optional Temporal Encoder) in ONNX, with the interface ``fervid
    predict`` uses: ``frame_outputs(uint8 crops, flip) -> (probabilities (B, 8), features)``,
    ``track_probabilities`` when there is a Temporal Encoder, ``crop_spec``, ``meta``.

    ``flip``: the mean of each crop's and its mirror image's logits and features (for fervid's
    exported models, whose head is linear, exactly what the torch path computes)."""

    def __init__(self, frame: bytes, temporal: bytes | None, meta: dict, path: str = ""):
        self.meta, self.path = meta, path
        self.spec = meta["frame"]
        self.input = self.spec["input"]
        self.outputs = self.spec["outputs"]
        self.abaw_index = list(self.spec["classes"]["abaw_index"])
        self.crop_spec = crop_spec(self.spec["crop"], int(self.input["size"]))
        self.graphs = {"frame": frame, "temporal": temporal}
        self.sessions: dict = {}
        self.threads: int | None = None
        """Intra-op threads of the sessions made from now on (None: onnxruntime's default)."""
        self.temporal = temporal is not None
        self.temporal_spec = meta.get("temporal")

    def _session(self, which: str):
        if which not in self.sessions:
            self.sessions[which] = session(self.graphs[which], self.threads)
        return self.sessions[which]

    def check_graph(self) -> None:
        """Refuse a sidecar that names graph inputs or outputs the graph does not have (this
        makes the frame session, with ``threads``)."""
        frame = self._session("frame")
        names = {i.name for i in frame.get_inputs()}, {o.name for o in frame.get_outputs()}
        wanted = [(self.input["name"], 0)] + [
            (self.outputs[k], 1) for k in ("logits", "features") if self.outputs.get(k)
        ]
        for name, side in wanted:
            if name not in names[side]:
                where = "input" if side == 0 else "output"
                raise DataError(
                    self.path,
                    f"the ONNX graph has no {where} {name!r} (it has {', '.join(sorted(names[side]))})",
                )

    @property
    def num_features(self) -> int:
        """Width of the per-face vector ``frame_outputs`` returns as features."""
        return int(self.meta["frame"]["feature_dim"])

    def prepare(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (B, 3, H, W) -> the network's float32 input (sidecar ``frame.input``)."""
        return network_input(np.asarray(crops), self.input)

    def run(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits (B, source classes) and features (the features output, else the logits) of
        prepared inputs."""
        names = [self.outputs["logits"]]
        if self.outputs.get("features"):
            names.append(self.outputs["features"])
        results = self._session("frame").run(names, {self.input["name"]: inputs})
        columns = int(self.outputs.get("logit_columns") or len(self.abaw_index))
        logits = np.asarray(results[0], np.float32).reshape(len(inputs), -1)[:, :columns]
        if len(results) == 1:
            return logits, logits
        return logits, np.asarray(results[1], np.float32).reshape(len(inputs), -1)

    def logits_and_features(
        self, crops: np.ndarray, flip: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        inputs = self.prepare(crops)
        logits, features = self.run(inputs)
        if flip:
            mirrored_logits, mirrored_features = self.run(np.ascontiguousarray(inputs[..., ::-1]))
            logits = (logits + mirrored_logits) / 2
            features = (features + mirrored_features) / 2
        return logits, features

    def frame_outputs(self, crops: np.ndarray, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(B, 8) ABAW probabilities and (B, F) features of uint8 RGB crops (B, 3, H, W)."""
        logits, features = self.logits_and_features(crops, flip)
        return to_abaw(softmax(logits), self.abaw_index), features

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        return self.frame_outputs(crops)[0]

    def track_probabilities(
        self, features: np.ndarray, has_face: np.ndarray, stride: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame probabilities of one track with the Temporal Encoder graph."""
        return self.window_probabilities(features, has_face, [slice(0, len(has_face))], stride)

    def window_probabilities(
        self,
        features: np.ndarray,
        has_face: np.ndarray,
        video_slices: list[slice],
        stride: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-row probabilities and ``known`` of whole videos (rows ``video_slices`` of a
        store or a track) with the Temporal Encoder graph, over the windows of
        :func:`fervid.models.windows.predict_windows_with`, as the torch path."""
        from fervid.config import TemporalConfig, from_dict

        spec = self.temporal_spec
        config = from_dict(TemporalConfig, spec["config"], "temporal")
        names = spec["inputs"]
        temporal = self._session("temporal")

        def run(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
            feeds = {names["features"]: values, names["mask"]: mask}
            return softmax(temporal.run([spec["output"]], feeds)[0])

        return predict_windows_with(run, config, features, has_face, video_slices, stride=stride)


def graph_bytes(arrays: dict, key: str, expected: str | None, path: Path) -> bytes:
    """The ONNX bytes stored under ``key``, checked against their recorded sha256."""
    if key not in arrays:
        raise DataError(path, f"model file holds no {key!r} graph")
    data = arrays[key].tobytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise DataError(
            path, f"{key}: sha256 {digest[:12]}... does not match the one in the sidecar"
        )
    return data


def load_onnx_model(path: str | Path) -> OnnxModel:
    """An :class:`OnnxModel` from a model file pair (file hash, graph hashes and layout checked;
    a sidecar that lacks a field is refused with the fields it lacks). Its sessions are made on
    first use (set ``threads`` before), or by :meth:`OnnxModel.check_graph`."""
    path = Path(path).with_suffix(".safetensors")
    arrays, meta = load_arrays(path)
    sidecar = path.with_suffix(".json")
    if meta.get("kind") != KIND:
        raise DataError(sidecar, f"not an ONNX model (kind {meta.get('kind')!r})")
    missing = missing_fields(meta)
    if missing:
        raise DataError(sidecar, f"unknown ONNX model layout: missing {', '.join(missing)}")
    frame = graph_bytes(arrays, FRAME_KEY, meta["frame"].get("sha256"), path)
    temporal = None
    if meta.get("temporal"):
        temporal = graph_bytes(arrays, TEMPORAL_KEY, meta["temporal"].get("sha256"), path)
    return OnnxModel(frame, temporal, meta, str(path))


def predict_threads() -> int:
    """Threads for the encoder while predict's decoding and detecting threads run too."""
    return max(1, (os.cpu_count() or 1) - 1)
