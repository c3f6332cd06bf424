"""Stage 1 under torchrun with 2 CPU processes (gloo): one launch path, rank-0 writes, the
gradient of one process on the whole batch, and resume after a SIGKILL of every process."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fervid.runtime.checkpoint import load_weights
from tests.helpers import (
    DISTRIBUTED,
    max_weight_difference,
    torchrun,
    torchrun_kill_after_first_checkpoint,
)
from tests.stage1.test_ssl import SSL

DDP_STEP = DISTRIBUTED / "ddp_step.py"


@pytest.fixture(scope="module")
def two_process_run(colour_coded_dataset, tmp_path_factory) -> Path:
    """An uninterrupted 2-process SSL run (2 epochs)."""
    run = tmp_path_factory.mktemp("two_processes") / "run"
    result = torchrun(2, "train", "--run-dir", str(run), f"data.root={colour_coded_dataset}", *SSL)
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.mark.slow
def test_ssl_training_under_torchrun_two_processes(two_process_run):
    run = two_process_run
    state, meta = load_weights(run / "model.safetensors")
    assert meta["kind"] == "frame"
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs] == [1, 2]  # written once, by rank 0 only
    steps = (run / "steps.jsonl").read_text().splitlines()
    assert len(steps) == 4
    assert len((run / "run.json").read_text().splitlines()) == 1
    metrics = json.loads((run / "eval" / "validation" / "metrics.json").read_text())
    assert metrics["frames"] == 111  # every validation frame, gathered from both processes


@pytest.mark.slow
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
@pytest.mark.slow
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


@pytest.mark.slow
def test_a_ddp_step_on_two_processes_has_the_gradient_of_one_process_on_the_whole_batch(tmp_path):
    """One stage-1 step (Stage1Step, test_vit: no BatchNorm, dropout off, no augmentation; see
    tests/distributed/ddp_step.py): each of 2 processes takes half of a global batch of 8, DDP
    averages their gradients, which must be the one-process gradient of all 8 rows."""
    result = torchrun(2, str(tmp_path / "two"), "8", target=(str(DDP_STEP),))
    assert result.returncode == 0, result.stderr[-3000:]
    two = [torch.load(tmp_path / f"two.rank{r}", weights_only=True) for r in range(2)]

    spec = importlib.util.spec_from_file_location("ddp_step", DDP_STEP)
    ddp_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ddp_step)
    with torch.random.fork_rng():
        whole = ddp_step.step_gradients(torch.arange(8))
        half = ddp_step.step_gradients(torch.arange(4))  # what rank 0 holds before the all-reduce

    assert whole.keys() == two[0].keys() == two[1].keys() and len(whole) > 50
    for name, gradient in whole.items():
        assert torch.equal(two[0][name], two[1][name]), name  # every process steps alike
        torch.testing.assert_close(two[0][name], gradient, rtol=0, atol=1e-5, msg=name)
    # the comparison can tell: one process's own half differs from the whole batch
    assert max((half[k] - whole[k]).abs().max().item() for k in whole) > 1e-3


@pytest.mark.parametrize(
    "teacher",
    [
        "ema",  # process 0's BatchNorm statistics in every process's teacher (Stage1Step)
        "model",  # FixMatch: the student pseudo-labels in its own forward, no EMA copy
    ],
)
@pytest.mark.slow
def test_a_two_process_run_killed_after_its_first_checkpoint_resumes_to_the_same_weights(
    colour_coded_dataset, two_process_run, tmp_path, teacher
):
    """Launcher and both workers SIGKILLed as soon as epoch 1's checkpoint exists, then
    resumed with 2 processes: the same weights as the uninterrupted 2-process run."""
    options = [f"data.root={colour_coded_dataset}", *SSL, f"ssl.teacher={teacher}"]
    full = two_process_run  # SSL's teacher is the default, ema
    if teacher != "ema":
        full = tmp_path / "full"
        result = torchrun(2, "train", "--run-dir", str(full), *options)
        assert result.returncode == 0, result.stderr[-3000:]
    killed = tmp_path / "killed"
    torchrun_kill_after_first_checkpoint(killed, 2, ["train", "--run-dir", str(killed), *options])
    result = torchrun(2, "train", "--run-dir", str(killed), "--resume", *options)
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = [json.loads(line)["epoch"] for line in (killed / "metrics.jsonl").open()]
    assert epochs == [1, 2]
    difference = max_weight_difference(full / "model.safetensors", killed / "model.safetensors")
    assert difference == 0.0, f"resumed weights differ by up to {difference:.3g}"
    steps = (killed / "steps.jsonl").read_text().splitlines()
    assert steps == (full / "steps.jsonl").read_text().splitlines()
