"""An imported ONNX model as stage 2's frame encoder: ``fervid features --model`` writes a store
of its outputs (onnxruntime's on the same crops) that ``fervid train --stage 2`` trains on, end
to end on the colour-coded fixture dataset, with the recipe's stage-2 settings."""

import json

import numpy as np
import pandas as pd
import pytest

import tests.zoo.onnx_helpers as onnx
from fervid import schema
from fervid.cli import main
from fervid.config import load_config
from fervid.data.frames import load_crop
from fervid.models.temporal import load_temporal_model, predict_windows
from fervid.runtime.checkpoint import load_weights
from fervid.stage2.store import FeatureStore
from fervid.zoo import load_model
from fervid.zoo.onnx_import import import_onnx
from tests.stage2.test_training import TINY

RECIPE = "affwild2_onnx_temporal"


@pytest.mark.parametrize("features_output", [None, "features"])
@pytest.mark.slow
def test_features_of_an_onnx_model_train_the_temporal_encoder(
    colour_coded_dataset, tmp_path, features_output
):
    source = onnx.expression_onnx(
        tmp_path / "enet_b0_8_best_vgaf.onnx", 224, 8, features=bool(features_output)
    )
    extra = {"logits_output": "logits", "features_output": features_output}
    model = import_onnx(source, tmp_path / "enet", **extra)
    data = [f"data.root={colour_coded_dataset}", "data.workers=0", "train.device=cpu"]
    stores = {}
    for split in ("train", "validation"):
        stores[split] = tmp_path / f"store-{split}"
        argv = ["-q", "features", "--model", str(model), "--recipe", RECIPE, "--split", split]
        assert main([*argv, "--out", str(stores[split]), *data]) == 0
    store = FeatureStore.open(stores["validation"])
    width = 6 if features_output else 8
    assert store.feature_dim == width and store.encoder["backbone"] == "onnx:enet_b0_8_best_vgaf"
    # rows with a crop hold what onnxruntime gives on that crop, prepared as the preset says
    present = np.flatnonzero(np.load(stores["validation"] / "present.npy"))[:5]
    table = store.table
    crops = np.stack([load_crop(table.image_path(int(row)), 224) for row in present])
    loaded = load_model(model)
    inputs = loaded.prepare(crops)
    features = np.load(stores["validation"] / "features.npy")[present]
    direct = onnx.run_directly(source, inputs, features_output or "logits")
    np.testing.assert_allclose(features, direct, rtol=1e-3, atol=1e-3)  # the store holds float16
    logits = np.load(stores["validation"] / "logits.npy")[present]
    probs = loaded.probabilities(crops)
    expected = np.log(np.maximum(probs, 1e-12))  # log(0) for Other: the floor
    np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-3)

    run = tmp_path / "run"
    stage2 = [
        f"temporal.train_store={stores['train']}",
        f"temporal.val_store={stores['validation']}",
    ]
    stage2 += [*TINY, "temporal.stride=16", "temporal.eval_stride=16"]
    stage2 += ["temporal.epochs=1", "temporal.steps_per_epoch=2", "temporal.batch_size=4"]
    argv = ["-q", "train", "--stage", "2", "--recipe", RECIPE, "--run-dir", str(run)]
    assert main([*argv, *data, *stage2]) == 0
    _, meta = load_weights(run / "model.safetensors")
    assert meta["kind"] == "temporal" and meta["feature_dim"] == width
    assert (
        meta["frame_encoder"]["sha256"]
        == json.loads(model.with_suffix(".json").read_text())["sha256"]
    )
    comparison = json.loads((run / "eval" / "validation" / "comparison.json").read_text())
    assert "temporal encoder" in comparison["table"]

    # the ONNX model and its Temporal Encoder as one ONNX model file for fervid predict
    package = tmp_path / "package.safetensors"
    argv = ["-q", "export", "--onnx", "--frame", str(model), "--temporal", str(run)]
    assert main([*argv, "--out", str(package)]) == 0
    packaged = load_model(package)
    assert packaged.temporal and packaged.crop_spec == loaded.crop_spec
    stored = np.load(stores["validation"] / "features.npy")[:40].astype(np.float32)
    has_face = np.load(stores["validation"] / "present.npy")[:40]
    temporal, _ = load_temporal_model(run)
    expected = predict_windows(temporal, stored, has_face, [slice(0, 40)])
    probs, known = packaged.track_probabilities(stored, has_face)
    np.testing.assert_allclose(probs, expected[0], atol=1e-5)
    assert np.array_equal(known, expected[1])
    assert main(["-q", "export", "--onnx", "--frame", str(model), "--out", str(package)]) == 2

    # the package evaluates and submits with the probabilities stage 2's validation printed
    validation = pd.read_parquet(run / "eval" / "validation" / "predictions.parquet")
    out, names = tmp_path / "evaluate", tmp_path / "videos.txt"
    names.write_text("".join(f"{name}\n" for name in table.videos))
    assert main(["-q", "evaluate", "--model", str(package), "--out", str(out), *data]) == 0
    submission = tmp_path / "submission.csv"
    argv = ["--model", str(package), "--videos", str(names), "--out", str(submission)]
    assert main(["-q", "submit", *argv, *data]) == 0
    for predictions in (
        pd.read_parquet(out / "predictions.parquet"),
        pd.read_parquet(submission.with_suffix(".parquet")),
    ):
        keys = [schema.VIDEO, schema.FRAME]
        assert predictions[keys].astype(str).equals(validation[keys].astype(str))
        np.testing.assert_allclose(
            predictions[schema.PROB_COLUMNS], validation[schema.PROB_COLUMNS], atol=1e-5
        )


def test_the_recipe_reads_the_stored_features_per_video():
    config = load_config(RECIPE, [])
    assert config.temporal.input == "features" and config.temporal.normalize == "video"
