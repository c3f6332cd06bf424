"""Run under torchrun (any number of processes): the pseudo-label statistics of a few steps on a
fixed global batch, each process taking its share; rank 0 writes them as JSON to argv[1]."""

import json
import sys

import torch

from fervid.config import SSLConfig
from fervid.runtime.dist import init_from_environment, rank, world_size
from fervid.stage1.objective import PseudoLabelObjective

GLOBAL_BATCH, FEATURES, POOL, STEPS = 48, 16, 200, 5


def main(out: str, threshold: str) -> None:
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
    share = GLOBAL_BATCH // world_size()
    mine = slice(rank() * share, (rank() + 1) * share)
    for _ in range(STEPS):
        labelled, weak, strong = (torch.randn(GLOBAL_BATCH, FEATURES) * 3 for _ in range(3))
        labels = torch.randint(0, 8, (GLOBAL_BATCH,))
        indices = torch.randperm(POOL)[:GLOBAL_BATCH]
        truth = torch.randint(0, 8, (GLOBAL_BATCH,))
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
    main(sys.argv[1], sys.argv[2])
