"""fervid predict on a track's real frame axis: ``--every N`` and missed detections leave gaps
that the Temporal Encoder sees as masked frames (not as neighbours squeezed together), the
frame-only moving average counts source frames, and the summary's rate counts source frames.

No real media: a synthetic clip whose dark frames have "no face" for a fake detector, and a
random-weights video model (frame encoder + Temporal Encoder) written by ``export_model``, the
writer behind ``fervid export``."""

import json

import av
import numpy as np
import pytest
import torch

from fervid import schema
from fervid.config import load_config, to_dict
from fervid.data.sequences import fill_from_neighbours
from fervid.models.frame import FrameModel
from fervid.models.temporal import TemporalEncoder
from fervid.predict import PredictOptions, Predictor
from fervid.runtime.checkpoint import save_weights
from fervid.video.detect import FaceDetector
from fervid.zoo.video_model import export_model

FPS = 10
FRAMES = 20
EVERY = 2
DARK = {0, 1, 6, 7, 8, 9}  # the detector finds no face in these (6 and 8 are processed)
# processed frames 0, 2, ..., 18; with a face: 2, 4, 10, 12, ..., 18 -> one track, 2..18
TRACK = np.arange(2, 19)
WITH_FACE = np.array([f % EVERY == 0 and f not in DARK for f in TRACK])
TEMPORAL = ["temporal.window=16", "temporal.width=16", "temporal.heads=2"]
TEMPORAL += ["temporal.ffn_width=32", "temporal.layers=1", "temporal.dropout=0.0"]
TEMPORAL += ["temporal.input_dropout=0.0"]


class BrightFrameFaceDetector(FaceDetector):
    """Finds fixed faces in bright images and nothing in dark ones: one in the middle, or one
    at each of ``centres`` (fractions of width and height), ``half`` (fractions) wide each way."""

    def __init__(self, centres=((0.5, 0.5),), half=(0.25, 0.25), **options):
        super().__init__(**options)
        self.centres, self.half = centres, half

    def _detect_resized(self, images):
        rows = []
        for image in images:
            if image.mean() < 60:
                rows.append(np.zeros((0, 15), np.float32))
                continue
            height, width = image.shape[:2]
            faces = []
            for fx, fy in self.centres:
                cx, cy = fx * (width - 1), fy * (height - 1)
                points = [cx - 6, cy - 5, cx + 6, cy - 5, cx, cy, cx - 5, cy + 7, cx + 5, cy + 7]
                hx, hy = self.half[0] * width, self.half[1] * height
                faces.append([cx - hx, cy - hy, cx + hx, cy + hy, 0.9, *points])
            rows.append(np.array(faces, np.float32))
        return rows


class SpyTrackProbabilities:
    """Wraps ``VideoModel.track_probabilities``: records what each call was given and what it
    returned, and returns that unchanged."""

    def __init__(self, real):
        self.real = real
        self.calls: list[dict] = []

    def __call__(self, features, has_face, stride=None):
        probs, known = self.real(features, has_face, stride=stride)
        self.calls.append(
            {
                "features": np.array(features),
                "dtype": np.asarray(features).dtype,
                "has_face": np.array(has_face),
                "probs": probs.copy(),
                "known": known.copy(),
            }
        )
        return probs, known


def write_clip(path):
    """``FRAMES`` frames at ``FPS``: a bright gradient with a moving stripe, black in ``DARK``."""
    width, height = 96, 80
    gradient = np.linspace(120, 230, width, dtype=np.float32)[None, :, None]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        for index in range(FRAMES):
            image = np.broadcast_to(gradient, (height, width, 3)).copy()
            image[:, (4 * index) % width : (4 * index) % width + 8] = 250
            if index in DARK:
                image[:] = 0
            frame = av.VideoFrame.from_ndarray(image.astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "gaps.mp4")


@pytest.fixture(scope="module")
def frame_model_file(tmp_path_factory):
    config = load_config(None, ["model.backbone=test_resnet", "model.input_size=32"])
    torch.manual_seed(0)
    model = FrameModel(config.model)
    path = tmp_path_factory.mktemp("frame") / "frame.safetensors"
    return save_weights(path, model.state_dict(), {"kind": "frame", "config": to_dict(config)})


def video_model_file(frame_file, folder, missing: str):
    """A frame model + random Temporal Encoder, packaged by ``export_model``."""
    frame_meta = json.loads(frame_file.with_suffix(".json").read_text())
    config = load_config(None, [*TEMPORAL, f"temporal.missing={missing}"])
    dim = FrameModel(load_config(None, ["model.backbone=test_resnet", "model.input_size=32"]).model)
    torch.manual_seed(1)
    temporal = TemporalEncoder(dim.num_features, config.temporal)
    meta = {
        "kind": "temporal",
        "config": to_dict(config),
        "feature_dim": dim.num_features,
        "frame_encoder": {"sha256": frame_meta["sha256"], "backbone": "test_resnet"},
    }
    temporal_file = save_weights(folder / f"temporal_{missing}", temporal.state_dict(), meta)
    return export_model(frame_file, folder / f"video_{missing}.safetensors", temporal_file)


