"""The demo pipeline end to end at toy scale: synth -> stage 1 (SSL) -> features -> stage 2 ->
comparison -> packaged model -> predict on a synthetic scene video."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from fervid.api import demo, export, train
from fervid.cli import main
from fervid.config import load_config
from fervid.data.synth import tiny_config
from fervid.models.frame import load_frame_model
from fervid.models.temporal import load_temporal_model
from fervid.schema import PROB_COLUMNS

TINY = [
    f"synth.{key}={value}"
    for key, value in vars(tiny_config()).items()
    if key != "class_frequencies"
] + [
    "model.backbone=test_resnet",
    "model.weights=null",  # the recipe's packaged ImageNet weights are MobileNetV2's
    "model.input_size=32",
    "train.epochs=1",
    "train.steps_per_epoch=4",
    "train.batch_size=16",
    "data.workers=0",
    "temporal.epochs=1",
    "temporal.steps_per_epoch=3",
    "temporal.window=16",
    "temporal.batch_size=4",
    "ssl.log_every=2",
    "data.labels_per_class=5",  # the tiny draw's rarest class has 8 train frames
]
STAGES = ["synth", "stage1", "features", "stage2", "stage1_supervised"]


def fingerprint(path):
    """A file's content hash and modification time: both stay if nothing rewrote it."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.mark.slow
def test_demo_runs_every_stage_and_a_rerun_retrains_nothing(tmp_path, capsys):
    result = demo(tmp_path / "demo", TINY, progress=False, baseline=True)
    comparison = result["metrics"]["comparison"]["table"]
    assert set(comparison) == {
        "frame model",
        f"moving average ({result['metrics']['comparison']['smoothing_window']})",
        "temporal encoder",
    }
    seconds = result["seconds"]
    assert list(seconds) == [*STAGES, "total"]
    assert all(seconds[name] > 0 for name in STAGES)  # each stage was timed as it ran
    assert seconds["total"] == pytest.approx(sum(seconds[name] for name in STAGES))
    run = tmp_path / "demo" / "run"
    assert (run / "stage1" / "steps.jsonl").exists()  # stage 1 ran semi-supervised
    assert result["stage1"].startswith("semi-supervised, FlexMatch's per-class thresholds")
    # the supervised-only baseline: the same labelled frames, no unlabelled faces
    supervised = result["supervised_metrics"]
    assert supervised["frames"] == result["frame_metrics"]["frames"]
    assert not (run / "stage1_supervised" / "steps.jsonl").exists()
    assert json.loads((run / "fervid_demo_model.json").read_text())["temporal"] is not None

    # a second call finds every stage done: it only re-evaluates
    untouched = [  # not even rewritten
        tmp_path / "demo" / "data" / "synth.json",
        *(
            run / stage / "checkpoints" / "last.pt"
            for stage in ("stage1", "stage2", "stage1_supervised")
        ),
        *(run / "features" / split / "features.npy" for split in ("train", "validation")),
    ]
    same = [  # rewritten at most, with the same content: the logs hold no new step or epoch
        run / "stage1" / "metrics.jsonl",
        run / "stage1" / "steps.jsonl",
        run / "stage2" / "metrics.jsonl",
        run / "stage1" / "model.safetensors",
        run / "stage2" / "model.safetensors",
        run / "fervid_demo_model.safetensors",
    ]
    before = {path: fingerprint(path) for path in untouched}
    content = {path: fingerprint(path)[0] for path in same}
    assert main(["-q", "demo", "--out", str(tmp_path / "demo"), "--baseline", *TINY]) == 0
    out = capsys.readouterr().out
    assert {path: fingerprint(path) for path in untouched} == before
    assert {path: fingerprint(path)[0] for path in same} == content
    frame = result["frame_metrics"]
    assert (
        f"validation macro F1: {frame['macro_f1']:.4f}   accuracy: {frame['accuracy']:.4f}   "
        f"frames: {frame['frames']}"
    ) in out.splitlines()
    assert result["metrics"]["comparison"]["text"] in out  # the first run's comparison
    gain = frame["macro_f1"] - supervised["macro_f1"]
    assert (
        f"the same stage 1 supervised only (no unlabelled faces): validation macro F1 "
        f"{supervised['macro_f1']:.4f} (semi-supervised {gain:+.4f}"
    ) in out

    scene = next((tmp_path / "demo" / "data" / "scenes").glob("*.mp4"))
    code = main(
        [
            "-q",
            "predict",
            str(scene),
            "--model",
            str(run / "fervid_demo_model.safetensors"),
            "--out",
            str(tmp_path / "pred"),
        ]
    )
    assert code == 0
    assert (tmp_path / "pred" / f"{scene.stem}.parquet").exists()


@pytest.mark.slow
def test_a_temporal_encoder_on_logits_carries_the_frame_head_into_predict(tmp_path):
    demo(tmp_path / "demo", TINY, progress=False)
    run = tmp_path / "demo" / "run"
    overrides = [
        *TINY,
        f"data.root={tmp_path / 'demo' / 'data'}",
        f"temporal.train_store={run / 'features' / 'train'}",
        f"temporal.val_store={run / 'features' / 'validation'}",
        f"temporal.frame_model={run / 'stage1'}",
        "temporal.input=logits",
        "temporal.normalize=global",  # the demo's per-video standardisation is for features
    ]
    config = load_config("demo", overrides)
    metrics = train(config, tmp_path / "logits", progress=False, stage=2)
    assert 0 <= metrics["macro_f1"] <= 1
    frame_head = load_frame_model(run / "stage1" / "model.safetensors").head
    temporal, _ = load_temporal_model(tmp_path / "logits")
    assert torch.equal(temporal.frame_head_weight, frame_head.weight)
    assert temporal.input.in_features == 8
    model = export(run / "stage1", tmp_path / "video_model.safetensors", tmp_path / "logits")
    scene = next((tmp_path / "demo" / "data" / "scenes").glob("*.mp4"))
    code = main(["-q", "predict", str(scene), "--model", str(model), "--out", str(tmp_path / "p")])
    assert code == 0
    table = pd.read_parquet(tmp_path / "p" / f"{scene.stem}.parquet")
    probabilities = table[PROB_COLUMNS].to_numpy()
    assert len(table) > 0 and np.allclose(probabilities[~np.isnan(probabilities).any(1)].sum(1), 1)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            ["ssl.enabled=false", "data.labels_per_class=0"],
            "supervised only, every train frame labelled",
        ),
        (
            ["ssl.enabled=false", "data.labels_per_class=0", "data.labelled_fraction=0.1"],
            "supervised only, 0.1 of the train videos labelled, the rest unlabelled",
        ),
        (
            ["ssl.threshold=fixed", "ssl.debias_lambda=0"],
            "semi-supervised, a fixed threshold 0.9 (FixMatch); "
            "40 labelled frames per class, the other train frames unlabelled",
        ),
        (
            ["ssl.flex_warmup=true"],
            "semi-supervised, FlexMatch's per-class thresholds + DebiasPL (lambda 0.5); "
            "40 labelled frames per class, the other train frames unlabelled",
        ),
        (
            ["ssl.threshold=free", "ssl.unlabelled=[split:validation]"],
            "semi-supervised, FreeMatch's self-adaptive thresholds + DebiasPL (lambda 0.5); "
            "40 labelled frames per class, the other train frames unlabelled; "
            "the validation frames in the pool (transductive)",
        ),
    ],
)
def test_stage1_summary_names_labels_variant_and_transductive_pool(overrides, expected):
    from fervid.api.training import stage1_summary

    assert stage1_summary(load_config("demo", overrides)) == expected
