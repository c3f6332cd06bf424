"""Stage 2 with the frame encoder fine-tuned on windows of crops (temporal.finetune_encoder)."""

import json

import numpy as np
import pytest
import torch

from fervid.config import Config, ModelConfig, load_config, to_dict
from fervid.errors import ConfigError, DataError
from fervid.models.frame import FrameModel
from fervid.models.temporal import gather_windows, make_windows
from fervid.runtime import training as common
from fervid.runtime.checkpoint import load_weights, save_weights
from fervid.stage2.compare import compare
from fervid.stage2.extract import extract_features, split_frames
from fervid.stage2.finetune import EncoderFinetuning
from fervid.stage2.store import FeatureStore
from fervid.stage2.train import open_stores, train_stage2
from fervid.zoo.video_model import export_model, load_video_model
from tests.helpers import torchrun

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead

BACKBONE = ModelConfig(backbone="fervid_cnn", input_size=32)  # has BatchNorm layers
SMALL = [
    "temporal.window=16",
    "temporal.width=32",
    "temporal.heads=2",
    "temporal.ffn_width=64",
    "temporal.layers=1",
    "temporal.batch_size=4",
    "temporal.epochs=2",
    "temporal.steps_per_epoch=3",
    "temporal.smoothing_windows=[1,5]",
    "temporal.encoder_lr_scale=1.0",
    "eval.batch_size=32",
    "data.workers=0",
    "train.device=cpu",
]


def frame_model_file(path, seed: int):
    torch.manual_seed(seed)
    model = FrameModel(BACKBONE)
    return save_weights(
        path, model.state_dict(), {"kind": "frame", "config": to_dict(Config(model=BACKBONE))}
    )


@pytest.fixture(scope="module")
def stage1(colour_coded_dataset, tmp_path_factory):
    """A frame model file and its train and validation stores."""
    root = tmp_path_factory.mktemp("finetune")
    model = frame_model_file(root / "stage1" / "model", seed=0)
    data = load_config(None, [f"data.root={colour_coded_dataset}"]).data
    for split in ("train", "validation"):
        table = split_frames(data, split)
        extract_features(model, table, root / split, batch_size=32, workers=0, progress=False)
    return root, model