@pytest.fixture(scope="module", params=["context", "neighbours"])
def temporal_run(request, frame_model_file, clip, tmp_path_factory):
    """One prediction of the clip with ``every=2`` and a temporal model, and what the temporal
    model was given."""
    path = video_model_file(frame_model_file, tmp_path_factory.mktemp("video"), request.param)
    predictor = Predictor(path, PredictOptions(every=EVERY, batch_size=4))
    predictor.detector = BrightFrameFaceDetector()
    assert predictor.temporal
    spy = SpyTrackProbabilities(predictor.model.track_probabilities)
    predictor.model.track_probabilities = spy
    return request.param, predictor.run(clip), spy


def frame_only_table(frame_file, clip, smoothing):
    predictor = Predictor(frame_file, PredictOptions(every=EVERY, smoothing=smoothing))
    predictor.detector = BrightFrameFaceDetector()
    assert not predictor.temporal
    return predictor.run(clip).table


@pytest.mark.slow
def test_the_temporal_model_sees_the_track_on_its_real_frame_axis_with_gaps_masked(
    temporal_run,
):
    _, prediction, spy = temporal_run
    (call,) = spy.calls  # one track
    assert len(call["has_face"]) == TRACK[-1] - TRACK[0] + 1 == 17  # source frames, step 1
    assert call["has_face"].tolist() == WITH_FACE.tolist()  # unprocessed and missed: False
    assert call["dtype"] == np.float16  # no wider copy of a long track's features
    assert not call["features"][~WITH_FACE].any()  # masked frames: zero features
    assert np.abs(call["features"][WITH_FACE]).sum(axis=1).min() > 0
    table = prediction.table
    assert table["track"].nunique() == 1
    assert table[schema.FRAME].tolist() == (TRACK + 1).tolist()  # a row for every frame
    assert table["detected"].tolist() == WITH_FACE.tolist()


def test_every_row_takes_its_probabilities_from_the_model_on_the_real_axis(temporal_run):
    missing, prediction, spy = temporal_run
    (call,) = spy.calls
    probs = prediction.table[schema.PROB_COLUMNS].to_numpy()
    expected = fill_from_neighbours(TRACK, call["probs"], call["known"])
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    if missing == "context":  # frames without a face are predicted from the faces around them
        assert call["known"].all()
    else:  # ... or interpolated between the frames with a face, linearly in frame number
        assert call["known"].tolist() == WITH_FACE.tolist()
        by_frame = dict(zip(TRACK, probs, strict=True))
        np.testing.assert_allclose(by_frame[3], (by_frame[2] + by_frame[4]) / 2, atol=1e-6)
        np.testing.assert_allclose(
            by_frame[6], by_frame[4] + (by_frame[10] - by_frame[4]) * 2 / 6, atol=1e-6
        )


def test_time_of_every_row_is_its_frame_over_the_frame_rate(temporal_run):
    _, prediction, _ = temporal_run
    table = prediction.table
    np.testing.assert_allclose(table["time"], (table[schema.FRAME] - 1) / FPS, atol=1e-6)
    (track,) = prediction.summary["tracks"]
    assert track["frames"] == len(TRACK) and track["detected_frames"] == WITH_FACE.sum()
    assert track["first_time"] == pytest.approx(TRACK[0] / FPS)
    assert track["last_time"] == pytest.approx(TRACK[-1] / FPS)


def test_frames_per_second_counts_source_frames_once(temporal_run):
    _, prediction, _ = temporal_run
    summary = prediction.summary
    assert summary["frames_decoded"] == FRAMES  # every source frame, skipped ones included
    assert summary["frames_per_second"] == pytest.approx(FRAMES / summary["seconds"])


def test_frame_only_smoothing_averages_over_source_frames_across_gaps(frame_model_file, clip):
    raw = frame_only_table(frame_model_file, clip, smoothing=1)
    smooth = frame_only_table(frame_model_file, clip, smoothing=5)
    assert raw[schema.FRAME].tolist() == smooth[schema.FRAME].tolist() == (TRACK + 1).tolist()
    detected = raw["detected"].to_numpy()
    frames = raw[schema.FRAME].to_numpy() - 1
    probs = raw[schema.PROB_COLUMNS].to_numpy()
    seen = probs[detected]
    assert not np.allclose(seen, seen[:1], atol=1e-4)  # the frames differ: smoothing shows
    # a centred window of 5 source frames, averaging the frames with a face inside it
    for frame, row in zip(frames, smooth[schema.PROB_COLUMNS].to_numpy(), strict=True):
        inside = detected & (np.abs(frames - frame) <= 2)
        if inside.any():
            np.testing.assert_allclose(row, probs[inside].mean(axis=0), atol=1e-5)
    # frame 7 sees no face within 2 frames: interpolated between its neighbours' averages
    by_frame = dict(zip(frames, smooth[schema.PROB_COLUMNS].to_numpy(), strict=True))
    np.testing.assert_allclose(by_frame[7], (by_frame[6] + by_frame[8]) / 2, atol=1e-5)
