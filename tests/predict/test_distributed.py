"""fervid predict under torchrun with 2 CPU processes: the inputs are shared out, every input
gets its outputs, a bad input is reported once and fails the run."""

import pandas as pd
import pytest

from tests.helpers import DISTRIBUTED, torchrun
from tests.predict.test_predict import random_weights_model, write_video  # noqa: F401 (fixture)

SCRIPT = DISTRIBUTED / "ddp_predict.py"


@pytest.mark.slow
def test_two_processes_predict_every_input_once(random_weights_model, tmp_path):  # noqa: F811
    videos = [write_video(tmp_path / f"clip{k}.mp4", frames=6) for k in range(3)]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    out = tmp_path / "out"
    printed = tmp_path / "stdout"
    result = torchrun(
        2, str(printed), "-q", "predict", *map(str, videos), str(broken),
        "--model", str(random_weights_model), "--out", str(out),
        target=(str(SCRIPT),),
    )  # fmt: skip
    assert result.returncode != 0  # one input failed
    assert result.stderr.count("broken.mp4") >= 1
    assert result.stderr.count("error: ") == 1  # reported once, by process 0
    # each process printed a line per input it predicted: disjoint shares covering every input
    shares = []
    for rank in range(2):
        lines = (tmp_path / f"stdout.rank{rank}").read_text().splitlines()
        shares.append([line.split(": ")[0] for line in lines if not line.startswith("outputs:")])
    assert all(shares), shares  # both processes did some of the work
    assert sorted(shares[0] + shares[1]) == sorted(map(str, videos))  # each input exactly once
    assert set(shares[0]).isdisjoint(shares[1])
    # every good input has its outputs, once; the broken one has none
    names = [path.name for path in out.iterdir()]
    for video in videos:
        mine = sorted(name for name in names if name.split(".")[0] == video.stem)
        assert mine == [f"{video.stem}.{kind}" for kind in ("csv", "json", "parquet")]
    assert not [name for name in names if name.startswith("broken")]
    for video in videos:
        table = pd.read_parquet(out / f"{video.stem}.parquet")  # no face: an empty table
        assert "frame" in table.columns and table.empty
