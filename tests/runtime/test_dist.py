"""The collectives of fervid.runtime.dist: one process (no process group) and two (torchrun)."""

import pytest
import torch

from fervid.runtime.dist import all_gather_cat, is_distributed, mean_over_rows
from tests.helpers import DISTRIBUTED, torchrun

SCRIPT = DISTRIBUTED / "unequal_collectives.py"


def test_collectives_without_a_process_group_see_only_this_process():
    assert not is_distributed()
    rows = torch.arange(21).view(7, 3)
    assert torch.equal(all_gather_cat(rows), rows)
    assert torch.equal(all_gather_cat(rows[:0]), rows[:0])
    probs = torch.softmax(torch.randn(7, 8), dim=1)
    torch.testing.assert_close(mean_over_rows(probs), probs.mean(dim=0))
    torch.testing.assert_close(mean_over_rows(probs[:, 0]), probs[:, 0].mean())


@pytest.mark.slow
def test_collectives_on_parts_of_different_sizes_under_torchrun():
    result = torchrun(2, target=(str(SCRIPT),))
    assert result.returncode == 0, result.stderr[-3000:]
