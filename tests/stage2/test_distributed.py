"""Feature extraction and stage 2 under torchrun with 2 CPU processes (gloo), checked against
one process: the same store, the same gathered validation predictions."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from fervid import schema
from fervid.config import load_config
from fervid.evaluate import prediction_table
from fervid.models.temporal import load_temporal_model
from fervid.stage2.compare import temporal_probabilities
from fervid.stage2.extract import extract_features, split_frames
from fervid.stage2.store import FeatureStore
from tests.helpers import torchrun
from tests.stage2.test_features import BATCH, model_file  # noqa: F401 (fixture)
from tests.stage2.test_training import ENCODER, TINY, pulses, write_store

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


@pytest.mark.slow
def test_extraction_by_two_processes_writes_the_store_of_one(colour_coded_dataset, tmp_path):
    model = model_file(tmp_path / "model")
    options = [
        f"data.root={colour_coded_dataset}",
        f"eval.batch_size={BATCH}",
        "data.workers=0",
        "train.device=cpu",
    ]
    table = split_frames(load_config(None, options).data, "train")
    single = extract_features(model, table, tmp_path / "one", BATCH, workers=0, progress=False)

    result = torchrun(
        2, "features", "--model", str(model), "--split", "train", "--out", str(tmp_path / "two"),
        *options,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    double = FeatureStore.open(tmp_path / "two")
    assert double.meta["complete"] and sorted(double.meta["done"]) == sorted(single.meta["done"])
    assert not list((tmp_path / "two").glob("progress-*.json"))  # merged into store.json
    assert np.array_equal(double.table.has_image, single.table.has_image)
    assert np.array_equal(np.asarray(double.features), np.asarray(single.features))
    assert np.array_equal(np.asarray(double.logits), np.asarray(single.logits))


@pytest.mark.slow
def test_two_processes_finish_an_extraction_one_process_left(colour_coded_dataset, tmp_path):
    model = model_file(tmp_path / "model")
    options = [f"data.root={colour_coded_dataset}", "data.workers=0", "train.device=cpu"]
    table = split_frames(load_config(None, options).data, "train")
    complete = extract_features(model, table, tmp_path / "done", workers=0, progress=False)
    # the state a killed one-process run leaves: the first video done, the rest never written
    shutil.copytree(tmp_path / "done", tmp_path / "store")
    meta = json.loads((tmp_path / "store" / "store.json").read_text())
    meta["done"], meta["complete"] = [table.videos[int(table.video[0])]], False
    (tmp_path / "store" / "store.json").write_text(json.dumps(meta))
    later = slice(int(np.flatnonzero(table.video != table.video[0])[0]), None)
    for name in ("features.npy", "logits.npy", "present.npy"):
        array = np.load(tmp_path / "store" / name, mmap_mode="r+")
        array[later] = 0
        array.flush()

    result = torchrun(
        2, "features", "--model", str(model), "--split", "train", "--out",
        str(tmp_path / "store"), *options,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    store = FeatureStore.open(tmp_path / "store")
    assert store.meta["complete"] and len(store.meta["done"]) == store.meta["videos"]
    assert np.array_equal(np.asarray(store.features), np.asarray(complete.features))


@pytest.mark.slow
def test_stage2_under_two_processes_gathers_the_validation_predictions_once(tmp_path):
    train, validation = pulses(0, videos=12), pulses(1, videos=5)
    write_store(tmp_path / "train", train[0], ENCODER, *train[1:])
    write_store(tmp_path / "val", validation[0], ENCODER, *validation[1:])
    run = tmp_path / "run"
    result = torchrun(
        2, "train", "--stage", "2", "--run-dir", str(run),
        f"data.root={tmp_path / 'no-dataset'}",
        f"temporal.train_store={tmp_path / 'train'}",
        f"temporal.val_store={tmp_path / 'val'}",
        "temporal.epochs=2", "temporal.steps_per_epoch=6", *TINY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in epochs] == [1, 2]  # rank 0 alone writes
    assert json.loads(epochs[-1])["step"] == 12
    comparison = json.loads((run / "eval" / "validation" / "comparison.json").read_text())
    assert "temporal encoder" in " ".join(comparison["table"]).lower()

    # the predictions rank 0 wrote = the saved model run by one process over the whole split
    model, _ = load_temporal_model(run / "model.safetensors")
    val_store = FeatureStore.open(tmp_path / "val")
    written = pd.read_parquet(run / "eval" / "validation" / "predictions.parquet")
    expected = prediction_table(val_store.table, *temporal_probabilities(model, val_store))
    assert len(written) == len(val_store.table)
    assert np.array_equal(written[schema.PRED].to_numpy(), expected[schema.PRED].to_numpy())
    columns = list(schema.PROB_COLUMNS)
    np.testing.assert_allclose(written[columns].to_numpy(), expected[columns].to_numpy(), atol=1e-5)