def config(colour_coded_dataset, stage1, *extra):
    root, model = stage1
    return load_config(
        None,
        [
            f"data.root={colour_coded_dataset}",
            f"temporal.train_store={root / 'train'}",
            f"temporal.val_store={root / 'validation'}",
            f"temporal.frame_model={model}",
            "temporal.finetune_encoder=true",
            *SMALL,
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def finetuned(colour_coded_dataset, stage1):
    run = stage1[0] / "run"
    metrics = train_stage2(config(colour_coded_dataset, stage1), run, progress=False)
    return run, metrics


@pytest.mark.slow
def test_the_encoder_learns_and_is_written_as_a_frame_model(
    colour_coded_dataset, stage1, finetuned, tmp_path
):
    run, metrics = finetuned
    before, _ = load_weights(stage1[1])
    after, meta = load_weights(run / "encoder.safetensors")
    assert (
        meta["kind"] == "frame" and meta["finetuned_from"] == load_weights(stage1[1])[1]["sha256"]
    )
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("backbone" in k for k in changed) and any("head" in k for k in changed)
    # normalisation statistics stay those of stage 1
    assert all(torch.equal(before[k], after[k]) for k in before if "running_" in k)
    _, temporal_meta = load_weights(run / "model.safetensors")
    assert temporal_meta["finetuned_encoder"] == "encoder.safetensors"
    assert temporal_meta["frame_encoder"]["sha256"] == meta["sha256"]
    # validation features were re-extracted with the fine-tuned encoder and evaluated
    store = FeatureStore.open(run / "features" / "validation")
    assert store.encoder["sha256"] == meta["sha256"]
    # ... by the fine-tuned encoder itself: extracting them again with encoder.safetensors gives
    # the same store, and not the stage-1 one
    data = load_config(None, [f"data.root={colour_coded_dataset}"]).data
    again = extract_features(
        run / "encoder.safetensors", split_frames(data, "validation"), tmp_path / "again",
        batch_size=32, workers=0, progress=False,
    )  # fmt: skip
    stage1_store = FeatureStore.open(stage1[0] / "validation")
    np.testing.assert_allclose(store.features, again.features, atol=1e-3, rtol=1e-3)
    assert np.abs(store.features - stage1_store.features).max() > 0.01
    # the reported F1 is the written Temporal Encoder's on those features
    window = metrics["comparison"]["smoothing_window"]
    table = compare(run / "features" / "validation", run, smoothing_window=window)
    assert metrics["macro_f1"] == pytest.approx(table.loc["temporal encoder", "macro_f1"])
    assert metrics["comparison"]["table"]["temporal encoder"]["macro_f1"] == pytest.approx(
        metrics["macro_f1"]
    )
    log = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in log] == [1, 2]


def test_export_takes_the_finetuned_encoder_and_refuses_the_stage1_one(stage1, finetuned, tmp_path):
    run, _ = finetuned
    video_model = load_video_model(export_model(None, tmp_path / "model", run))
    _, encoder_meta = load_weights(run / "encoder.safetensors")
    assert video_model.meta["frame"]["sha256"] == encoder_meta["sha256"]
    assert video_model.temporal is not None
    with pytest.raises(DataError, match="fine-tuned its own"):
        export_model(stage1[1], tmp_path / "wrong", run)


@pytest.mark.slow
def test_export_refuses_a_temporal_model_of_another_frame_model(
    colour_coded_dataset, stage1, tmp_path
):
    frozen = config(colour_coded_dataset, stage1, "temporal.finetune_encoder=false")
    run = tmp_path / "frozen"
    train_stage2(frozen, run, progress=False)
    export_model(stage1[1], tmp_path / "fits", run)  # the encoder of its stores
    other = frame_model_file(tmp_path / "other", seed=1)
    with pytest.raises(DataError, match="trained on features of another frame model"):
        export_model(other, tmp_path / "wrong", run)


@pytest.mark.slow
def test_resume_after_a_kill_ends_with_the_same_encoder_and_temporal_weights(
    colour_coded_dataset, stage1, tmp_path, monkeypatch
):
    options = ["temporal.epochs=3", "train.eval_every=0", "temporal.feature_dropout=0.1"]
    train_stage2(config(colour_coded_dataset, stage1, *options), tmp_path / "full", progress=False)

    original = common.save_state

    def save_then_die(path, state):
        original(path, state)
        if state["epoch"] == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(common, "save_state", save_then_die)
    killed = config(colour_coded_dataset, stage1, *options)
    with pytest.raises(KeyboardInterrupt):
        train_stage2(killed, tmp_path / "killed", progress=False)
    monkeypatch.setattr(common, "save_state", original)
    train_stage2(killed, tmp_path / "killed", resume=True, progress=False)
    for name in ("model.safetensors", "encoder.safetensors"):
        full, _ = load_weights(tmp_path / "full" / name)
        resumed, _ = load_weights(tmp_path / "killed" / name)
        for key in full:
            torch.testing.assert_close(full[key], resumed[key], rtol=0, atol=0, msg=key)


def test_windows_get_the_features_of_their_own_crops(colour_coded_dataset, stage1):
    cfg = config(colour_coded_dataset, stage1)
    train_store, _ = open_stores(cfg)
    finetuning = EncoderFinetuning(cfg, train_store, torch.device("cpu"))
    finetuning.encoder.eval()
    table = train_store.table
    windows = make_windows([rows for _, rows in table.video_slices()], 16, 8)
    chosen = np.array([0, 2, 5])
    batch = gather_windows(train_store.features, table.has_image, table.label, windows, chosen, 16)
    crops = next(finetuning.epoch_crops(windows, chosen, batch_size=3, steps=1))
    with torch.no_grad():
        features, mask, _ = finetuning.encode(batch, crops)
    assert torch.equal(mask, batch.mask)  # every crop decoded: frames with no face stay masked
    assert (features[mask] == 0).all()
    # the unchanged encoder reproduces the stored (float16) features of each position
    stored = batch.features[~mask]
    torch.testing.assert_close(features[~mask], stored, atol=2e-2, rtol=1e-2)


def test_finetuning_needs_a_frame_model(colour_coded_dataset, stage1, tmp_path):
    cfg = config(colour_coded_dataset, stage1)
    cfg.temporal.frame_model = None
    with pytest.raises(ConfigError, match="temporal.frame_model"):
        train_stage2(cfg, tmp_path / "run", progress=False)


@pytest.mark.slow
def test_finetuning_under_two_processes_writes_one_encoder(colour_coded_dataset, stage1, tmp_path):
    root, model = stage1
    run = tmp_path / "run"
    result = torchrun(
        2, "train", "--stage", "2", "--run-dir", str(run),
        f"data.root={colour_coded_dataset}",
        f"temporal.train_store={root / 'train'}",
        f"temporal.val_store={root / 'validation'}",
        f"temporal.frame_model={model}",
        "temporal.finetune_encoder=true", *SMALL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    _, encoder_meta = load_weights(run / "encoder.safetensors")
    _, temporal_meta = load_weights(run / "model.safetensors")
    assert temporal_meta["frame_encoder"]["sha256"] == encoder_meta["sha256"]
    store = FeatureStore.open(run / "features" / "validation")  # extracted by both, complete
    assert store.encoder["sha256"] == encoder_meta["sha256"]
    epochs = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in epochs] == [1, 2]
