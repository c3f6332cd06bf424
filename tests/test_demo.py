"""The demo pipeline end to end at toy scale: synth -> stage 1 (SSL) -> features -> stage 2 ->
comparison -> packaged model -> predict on a synthetic scene video."""

import json

from fervid.api import demo
from fervid.cli import main
from fervid.data.synth import tiny_config

TINY = [
    f"synth.{key}={value}"
    for key, value in vars(tiny_config()).items()
    if key != "class_frequencies"
] + [
    "model.backbone=test_resnet",
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
]


def test_demo_runs_every_stage_and_resumes(tmp_path, capsys):
    result = demo(tmp_path / "demo", TINY, progress=False)
    comparison = result["metrics"]["comparison"]["table"]
    assert set(comparison) == {
        "frame model",
        f"moving average ({result['metrics']['comparison']['smoothing_window']})",
        "temporal encoder",
    }
    for name in ("synth", "stage1", "features", "stage2", "total"):
        assert result["seconds"][name] >= 0
    run = tmp_path / "demo" / "run"
    assert (run / "stage1" / "steps.jsonl").exists()  # stage 1 ran semi-supervised
    assert json.loads((run / "fervid_demo_model.json").read_text())["temporal"] is not None
    # a second call finds every stage done and only re-evaluates
    assert main(["-q", "demo", "--out", str(tmp_path / "demo"), *TINY]) == 0
    assert "temporal encoder" in capsys.readouterr().out
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
