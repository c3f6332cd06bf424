"""Stage-1 supervised training on a colour-coded fake dataset: machinery, not accuracy."""

import json

import pytest
import torch

from fervid.api import evaluate, train
from fervid.config import load_config
from fervid.runtime.checkpoint import load_weights
from tests.helpers import kill_after_first_checkpoint

TINY = [
    "model.backbone=test_resnet",
    "model.input_size=32",
    "train.epochs=2",
    "train.steps_per_epoch=6",
    "train.batch_size=16",
    "data.workers=0",
]


def tiny_config(root, *extra):
    return load_config(None, [f"data.root={root}", *TINY, *extra])


@pytest.mark.slow
def test_training_writes_run_outputs_and_learns_the_colour_code(colour_coded_dataset, tmp_path):
    config = tiny_config(
        colour_coded_dataset, "train.epochs=3", "train.steps_per_epoch=15", "optim.lr=0.01"
    )
    metrics = train(config, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in [
        "config.yaml",
        "run.json",
        "metrics.jsonl",
        "model.safetensors",
        "model.json",
        "checkpoints/last.pt",
    ]:
        assert (run / name).exists(), name
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert json.loads((run / "run.json").read_text().splitlines()[0])["fervid_version"]
    assert (run / "eval" / "validation" / "confusion.png").exists()
    assert metrics["frames_filled"] > 0  # every 7th frame has no image and is filled
    assert metrics["macro_f1"] > 0.5  # tints are trivially separable


@pytest.mark.slow
def test_resume_after_a_kill_ends_with_the_same_weights(colour_coded_dataset, tmp_path):
    options = [
        f"data.root={colour_coded_dataset}",
        *TINY,
        "train.epochs=3",
        "train.ema=true",
        "model.drop_rate=0.3",
    ]
    train(load_config(None, options), tmp_path / "full", progress=False)

    killed = tmp_path / "killed"
    kill_after_first_checkpoint(killed, ["train", "--run-dir", str(killed), *options])

    train(load_config(None, options), killed, resume=True, progress=False)
    full, _ = load_weights(tmp_path / "full" / "model.safetensors")
    resumed, _ = load_weights(killed / "model.safetensors")
    assert full.keys() == resumed.keys()
    for key in full:
        torch.testing.assert_close(full[key], resumed[key], rtol=0, atol=0, msg=key)
    epochs = [
        json.loads(line)["epoch"] for line in (killed / "metrics.jsonl").read_text().splitlines()
    ]
    assert epochs == [1, 2, 3]


@pytest.mark.slow
def test_existing_run_without_resume_is_refused(colour_coded_dataset, tmp_path):
    config = tiny_config(colour_coded_dataset, "train.epochs=1", "train.steps_per_epoch=2")
    train(config, tmp_path / "run", progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(config, tmp_path / "run", progress=False)


@pytest.mark.slow
def test_evaluate_reloads_the_saved_model(colour_coded_dataset, tmp_path):
    config = tiny_config(colour_coded_dataset, "train.epochs=1")
    trained = train(config, tmp_path / "run", progress=False)
    again = evaluate(tmp_path / "run", config, out=tmp_path / "eval", progress=False)
    assert again["macro_f1"] == pytest.approx(trained["macro_f1"])
    assert (tmp_path / "eval" / "predictions.parquet").exists()
