"""The EMA model / teacher of stage 1: its decay (with and without timm's warm-up) and the clock
it runs on (optimizer steps, also under gradient accumulation)."""

import pytest
import torch

from fervid.api import train
from fervid.config import load_config
from fervid.data.frames import FrameBatch
from fervid.runtime.checkpoint import load_weights
from fervid.stage1 import train as stage1_train
from fervid.stage1.train import Stage1Step
from tests.stage1.test_supervised import TINY


def tiny_step(*overrides: str) -> Stage1Step:
    config = load_config(None, [*TINY, "train.ema=true", "model.drop_rate=0", *overrides])
    torch.manual_seed(0)
    return Stage1Step(config, num_unlabelled=0, device=torch.device("cpu"))


def batch(seed: int) -> FrameBatch:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return FrameBatch(images, torch.arange(8) % 8, torch.arange(8), [])


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}


@pytest.mark.parametrize(
    ("warmup", "decays"),
    [(False, [0.0, 0.0, 0.9, 0.9]), (True, [0.0, 0.0, 1 - 2 ** (-2 / 3), 1 - 3 ** (-2 / 3)])],
)
@pytest.mark.slow
def test_the_ema_is_the_decay_weighted_average_of_the_model(warmup, decays):
    """After optimizer step t: ema = d_t * ema + (1 - d_t) * model, where d_t = 0 for t <= 1 (the
    EMA starts as a copy), then the momentum (0.9) without the warm-up, min(0.9, 1 - t^(-2/3))
    with it."""
    step = tiny_step("train.ema_momentum=0.9", f"train.ema_warmup={str(warmup).lower()}")
    expected = parameters(step.ema.module)
    rng = torch.Generator().manual_seed(0)
    for t, decay in enumerate(decays):
        step(batch(t), None, rng, update=True, global_step=t)
        model = parameters(step.model)
        expected = {k: decay * expected[k] + (1 - decay) * model[k] for k in expected}
        got = parameters(step.ema.module)
        for name, value in expected.items():
            torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-6)
    moved = [k for k in expected if not torch.equal(got[k], model[k])]
    assert moved, "the EMA should differ from the model it averages"


@pytest.mark.slow
def test_the_ema_clock_and_the_epoch_count_optimizer_steps_under_accumulation(
    colour_coded_dataset, tmp_path, monkeypatch
):
    """train.steps_per_epoch counts optimizer steps: with accumulate=2 an epoch of 3 steps reads
    6 batches and the EMA is updated 3 times, at optimizer steps 0, 1, 2."""
    seen_steps, batches = [], []
    original_update, original_call = stage1_train.ModelEmaV3.update, Stage1Step.__call__

    def update(self, model, step=None):
        seen_steps.append(step)
        return original_update(self, model, step=step)

    def call(self, labelled, *args, **kwargs):
        batches.append(len(labelled.labels))
        return original_call(self, labelled, *args, **kwargs)

    monkeypatch.setattr(stage1_train.ModelEmaV3, "update", update)
    monkeypatch.setattr(Stage1Step, "__call__", call)
    config = load_config(
        None,
        [
            f"data.root={colour_coded_dataset}",
            *TINY,
            "train.epochs=1",
            "train.steps_per_epoch=3",
            "train.accumulate=2",
            "train.batch_size=8",
            "train.ema=true",
        ],
    )
    train(config, tmp_path / "run", progress=False)
    assert batches == [8] * 6
    assert seen_steps == [0, 1, 2]
    saved, _ = load_weights(tmp_path / "run" / "model.safetensors")
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    for name, value in checkpoint["ema"].items():  # with train.ema the saved model is the EMA
        torch.testing.assert_close(saved[name], value)
    assert any(not torch.equal(checkpoint["model"][k], v) for k, v in checkpoint["ema"].items())
