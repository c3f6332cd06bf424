"""fervid predict with several models (an ensemble: probabilities averaged) and with flip test-time
augmentation, on the synthetic clip and fake detector of test_predict_time_axis."""

import numpy as np
import pytest
import torch

import tests.predict.test_time_axis as base
from fervid import schema
from fervid.cli.parser import build_parser
from fervid.errors import DataError
from fervid.predict import PredictOptions, Predictor

EVERY = base.EVERY
clip, frame_model_file = base.clip, base.frame_model_file  # fixtures

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def run(models, clip, **options):
    predictor = Predictor(models, PredictOptions(every=EVERY, batch_size=4, **options))
    predictor.detector = base.BrightFrameFaceDetector()
    return predictor.run(clip).table


@pytest.fixture(scope="module")
def video_file(frame_model_file, tmp_path_factory):
    return base.video_model_file(frame_model_file, tmp_path_factory.mktemp("video"), "context")


def probabilities(table):
    return table[schema.PROB_COLUMNS].to_numpy(np.float64)


@pytest.mark.slow
def test_an_ensemble_averages_its_members_probabilities_frame_by_frame(
    video_file, frame_model_file, clip
):
    temporal_alone = run(video_file, clip)
    frame_alone = run(frame_model_file, clip, smoothing=1)
    both = run([video_file, frame_model_file], clip)
    assert both[schema.FRAME].tolist() == temporal_alone[schema.FRAME].tolist()
    # the temporal member's track output and the frame member's probabilities on the same
    # frames (filled from neighbours where it had no face), averaged
    expected = (probabilities(temporal_alone) + probabilities(frame_alone)) / 2
    np.testing.assert_allclose(probabilities(both), expected, atol=2e-3)  # features travel as fp16
    assert not np.allclose(probabilities(both), probabilities(temporal_alone), atol=1e-2)
    np.testing.assert_allclose(probabilities(both).sum(axis=1), 1, atol=1e-5)


def test_an_ensemble_of_one_model_twice_is_that_model(video_file, clip):
    alone, twice = run(video_file, clip), run([video_file, video_file], clip)
    np.testing.assert_allclose(probabilities(twice), probabilities(alone), atol=1e-5)


def test_flip_averages_each_face_with_its_mirror_image(frame_model_file, clip, monkeypatch):
    plain = run(frame_model_file, clip, smoothing=1)
    flipped = run(frame_model_file, clip, smoothing=1, flip=True)
    seen = []
    original = torch.Tensor.flip

    def spy(self, *dims):
        seen.append(dims)
        return original(self, *dims)

    monkeypatch.setattr(torch.Tensor, "flip", spy)
    run(frame_model_file, clip, smoothing=1, flip=True)
    assert (-1,) in seen  # the crops were mirrored left-right
    detected = plain["detected"].to_numpy()
    assert not np.allclose(probabilities(flipped)[detected], probabilities(plain)[detected])
    np.testing.assert_allclose(probabilities(flipped).sum(axis=1), 1, atol=1e-5)


def test_the_command_line_takes_several_models_and_flip():
    args = build_parser().parse_args(["predict", "v.mp4", "--model", "a", "--model", "b", "--flip"])
    assert args.model == ["a", "b"] and args.flip


def test_a_model_that_is_not_fervids_cannot_join_an_ensemble(video_file, clip, tmp_path):
    from fervid.zoo.ensemble import EnsembleModel

    with pytest.raises(DataError, match="only fervid frame and video models"):
        EnsembleModel([torch.nn.Identity()], [str(tmp_path / "other")])
