"""Run under torchrun (any number of processes): the pseudo-label statistics of a few steps on a
fixed global batch (argv[3] rows, 48 by default), each process taking its share (as equal as
the batch allows: 15 rows on 2 processes are 8 and 7, as when a process drops a corrupt image);
every process writes them as JSON to ``argv[1].rank<r>``."""

import json
import sys

import torch

from fervid.config import SSLConfig
from fervid.runtime.dist import init_from_environment, rank, world_size
from fervid.stage1.objective import PseudoLabelObjective

FEATURES, POOL, STEPS = 16, 200, 5


def main(out: str, threshold: str, global_batch: int = 48) -> None:
    init_from_environment()
    torch.manual_seed(0)  # the same model and data on every process
    model, teacher = torch.nn.Linear(FEATURES, 8), torch.nn.Linear(FEATURES, 8)
    config = SSLConfig(
        enabled=True,
        threshold=threshold,
        tau=0.3,
        debias_lambda=0.5,
        debias_momentum=0.7,
        free_momentum=0.7,
    )
    objective = PseudoLabelObjective(config, num_unlabelled=POOL)
    mine = torch.tensor_split(torch.arange(global_batch), world_size())[rank()]
    for _ in range(STEPS):
        labelled, weak, strong = (torch.randn(global_batch, FEATURES) * 3 for _ in range(3))
        labels = torch.randint(0, 8, (global_batch,))
        indices = torch.randperm(POOL)[:global_batch]
        truth = torch.randint(0, 8, (global_batch,))
        objective(
            model,
            teacher,
            labelled[mine],
            labels[mine],
            weak[mine],
            strong[mine],
            indices[mine],
            truth[mine],
        )
    result = {
        "p_hat": objective.debias.p_hat.tolist(),
        "thresholds": objective.threshold.thresholds().tolist(),
        "state": {k: v.tolist() for k, v in objective.threshold.state_dict().items()},
    }
    with open(f"{out}.rank{rank()}", "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:]))
