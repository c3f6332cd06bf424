"""Run under torchrun (any number of processes), or plainly for one process: one stage-1
training step (``Stage1Step``, supervised) on a fixed, seeded global batch of argv[2] rows (8
by default), each process taking its equal share. The gradients the optimizer would apply are
captured just before its step (after DDP's all-reduce) and written with ``torch.save`` to
``argv[1].rank<r>``.

The backbone is ``test_vit`` (LayerNorm, no BatchNorm: per-process batch statistics would
differ from the whole batch's), dropout is off and the batch goes in without the random weak
augmentation (whose per-sample draws depend on how the batch is split), so the only difference
between one process and several is where the gradient is summed."""

import sys

import torch

from fervid.config import load_config
from fervid.data.frames import FrameBatch
from fervid.runtime.dist import init_from_environment, rank, world_size
from fervid.stage1.train import Stage1Step

OPTIONS = [
    "model.backbone=test_vit",
    "model.input_size=32",
    "model.drop_rate=0",
    "train.channels_last=false",
    "train.precision=fp32",
    "train.device=cpu",
]


def global_batch(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (rows, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return images, torch.randint(0, 8, (rows,), generator=generator)


def step_gradients(rows: torch.Tensor, batch_rows: int = 8) -> dict[str, torch.Tensor]:
    """The gradient of one step on ``rows`` of the global batch (DDP-averaged over the
    processes when there are several)."""
    torch.manual_seed(0)  # the same initial weights on every process
    step = Stage1Step(load_config(None, OPTIONS), num_unlabelled=0, device=torch.device("cpu"))
    captured: dict[str, torch.Tensor] = {}

    def capture(optimizer, args, kwargs):
        for name, parameter in step.model.named_parameters():
            if parameter.grad is not None:
                captured[name] = parameter.grad.detach().clone()

    step.optimizer.register_step_pre_hook(capture)
    images, labels = global_batch(batch_rows)
    batch = FrameBatch(images[rows], labels[rows], rows, [])
    step(batch, None, None, update=True)  # update: DDP all-reduces; no rng: no augmentation
    assert captured, "the optimizer step was not reached"
    return captured


def main(out: str, batch_rows: int = 8) -> None:
    init_from_environment()
    assert batch_rows % world_size() == 0, "equal shares: DDP averages the per-process means"
    mine = torch.tensor_split(torch.arange(batch_rows), world_size())[rank()]
    torch.save(step_gradients(mine, batch_rows), f"{out}.rank{rank()}")


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:]))
