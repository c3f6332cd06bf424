"""Two processes under torchrun (gloo) keep the same SSL statistics as one process."""

import json
from pathlib import Path

import numpy as np
import pytest

from .helpers import torchrun

SCRIPT = Path(__file__).parent / "distributed" / "ssl_statistics.py"


def run_statistics(processes: int, out: Path, threshold: str) -> None:
    result = torchrun(processes, str(out), threshold, target=(str(SCRIPT),))
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("threshold", ["flex", "free"])
def test_two_processes_match_one_process_statistics(tmp_path, threshold):
    run_statistics(1, tmp_path / "one", threshold)
    run_statistics(2, tmp_path / "two", threshold)
    one = json.loads((tmp_path / "one.rank0").read_text())
    two = [json.loads((tmp_path / f"two.rank{r}").read_text()) for r in range(2)]
    assert two[0] == two[1]  # every process holds the same statistics
    np.testing.assert_allclose(two[0]["p_hat"], one["p_hat"], rtol=1e-5)
    np.testing.assert_allclose(two[0]["thresholds"], one["thresholds"], rtol=1e-5)
    for name, values in one["state"].items():
        np.testing.assert_allclose(two[0]["state"][name], values, rtol=1e-5)
    assert one["p_hat"] != [0.125] * 8
