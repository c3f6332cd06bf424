"""Two processes under torchrun (gloo) keep the same SSL statistics as one process, also when
the processes hold batches of different sizes (a corrupt unlabelled image is dropped on one)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import DISTRIBUTED, torchrun
from tests.stage1.test_ssl import SSL

SCRIPT = DISTRIBUTED / "ssl_statistics.py"


def run_statistics(processes: int, out: Path, threshold: str, global_batch: int) -> None:
    result = torchrun(processes, str(out), threshold, str(global_batch), target=(str(SCRIPT),))
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("global_batch", [48, 15])  # 15: 8 and 7 rows on the two processes
@pytest.mark.parametrize("threshold", ["flex", "free"])
@pytest.mark.slow
def test_two_processes_match_one_process_statistics(tmp_path, threshold, global_batch):
    run_statistics(1, tmp_path / "one", threshold, global_batch)
    run_statistics(2, tmp_path / "two", threshold, global_batch)
    one = json.loads((tmp_path / "one.rank0").read_text())
    two = [json.loads((tmp_path / f"two.rank{r}").read_text()) for r in range(2)]
    assert two[0] == two[1]  # every process holds the same statistics
    np.testing.assert_allclose(two[0]["p_hat"], one["p_hat"], rtol=1e-5)
    np.testing.assert_allclose(two[0]["thresholds"], one["thresholds"], rtol=1e-5)
    for name, values in one["state"].items():
        np.testing.assert_allclose(two[0]["state"][name], values, rtol=1e-5)
    assert one["p_hat"] != [0.125] * 8


@pytest.mark.slow
def test_flexmatch_under_torchrun_survives_a_corrupt_unlabelled_image(
    colour_coded_dataset, tmp_path
):
    pool = shutil.copytree(colour_coded_dataset / "unlabelled", tmp_path / "pool")
    (pool / "cropped_aligned" / "pool_00" / "00005.jpg").write_bytes(b"not a jpeg" * 20)
    run = tmp_path / "run"
    options = [
        f"data.root={colour_coded_dataset}",
        *SSL,
        "data.cache_images=false",  # stream the pool, so the corrupt image is met in a batch
        "ssl.dataset_pool=false",
        f"ssl.unlabelled=[{pool}]",
    ]
    result = torchrun(2, "train", "--run-dir", str(run), *options)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "model.safetensors").exists()
    assert len((run / "steps.jsonl").read_text().splitlines()) == 4
