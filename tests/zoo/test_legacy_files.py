"""Files written by fervid before the layout change (commit 4c18e36, tests/fixtures/legacy-4c18e36,
made by its make.sh) still load and give the numbers that code computed from them: a stage-1 run
folder, a stage-2 run folder with its resume checkpoint, a feature store and an exported video
model. The fixture was made on another machine, so network outputs are compared to float32
rounding across CPUs (helpers.assert_close_across_cpus), not to the bit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fervid.config import load_config
from fervid.models.frame import load_frame_model
from fervid.plots import plot_run
from fervid.predict import Predictor
from fervid.runtime.training import load_resume_state
from fervid.stage2.compare import compare
from fervid.stage2.store import FeatureStore
from fervid.zoo.video_model import export_model, load_video_model
from tests.helpers import FIXTURES, STORED_F1_ABS, assert_close_across_cpus

LEGACY = FIXTURES / "legacy-4c18e36"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())


def crops() -> torch.Tensor:
    torch.manual_seed(EXPECTED["crops_seed"])
    return torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)


@pytest.fixture
def legacy(tmp_path) -> Path:
    """A writable copy (loading may write nothing, but a test must not touch the fixture)."""
    return Path(shutil.copytree(LEGACY, tmp_path / "legacy"))


def test_an_old_store_and_temporal_model_give_the_old_comparison(legacy):
    store = FeatureStore.open(legacy / "store-validation")
    assert store.meta["complete"] and store.feature_dim == store.features.shape[1]
    table = compare(store, legacy / "stage2" / "model.safetensors", smoothing_window=3)
    for system, row in EXPECTED["comparison"].items():
        for column, value in row.items():
            got = table.loc[system, column]
            assert (np.isnan(got) and value is None) or got == pytest.approx(
                value, abs=STORED_F1_ABS
            )


@pytest.mark.slow
def test_an_old_stage1_model_file_gives_the_old_logits(legacy):
    model = load_frame_model(legacy / "stage1" / "model.safetensors").eval()
    with torch.no_grad():
        logits = model(model.prepare(crops()))
    assert_close_across_cpus(logits.numpy(), EXPECTED["frame_logits"])


@pytest.mark.slow
def test_an_old_video_model_gives_the_old_frame_and_track_probabilities(legacy):
    model = load_video_model(legacy / "video.safetensors").eval()
    with torch.no_grad():
        probs, features = model.frame_outputs(crops())
    track, known = model.track_probabilities(features.numpy(), np.ones(4, bool))
    assert_close_across_cpus(probs.numpy(), EXPECTED["video_frame_probs"])
    assert_close_across_cpus(track, EXPECTED["video_track_probs"])
    assert known.all()
    assert Predictor(legacy / "video.safetensors").temporal


@pytest.mark.slow
def test_old_run_folders_export_resume_and_plot(legacy, tmp_path):
    exported = export_model(legacy / "stage1", tmp_path / "again.safetensors", legacy / "stage2")
    again = load_video_model(exported).eval()
    with torch.no_grad():
        probs, _ = again.frame_outputs(crops())
    assert_close_across_cpus(probs.numpy(), EXPECTED["video_frame_probs"])

    state = load_resume_state(legacy / "stage2" / "checkpoints" / "last.pt", "windows")
    assert {"model", "optimizer", "rng", "log_lines"} <= set(state)
    for run in ("stage1", "stage2"):
        config = load_config(legacy / run / "config.yaml")
        assert config.model.backbone == "test_efficientnet"
        assert plot_run(legacy / run).stat().st_size > 0
