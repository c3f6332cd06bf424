"""The labelled stage-1 loss options (src/fervid/stage1/losses.py): what the module docstring
states about the weights and priors, and where they live."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fervid.config import load_config
from fervid.stage1.losses import LabelledLoss

COUNTS = np.array([50, 3, 1, 0, 20, 10, 5, 11])


def train_config(*overrides: str):
    return load_config(None, ["train.class_balanced=false", *overrides]).train


def test_class_weights_are_inverse_smoothed_frequencies_with_mean_one():
    loss = LabelledLoss(train_config("train.loss=class_weighted"), COUNTS)
    inverse = 1 / (COUNTS + 1.0)  # add-one smoothed, so the empty class gets a finite weight
    expected = inverse / inverse.mean()
    torch.testing.assert_close(loss.weight, torch.tensor(expected, dtype=torch.float32))
    assert loss.weight.mean().item() == pytest.approx(1.0)
    assert loss.adjustment is None


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
