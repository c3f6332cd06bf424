"""fervid predict over many inputs: a killed job continues where it stopped (inputs whose outputs
are complete are skipped, none is left half-written), and the job summary lists every input."""

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

import tests.predict.test_time_axis as base

INPUTS = 10


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    videos = tmp_path_factory.mktemp("videos")
    for k in range(INPUTS):
        base.write_clip(videos / f"clip{k:02d}.mp4")
    return videos


def predict(folder, model, out, *extra):
    command = [sys.executable, "-m", "fervid", "-q", "predict", str(folder), "--model", str(model)]
    return [*command, "--out", str(out), *extra]


def done(out):
    return sorted(p for p in out.glob("clip*.json"))


def assert_whole(out):
    """Every input that says it is done has whole outputs; no temporary file is left."""
    for summary_file in done(out):
        summary = json.loads(summary_file.read_text())
        for output in summary["outputs"]:
            if output.endswith(".parquet"):
                pd.read_parquet(output)
            elif output.endswith(".csv"):
                pd.read_csv(output)
    assert not [p for p in out.iterdir() if p.name.startswith(".") or ".tmp" in p.name]


@pytest.mark.slow
def test_a_killed_job_continues_and_skips_what_is_done(folder, frame_model_file, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(predict(folder, frame_model_file, out))
    deadline = time.monotonic() + 240
    while len(done(out)) < 2 and process.poll() is None:
        assert time.monotonic() < deadline, "no input finished"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = {p.name: p.stat().st_mtime_ns for p in done(out)}
    assert 2 <= len(first) < INPUTS, "the job finished before it could be killed"
    assert not (out / "fervid-job-summary.csv").exists()
    assert_whole(out)

    result = subprocess.run(predict(folder, frame_model_file, out), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(done(out)) == INPUTS
    assert {p.name: p.stat().st_mtime_ns for p in done(out) if p.name in first} == first
    printed = [line for line in result.stdout.splitlines() if line.startswith(str(folder))]
    assert len(printed) == INPUTS - len(first)  # only the inputs not done before were predicted
    assert_whole(out)
    summary = pd.read_csv(out / "fervid-job-summary.csv", keep_default_na=False)
    assert sorted(summary["file"]) == sorted(str(p) for p in folder.glob("*.mp4"))
    assert (summary["error"] == "").all() and (summary["frames"] == base.FRAMES).all()
    assert summary["duration_s"].tolist() == pytest.approx([base.FRAMES / base.FPS] * INPUTS)

    again = subprocess.run(predict(folder, frame_model_file, out), capture_output=True, text=True)
    assert again.returncode == 0 and not [
        line for line in again.stdout.splitlines() if line.startswith(str(folder))
    ]
    redo = subprocess.run(
        predict(folder, frame_model_file, out, "--redo", "--every", "2"),
        capture_output=True,
        text=True,
    )
    assert redo.returncode == 0
    assert all(json.loads(p.read_text())["options"]["every"] == 2 for p in done(out))


@pytest.mark.slow
def test_other_options_are_not_taken_for_done(folder, frame_model_file, tmp_path):
    out = tmp_path / "out"
    inputs = tmp_path / "list.txt"
    clip = folder / "clip00.mp4"
    inputs.write_text(f"# one clip\n{clip}\n")
    command = [sys.executable, "-m", "fervid", "-q", "predict", "--inputs-from", str(inputs)]
    command += ["--model", str(frame_model_file), "--out", str(out)]
    assert subprocess.run(command, capture_output=True).returncode == 0
    before = (out / "clip00.json").stat().st_mtime_ns
    result = subprocess.run([*command, "--every", "3"], capture_output=True, text=True)
    assert result.returncode == 0
    assert (out / "clip00.json").stat().st_mtime_ns != before  # new options: predicted again
    assert json.loads((out / "clip00.json").read_text())["options"]["every"] == 3


frame_model_file = base.frame_model_file  # fixture
