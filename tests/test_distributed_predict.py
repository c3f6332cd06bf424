"""fervid predict under torchrun with 2 CPU processes: the inputs are shared out, every input
gets its outputs, a bad input is reported once and fails the run."""

import pandas as pd

from .helpers import torchrun
from .test_predict import random_weights_model, write_video  # noqa: F401 (fixture)


def test_two_processes_predict_every_input_once(random_weights_model, tmp_path):  # noqa: F811
    videos = [write_video(tmp_path / f"clip{k}.mp4", frames=6) for k in range(3)]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    out = tmp_path / "out"
    result = torchrun(
        2, "predict", *map(str, videos), str(broken), "--model", str(random_weights_model),
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode != 0  # one input failed
    assert result.stderr.count("broken.mp4") >= 1
    assert result.stderr.count("error: ") == 1  # reported once, by process 0
    for video in videos:
        table = pd.read_parquet(out / f"{video.stem}.parquet")  # no face: an empty table
        assert (out / f"{video.stem}.json").is_file()
        assert "frame" in table.columns
