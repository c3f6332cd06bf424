"""The labelled stage-1 loss options (src/fervid/stage1/losses.py), computed by hand on a tiny
batch: what the module docstring states about the weights and priors, and where they live."""

import math

import numpy as np
import pytest
import torch

from fervid.config import load_config
from fervid.errors import ConfigError
from fervid.stage1.losses import LabelledLoss

COUNTS = np.array([50, 3, 1, 0, 20, 10, 5, 11])  # one class with no labelled frame
LOGITS = torch.tensor([[2.0, 0.5, -1.0, 0.0, 1.0, 0.3, -0.2, 0.1], [0.1, 0.2, 3.0, -1, 0, 0, 0, 1]])
LABELS = torch.tensor([0, 2])


def train_config(*overrides: str):
    return load_config(None, ["train.class_balanced=false", *overrides]).train


def log_softmax(row: torch.Tensor) -> list[float]:
    total = math.log(sum(math.exp(v) for v in row.tolist()))
    return [v - total for v in row.tolist()]


def test_plain_cross_entropy_with_label_smoothing():
    eps = 0.1
    loss = LabelledLoss(train_config(f"train.label_smoothing={eps}"))(LOGITS, LABELS)
    by_hand = 0.0
    for row, label in zip(LOGITS, LABELS.tolist(), strict=True):
        logp = log_softmax(row)
        by_hand += -(1 - eps) * logp[label] - eps * sum(logp) / 8
    assert loss.item() == pytest.approx(by_hand / 2, rel=1e-6)


def test_class_weighted_cross_entropy_weights_by_inverse_frequency():
    loss = LabelledLoss(train_config("train.loss=class_weighted"), COUNTS)(LOGITS, LABELS)
    smoothed = COUNTS + 1.0
    inverse = smoothed.sum() / smoothed
    weights = inverse / inverse.mean()
    terms = [
        -w * log_softmax(r)[y] for r, y, w in zip(LOGITS, [0, 2], weights[[0, 2]], strict=True)
    ]
    assert loss.item() == pytest.approx(sum(terms) / weights[[0, 2]].sum(), rel=1e-5)


def test_class_weights_are_inverse_smoothed_frequencies_with_mean_one():
    loss = LabelledLoss(train_config("train.loss=class_weighted"), COUNTS)
    inverse = 1 / (COUNTS + 1.0)  # add-one smoothed, so the empty class gets a finite weight
    expected = inverse / inverse.mean()
    torch.testing.assert_close(loss.weight, torch.tensor(expected, dtype=torch.float32))
    assert loss.weight.mean().item() == pytest.approx(1.0)
    assert loss.adjustment is None


def test_logit_adjusted_cross_entropy_adds_tau_log_prior():
    tau = 0.7
    loss = LabelledLoss(
        train_config("train.loss=logit_adjusted", f"train.logit_adjust_tau={tau}"), COUNTS
    )(LOGITS, LABELS)
    prior = (COUNTS + 1.0) / (COUNTS + 1.0).sum()
    adjusted = LOGITS + tau * torch.tensor(np.log(prior), dtype=torch.float32)
    by_hand = -(log_softmax(adjusted[0])[0] + log_softmax(adjusted[1])[2]) / 2
    assert loss.item() == pytest.approx(by_hand, rel=1e-5)
    # the rare class's logit is pushed down in training, so the model learns to raise it
    assert adjusted[1, 2] < LOGITS[1, 2]


def test_logit_adjustment_is_tau_times_the_log_of_the_smoothed_prior():
    loss = LabelledLoss(
        train_config("train.loss=logit_adjusted", "train.logit_adjust_tau=0.5"), COUNTS
    )
    prior = (COUNTS + 1.0) / (COUNTS + 1.0).sum()
    torch.testing.assert_close(
        loss.adjustment, torch.tensor(0.5 * np.log(prior), dtype=torch.float32)
    )
    assert loss.weight is None


def test_plain_cross_entropy_needs_no_counts_and_has_no_weight_or_adjustment():
    loss = LabelledLoss(train_config())
    assert loss.weight is None and loss.adjustment is None


@pytest.mark.parametrize("name", ["class_weighted", "logit_adjusted"])
def test_corrections_without_class_counts_say_what_is_missing(name):
    with pytest.raises(ValueError, match=f"^train.loss={name} needs the labelled class counts$"):
        LabelledLoss(train_config(f"train.loss={name}"))


@pytest.mark.parametrize("name", ["class_weighted", "logit_adjusted"])
def test_corrections_move_their_tensors_to_the_logits_device(name):
    """Checked on the meta device, which needs no GPU: the weights and prior stay on the CPU,
    the logits are elsewhere."""
    loss = LabelledLoss(train_config(f"train.loss={name}"), COUNTS)
    logits = torch.zeros(2, 8, device="meta")
    value = loss(logits, torch.zeros(2, dtype=torch.long, device="meta"))
    assert value.device.type == "meta"


def test_the_corrections_are_refused_with_class_uniform_batches():
    for loss in ("class_weighted", "logit_adjusted"):
        with pytest.raises(ConfigError, match="^train.loss: .*class_balanced=false"):
            load_config(None, [f"train.loss={loss}"])
    with pytest.raises(ConfigError, match="train.loss: must be one of"):
        load_config(None, ["train.loss=focal"])


@pytest.mark.slow
def test_a_stage1_run_trains_with_the_logit_adjusted_loss_of_its_labelled_counts(
    colour_coded_dataset, tmp_path, monkeypatch
):
    from fervid.api import train
    from fervid.stage1 import train as stage1_train
    from tests.stage1.test_supervised import TINY

    built = []
    original = stage1_train.LabelledLoss

    def spy(config, class_counts=None):
        built.append(class_counts)
        return original(config, class_counts)

    monkeypatch.setattr(stage1_train, "LabelledLoss", spy)
    config = load_config(
        None,
        [
            f"data.root={colour_coded_dataset}",
            *TINY,
            "train.epochs=1",
            "train.class_balanced=false",
            "train.loss=logit_adjusted",
            "train.label_smoothing=0.1",
        ],
    )
    metrics = train(config, tmp_path / "run", progress=False)
    (counts,) = built
    labels = load_config(None, [f"data.root={colour_coded_dataset}"]).data
    from fervid.data.sources import labelled_split

    table = labelled_split(labels, "train").with_images()
    assert counts.tolist() == np.bincount(table.label, minlength=8).tolist()
    assert "macro_f1" in metrics and (tmp_path / "run" / "model.safetensors").exists()
