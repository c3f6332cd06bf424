"""Two processes under torchrun (gloo) keep the same SSL statistics as one process."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parent / "distributed" / "ssl_statistics.py"


def run_torchrun(processes: int, out: Path, threshold: str) -> None:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={processes}",
        "--master-port=0",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=127.0.0.1:0",
        str(SCRIPT),
        str(out),
        threshold,
    ]
    subprocess.run(command, check=True, timeout=240, capture_output=True)


@pytest.mark.parametrize("threshold", ["flex", "free"])
def test_two_processes_match_one_process_statistics(tmp_path, threshold):
    run_torchrun(1, tmp_path / "one", threshold)
    run_torchrun(2, tmp_path / "two", threshold)
    one = json.loads((tmp_path / "one.rank0").read_text())
    two = [json.loads((tmp_path / f"two.rank{r}").read_text()) for r in range(2)]
    assert two[0] == two[1]  # every process holds the same statistics
    np.testing.assert_allclose(two[0]["p_hat"], one["p_hat"], rtol=1e-5)
    np.testing.assert_allclose(two[0]["thresholds"], one["thresholds"], rtol=1e-5)
    for name, values in one["state"].items():
        np.testing.assert_allclose(two[0]["state"][name], values, rtol=1e-5)
    assert one["p_hat"] != [0.125] * 8
