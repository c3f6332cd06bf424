"""One path from a model's per-frame probabilities to a prediction table: stage 2's validation,
`fervid evaluate` (on the stage-2 run with its store, on the exported model, on an ensemble) and
`fervid submit` give the same probabilities on every frame. Frames the Temporal Encoder predicted
itself (no face crop, predicted from the faces around them) are never filled again from their
neighbours. The models are the small real files of tests/fixtures/legacy-4c18e36."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fervid import api, schema
from fervid.cli import main
from fervid.config import load_config
from fervid.data.table import FrameTable
from fervid.evaluate import prediction_table, score
from fervid.labels import ABAW_HEADER
from fervid.runtime.checkpoint import sha256_file
from fervid.stage2 import submission
from fervid.stage2.compare import temporal_probabilities
from fervid.stage2.store import FeatureStore
from fervid.zoo.video_model import load_video_model
from tests.conftest import write_colour_coded_affwild2
from tests.helpers import FIXTURES

LEGACY = FIXTURES / "legacy-4c18e36"
VIDEO_MODEL = LEGACY / "video.safetensors"
FRAME_MODEL = LEGACY / "stage1"
PROBS = list(schema.PROB_COLUMNS)
COMMON = ["data.workers=0", "train.device=cpu", "eval.batch_size=32"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FERVID_CACHE_DIR", str(tmp_path / "cache"))


def by_frame(predictions: pd.DataFrame) -> pd.DataFrame:
    frame = predictions.assign(video=predictions[schema.VIDEO].astype(str))
    return frame.set_index([schema.VIDEO, schema.FRAME]).sort_index()


@pytest.mark.slow
def test_evaluate_keeps_what_the_temporal_encoder_predicted_for_frames_without_a_face(tmp_path):
    root = write_colour_coded_affwild2(tmp_path / "data", 2, 40)
    config = load_config(None, [f"data.root={root}", *COMMON])
    metrics = api.evaluate([VIDEO_MODEL], config, "validation", tmp_path / "eval", progress=False)
    evaluated = pd.read_parquet(tmp_path / "eval" / "predictions.parquet")
    assert len(evaluated) == 80 and (~evaluated[schema.HAS_IMAGE]).sum() == 10

    # stage 2's own evaluation path on the same store: the model's probabilities, as they are
    store = FeatureStore.open(tmp_path / "eval" / "features" / sha256_file(VIDEO_MODEL)[:12])
    temporal = load_video_model(VIDEO_MODEL).temporal
    stage2 = prediction_table(store.table, *temporal_probabilities(temporal, store))
    assert not stage2[schema.FILLED].any()  # temporal.missing: context predicts every frame
    np.testing.assert_allclose(evaluated[PROBS], stage2[PROBS], rtol=0, atol=1e-6)
    assert not evaluated[schema.FILLED].any()
    assert metrics["macro_f1"] == pytest.approx(score(stage2)["macro_f1"], abs=1e-12)


def gapped_validation(root: Path) -> None:
    """validation_00 gets frames without a label or a crop (16-25, and its last three): the
    frame axis must keep them as rows without a face."""
    labels_file = root / "EXPR_Recognition_Challenge" / "Validation_Set" / "validation_00.txt"
    labels = labels_file.read_text().splitlines()[1:]
    for frame in [*range(16, 26), 38, 39, 40]:
        labels[frame - 1] = "-1"
        (root / "cropped_aligned" / "validation_00" / f"{frame:05d}.jpg").unlink(missing_ok=True)
    labels_file.write_text("\n".join([ABAW_HEADER, *labels]) + "\n")


@pytest.mark.slow
def test_validation_evaluate_and_submit_give_the_same_probabilities_on_every_frame(tmp_path):
    root = write_colour_coded_affwild2(tmp_path / "data", 2, 40)
    gapped_validation(root)
    common = [f"data.root={root}", *COMMON]
    stores, run = tmp_path / "stores", tmp_path / "stage2"
    for split in ("train", "validation"):
        args = ["--model", str(FRAME_MODEL), "--split", split, "--out", str(stores / split)]
        assert main(["-q", "features", *args, *common]) == 0
    temporal = [
        f"temporal.train_store={stores / 'train'}",
        f"temporal.val_store={stores / 'validation'}",
        f"temporal.frame_model={FRAME_MODEL}",
        "temporal.window=16",
        "temporal.width=16",
        "temporal.heads=2",
        "temporal.ffn_width=32",
        "temporal.layers=1",
        "temporal.epochs=1",
        "temporal.batch_size=4",
        "temporal.steps_per_epoch=3",
    ]
    assert main(["-q", "train", "--stage", "2", "--run-dir", str(run), *common, *temporal]) == 0
    exported = tmp_path / "video.safetensors"
    export = ["--frame", str(FRAME_MODEL), "--temporal", str(run), "--out", str(exported)]
    assert main(["-q", "export", *export]) == 0

    validation = by_frame(pd.read_parquet(run / "eval" / "validation" / "predictions.parquet"))
    gap = validation.loc[("validation_00", 16) : ("validation_00", 25)]
    assert len(gap) == 10 and (gap[schema.LABEL] == -1).all() and not gap[schema.HAS_IMAGE].any()
    assert len(validation) == 80 and (~validation[schema.HAS_IMAGE]).sum() == 10 + 9 + 3

    evaluated = {}
    for name, args in {
        "the run, with its store": ["--model", str(run), "--store", str(stores / "validation")],
        "the exported model": ["--model", str(exported)],
        "an ensemble of the model twice": ["--model", str(exported), "--model", str(exported)],
    }.items():
        out = tmp_path / "evaluate" / str(len(evaluated))
        assert main(["-q", "evaluate", *args, "--out", str(out), *common]) == 0
        evaluated[name] = by_frame(pd.read_parquet(out / "predictions.parquet"))
    names = tmp_path / "videos.txt"
    names.write_text("validation_00\nvalidation_01\n")
    submission = tmp_path / "submission.csv"
    submit = ["--model", str(exported), "--videos", str(names), "--out", str(submission)]
    assert main(["-q", "submit", *submit, *common]) == 0
    evaluated["the submission"] = by_frame(pd.read_parquet(submission.with_suffix(".parquet")))

    for name, predictions in evaluated.items():
        assert predictions.index.equals(validation.index), name
        np.testing.assert_allclose(
            predictions[PROBS], validation[PROBS], rtol=0, atol=1e-6, err_msg=name
        )
        assert (predictions[schema.PRED] == validation[schema.PRED]).all(), name


def test_an_ensemble_averages_the_models_that_predicted_a_frame_and_fills_only_the_rest(
    monkeypatch,
):
    """Five frames of one video: model A predicted frames 1, 2 and 4, model B frames 1 and 3,
    no model frame 5 (it takes frame 4's probabilities, the nearest predicted frame)."""
    table = FrameTable(["v"], ["{}"], np.zeros(5), np.arange(1, 6), np.full(5, -1), np.ones(5))
    eye = np.eye(8, dtype=np.float32)
    given = {
        "A": (np.stack([eye[0], eye[1], 0 * eye[0], eye[3], 0 * eye[0]]), [1, 1, 0, 1, 0]),
        "B": (np.stack([eye[2], 0 * eye[0], eye[4], 0 * eye[0], 0 * eye[0]]), [1, 0, 1, 0, 0]),
    }

    def probabilities(model, *args, **kwargs):
        probs, known = given[model]
        return probs, np.asarray(known, bool)

    monkeypatch.setattr(submission, "model_probabilities", probabilities)
    predictions = submission.ensemble_predictions(["A", "B"], table, "unused")
    expected = np.stack([(eye[0] + eye[2]) / 2, eye[1], eye[4], eye[3], eye[3]])
    np.testing.assert_array_equal(predictions[PROBS].to_numpy(), expected)
    assert predictions[schema.FILLED].tolist() == [False, False, False, False, True]
