"""Stage 1 under torchrun with 2 CPU processes (gloo): one launch path, rank-0 writes."""

import json
import subprocess
import sys

import pytest

from fervid.runtime.checkpoint import load_weights

from .helpers import torchrun
from .test_stage1_ssl import SSL


def test_ssl_training_under_torchrun_two_processes(colour_coded_dataset, tmp_path):
    run = tmp_path / "run"
    result = torchrun(2, "train", "--run-dir", str(run), f"data.root={colour_coded_dataset}", *SSL)
    assert result.returncode == 0, result.stderr[-3000:]
    state, meta = load_weights(run / "model.safetensors")
    assert meta["kind"] == "frame"
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs] == [1, 2]  # written once, by rank 0 only
    steps = (run / "steps.jsonl").read_text().splitlines()
    assert len(steps) == 4
    assert len((run / "run.json").read_text().splitlines()) == 1
    metrics = json.loads((run / "eval" / "validation" / "metrics.json").read_text())
    assert metrics["frames"] == 111  # every validation frame, gathered from both processes


def test_resume_with_another_world_size_is_refused(colour_coded_dataset, tmp_path):
    run = tmp_path / "run"
    options = [f"data.root={colour_coded_dataset}", *SSL, "train.epochs=1"]
    assert torchrun(2, "train", "--run-dir", str(run), *options).returncode == 0
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fervid",
            "-q",
            "train",
            "--run-dir",
            str(run),
            "--resume",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "written by 2 processes" in result.stderr


@pytest.mark.parametrize("processes", [2])
def test_mismatched_configs_across_ranks_are_detected(colour_coded_dataset, tmp_path, processes):
    # each rank sees a different seed through its environment-dependent override
    script = tmp_path / "launch.py"
    script.write_text(
        "import os, sys\n"
        "from fervid.cli import main\n"
        "sys.exit(main(sys.argv[1:] + ['train.seed=' + os.environ['RANK']]))\n"
    )
    result = torchrun(
        processes,
        "train",
        "--run-dir",
        str(tmp_path / "run"),
        f"data.root={colour_coded_dataset}",
        *SSL,
        target=(str(script), "-q"),
    )
    assert result.returncode != 0
    assert "different configs" in result.stderr
