"""Live and streamed input for fervid predict: a pipe on standard input, a URL served by a
loopback HTTP server, JSON lines as rows come, frames dropped (and counted) to keep up, and a
clean stop on Ctrl-C with the outputs so far written. Real media: the WolfgangLanger clip."""

import functools
import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tests.predict.test_time_axis as base
from fervid import schema
from fervid.predict import PredictOptions, Predictor
from tests.helpers import REPO

CLIP = "WolfgangLanger_Pexels.mp4"
FRAMES = 472
PACE = REPO / "benchmarks" / "live.py"


def predict_command(model, out, *inputs_and_options):
    return [sys.executable, "-m", "fervid", "-q", "predict", *inputs_and_options] + [
        "--model",
        str(model),
        "--out",
        str(out),
    ]


def rows_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def served(shared_data_dir):
    """The shared media over HTTP on 127.0.0.1 (a free port), for the module's tests."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=shared_data_dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def shared_data_dir():
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / CLIP).is_file():
        pytest.skip("../shared/data is not present in this checkout")
    return str(SHARED_DATA)


@pytest.mark.slow
def test_a_url_over_loopback_http_predicts_like_the_file(served, shared_data_dir, frame_model_file):
    predictor = Predictor(frame_model_file, PredictOptions(batch_size=32))
    from_url = predictor.run(f"{served}/{CLIP}")
    from_file = predictor.run(Path(shared_data_dir) / CLIP)
    assert from_url.summary["frames_decoded"] == FRAMES
    assert from_url.path.stem == Path(CLIP).stem
    columns = [schema.FRAME, "track", *schema.PROB_COLUMNS]
    pd.testing.assert_frame_equal(from_url.table[columns], from_file.table[columns])


@pytest.mark.slow
def test_a_pipe_in_live_mode_streams_json_lines_and_counts_what_it_dropped(
    shared_data_dir, frame_model_file, tmp_path
):
    out = tmp_path / "out"
    with open(Path(shared_data_dir) / CLIP, "rb") as clip:
        result = subprocess.run(
            predict_command(frame_model_file, out, "-", "--live"),
            stdin=clip,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = rows_of(result.stdout)  # stdout holds nothing but the rows
    summary = json.loads((out / "stdin.json").read_text())
    assert summary["file"] == "-" and summary["frames_decoded"] == FRAMES
    # the detector finds the one face in every frame it sees: each frame was either dropped to
    # keep up (the pipe comes faster than real time) or gave one row
    assert len(rows) + summary["dropped_frames"] == FRAMES and len(rows) > 20
    frames = [row[schema.FRAME] for row in rows]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    for row in rows[:20]:
        probs = [row[name] for name in schema.PROB_COLUMNS]
        assert sum(probs) == pytest.approx(1, abs=1e-3)
        assert row[schema.PRED_NAME] == schema.PROB_COLUMNS[int(np.argmax(probs))]
        assert row["file"] == "-" and row["latency_s"] >= 0 and row["track"] == 1
    assert f"{summary['dropped_frames']} dropped to keep up" in result.stderr
    table = pd.read_parquet(out / "stdin.parquet")  # the temporal table of what was seen
    assert table["detected"].sum() == len(rows)


@pytest.mark.slow
def test_ctrl_c_stops_a_live_stream_cleanly_with_its_outputs_written(
    shared_data_dir, frame_model_file, tmp_path
):
    """The clip fed at its own frame rate (benchmarks/live.py's pacer, as MPEG-TS through a
    pipe); SIGINT after the first rows."""
    out = tmp_path / "out"
    pacer = subprocess.Popen(
        [sys.executable, str(PACE), "--pace", str(Path(shared_data_dir) / CLIP)],
        stdout=subprocess.PIPE,
    )
    process = subprocess.Popen(
        predict_command(frame_model_file, out, "-", "--live"),
        stdin=pacer.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pacer.stdout.close()
    first = process.stdout.readline()  # a row came out while the stream goes on
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    rest, errors = process.communicate(timeout=120)
    pacer.kill()
    assert process.returncode == 130, errors[-2000:]
    rows = rows_of(first + rest)  # every line written is a whole JSON row
    summary = json.loads((out / "stdin.json").read_text())
    assert summary["interrupted"] is True
    assert 0 < summary["frames_decoded"] < FRAMES
    assert len(rows) == pd.read_parquet(out / "stdin.parquet")["detected"].sum()
    assert (out / "fervid-job-summary.csv").is_file()
    assert "Traceback" not in errors


frame_model_file = base.frame_model_file  # fixture
