"""The stage-1 pseudo-label objective (src/fervid/stage1/objective.py) computed by hand on a tiny
batch, from the method's formulas (docs/testing.md):

    loss = CE(z_l, y_l) + w * mean_i( mask_i * CE(z_s,i + lambda * log p_hat, y_hat_i) )

with y_hat and mask from the debiased weak-view probabilities softmax(z_w - lambda log p_hat)
(p_hat before this step's update), p_hat <- m p_hat + (1 - m) mean softmax(z_w) before the
strong-view loss, and w = lambda_u * min(1, epochs / rampup_epochs).

The "model" is x -> weight * x with weight = 1, so the logits are the inputs and every number
below follows from the inputs alone.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fervid.config import SSLConfig, load_config
from fervid.errors import ConfigError
from fervid.stage1.objective import PseudoLabelObjective
from fervid.stage1.thresholds import FixedThreshold, FlexThreshold, FreeThreshold

C = 3


class Scale(nn.Module):
    """logits = weight * x; records the batch size of every call."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(1.0))
        self.calls: list[int] = []

    def forward(self, x):
        self.calls.append(len(x))
        return x * self.weight


def ce(row, label):
    """Cross-entropy of one row of logits, by hand."""
    return -row[label] + math.log(sum(math.exp(v) for v in row))


def softmax(row):
    total = sum(math.exp(v) for v in row)
    return [math.exp(v) / total for v in row]


# labelled batch: n = 2 rows of logits and their labels
LABELLED = [[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]
LABELS = [0, 2]
# weak view: m = 3 rows, the logs of these raw probabilities
WEAK_PROBS = [[0.6, 0.2, 0.2], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]]
STRONG = [[0.0, 1.0, 0.0], [0.5, 0.0, 1.0], [1.0, 1.0, -1.0]]
TRUTH = [0, 2, -1]  # the pool's truth for the stats (-1: unknown)
P_HAT = [0.5, 0.25, 0.25]  # p_hat before the step
LAMBDA, MOMENTUM, TAU = 1.0, 0.5, 0.5
LAMBDA_U, RAMPUP, EPOCHS_DONE = 2.0, 4.0, 1.0  # w = 2 * 1/4


def by_hand():
    """Every quantity of one step, from the formulas (independent of the code under test)."""
    # debiased pseudo-label distribution: proportional to r / p_hat (z_w = log r, lambda = 1)
    debiased = []
    for r in WEAK_PROBS:
        scaled = [ri / pi for ri, pi in zip(r, P_HAT, strict=True)]
        debiased.append([s / sum(scaled) for s in scaled])
    # row 0: [0.429, 0.286, 0.286] -> class 0 at 0.43 < tau: rejected (0.6 >= tau without
    # debiasing); row 1: [0.333, 0.533, 0.133] -> class 1 (class 0 without debiasing), kept;
    # row 2: class 2 at 0.84, kept
    pseudo = [max(range(C), key=lambda k, row=row: row[k]) for row in debiased]
    mask = [1.0 if max(row) >= TAU else 0.0 for row in debiased]
    assert pseudo == [0, 1, 2] and mask == [0.0, 1.0, 1.0]
    # p_hat update with the raw weak softmax, used by the strong-view loss
    mean_raw = [sum(r[k] for r in WEAK_PROBS) / 3 for k in range(C)]
    p_hat = [MOMENTUM * p + (1 - MOMENTUM) * q for p, q in zip(P_HAT, mean_raw, strict=True)]
    labelled = sum(ce(row, y) for row, y in zip(LABELLED, LABELS, strict=True)) / 2
    unlabelled = (
        sum(
            mk * ce([z + LAMBDA * math.log(p) for z, p in zip(row, p_hat, strict=True)], y)
            for row, y, mk in zip(STRONG, pseudo, mask, strict=True)
        )
        / 3  # the mean runs over all m samples, masked ones count as 0
    )
    weight = LAMBDA_U * min(1.0, EPOCHS_DONE / RAMPUP)
    return {
        "labelled": labelled,
        "unlabelled": unlabelled,
        "weight": weight,
        "loss": labelled + weight * unlabelled,
        "p_hat": p_hat,
        "pseudo": pseudo,
        "mask": mask,
    }


def make_config(**overrides) -> SSLConfig:
    options = dict(
        threshold="fixed",
        tau=TAU,
        debias_lambda=LAMBDA,
        debias_momentum=MOMENTUM,
        lambda_u=LAMBDA_U,
        rampup_epochs=RAMPUP,
    )
    options.update(overrides)
    return SSLConfig(**options)


def make_objective(**overrides) -> PseudoLabelObjective:
    objective = PseudoLabelObjective(make_config(**overrides), num_unlabelled=10, num_classes=C)
    objective.load_state_dict({"threshold": {}, "debias": {"p_hat": torch.tensor(P_HAT)}})
    objective.set_progress(EPOCHS_DONE)
    return objective


def batch(requires_grad: bool = False):
    labelled = torch.tensor(LABELLED, requires_grad=requires_grad)
    weak = torch.log(torch.tensor(WEAK_PROBS)).requires_grad_(requires_grad)
    strong = torch.tensor(STRONG, requires_grad=requires_grad)
    return dict(
        labelled=labelled,
        labels=torch.tensor(LABELS),
        weak=weak,
        strong=strong,
        indices=torch.tensor([4, 7, 9]),
        truth=torch.tensor(TRUTH),
    )


def test_ema_teacher_step_equals_the_loss_computed_by_hand():
    expected = by_hand()
    objective = make_objective()
    model, teacher = Scale(), Scale()
    loss = objective(model, teacher, **batch())
    assert loss.item() == pytest.approx(expected["loss"], rel=1e-6)
    torch.testing.assert_close(objective.debias.p_hat, torch.tensor(expected["p_hat"]))
    # the teacher sees the weak view alone; the model the labelled and strong views together
    assert teacher.calls == [3] and model.calls == [2 + 3]
    loss.backward()
    assert teacher.weight.grad is None  # the teacher pseudo-labels without gradients
    assert model.weight.grad is not None


def test_model_teacher_step_is_one_forward_pass_with_the_same_loss():
    """ssl.teacher=model (teacher None): labelled, weak and strong views in one forward pass,
    the weak part of the logits used as the teacher's (detached)."""
    expected = by_hand()
    objective = make_objective(teacher="model")
    model = Scale()
    loss = objective(model, None, **batch())
    assert model.calls == [2 + 3 + 3]
    assert loss.item() == pytest.approx(expected["loss"], rel=1e-6)


def test_model_teacher_sends_no_gradient_through_the_pseudo_labels():
    objective = make_objective(teacher="model")
    parts = batch(requires_grad=True)
    objective(Scale(), None, **parts).backward()
    assert torch.count_nonzero(parts["weak"].grad) == 0  # weak logits are detached
    assert torch.count_nonzero(parts["labelled"].grad) == 6
    # the strong rows that passed the mask get a gradient, the rejected row 0 none
    assert parts["strong"].grad[0].abs().sum() == 0
    assert (parts["strong"].grad[1:].abs().sum(dim=1) > 0).all()


def test_model_teacher_slices_logits_into_labelled_weak_and_strong_parts():
    """logits[:n] -> labelled loss, logits[n:n+m] -> pseudo-labels, logits[n+m:] -> strong
    loss (the issue's surviving mutant was logits[n + m:] -> logits[n - m:])."""
    objective = make_objective(teacher="model")
    seen = {}
    labelled_loss, pseudo_label_probs = objective.labelled_loss, objective.debias.pseudo_label_probs
    unlabelled_loss = objective.debias.unlabelled_loss

    def spy_labelled(logits, labels):
        seen["labelled"] = logits.detach().clone()
        return labelled_loss(logits, labels)

    def spy_weak(logits):
        seen["weak"] = logits.detach().clone()
        seen["weak_requires_grad"] = logits.requires_grad
        return pseudo_label_probs(logits)

    def spy_strong(logits, pseudo_labels, mask):
        seen["strong"] = logits.detach().clone()
        seen["pseudo"], seen["mask"] = pseudo_labels.tolist(), mask.tolist()
        return unlabelled_loss(logits, pseudo_labels, mask)

    objective.labelled_loss = spy_labelled
    objective.debias.pseudo_label_probs = spy_weak
    objective.debias.unlabelled_loss = spy_strong
    parts = batch(requires_grad=True)
    objective(Scale(), None, **parts)
    torch.testing.assert_close(seen["labelled"], torch.tensor(LABELLED))
    torch.testing.assert_close(seen["weak"], torch.log(torch.tensor(WEAK_PROBS)))
    torch.testing.assert_close(seen["strong"], torch.tensor(STRONG))
    assert seen["weak_requires_grad"] is False
    assert seen["pseudo"] == by_hand()["pseudo"] and seen["mask"] == by_hand()["mask"]


def test_step_statistics_and_report_by_hand():
    expected = by_hand()
    objective = make_objective()
    objective(Scale(), Scale(), **batch())
    report = objective.report()
    assert report["mask_rate"] == pytest.approx(2 / 3)
    assert report["pseudo_histogram"] == [0.0, 0.5, 0.5]  # kept pseudo-labels: 1 and 2
    # kept with truth: row 1 only (pseudo 1, truth 2): wrong; all with truth: rows 0 (right)
    # and 1 (wrong)
    assert report["pseudo_accuracy"] == 0.0
    assert report["pseudo_accuracy_all"] == 0.5
    assert report["loss_labelled"] == pytest.approx(expected["labelled"], rel=1e-6)
    assert report["loss_unlabelled"] == pytest.approx(expected["unlabelled"], rel=1e-6)
    assert report["unlabelled_weight"] == 0.5
    assert report["thresholds"] == [0.5, 0.5, 0.5]
    # p_hat = [0.45, 0.241666.., 0.308333..], rounded to 5 digits
    assert report["p_hat"] == [0.45, 0.24167, 0.30833]
    assert set(report) == {
        "mask_rate",
        "pseudo_histogram",
        "pseudo_accuracy",
        "pseudo_accuracy_all",
        "loss_labelled",
        "loss_unlabelled",
        "unlabelled_weight",
        "thresholds",
        "p_hat",
    }


def test_report_of_no_step_is_empty_and_a_report_resets_the_counts():
    objective = make_objective()
    empty = {
        "mask_rate": 0.0,
        "pseudo_histogram": [0.0, 0.0, 0.0],
        "pseudo_accuracy": None,
        "pseudo_accuracy_all": None,
        "loss_labelled": 0.0,
        "loss_unlabelled": 0.0,
    }
    assert {k: objective.report()[k] for k in empty} == empty
    objective(Scale(), Scale(), **batch())
    objective.report()
    assert {k: objective.report()[k] for k in empty} == empty


def test_report_averages_over_steps_and_kept_samples_exactly():
    """Two steps: the counts add up (not the last step's), one sample kept in all."""
    objective = make_objective(debias_lambda=0.0)
    model = Scale()
    for row, truth in (([3.0, 0.0, 0.0], 1), ([0.0, 0.0, 0.0], -1)):
        objective(
            model,
            None,
            labelled=torch.tensor([[0.0, 0.0, 0.0]]),
            labels=torch.tensor([1]),
            weak=torch.tensor([row]),
            strong=torch.tensor([[0.0, 0.0, 0.0]]),
            indices=torch.tensor([0]),
            truth=torch.tensor([truth]),
        )
    report = objective.report()
    # step 1: softmax([3,0,0]) = 0.91 on class 0 >= 0.5: kept, wrong (truth 1);
    # step 2: uniform 1/3 < 0.5: rejected, no truth
    assert report["mask_rate"] == 0.5
    assert report["pseudo_histogram"] == [1.0, 0.0, 0.0]
    assert report["pseudo_accuracy"] == 0.0 and report["pseudo_accuracy_all"] == 0.0
    assert report["loss_labelled"] == pytest.approx(math.log(3))  # uniform logits, 2 steps
    # step 1: its one sample kept, CE(zeros, 0) = log 3 (lambda 0); step 2: masked, 0
    assert report["loss_unlabelled"] == pytest.approx(math.log(3) / 2)
    one = make_objective(debias_lambda=0.0)
    one(
        model,
        None,
        labelled=torch.tensor([[0.0, 0.0, 0.0]]),
        labels=torch.tensor([1]),
        weak=torch.tensor([[3.0, 0.0, 0.0]]),
        strong=torch.tensor([[0.0, 0.0, 0.0]]),
        indices=torch.tensor([0]),
        truth=torch.tensor([0]),
    )
    single = one.report()
    assert single["mask_rate"] == 1.0 and single["pseudo_histogram"] == [1.0, 0.0, 0.0]
    assert single["pseudo_accuracy"] == 1.0 and single["pseudo_accuracy_all"] == 1.0
    assert single["loss_labelled"] == pytest.approx(math.log(3))
    assert single["loss_unlabelled"] == pytest.approx(math.log(3))  # CE of zeros, lambda 0


def test_report_rounds_weight_thresholds_and_p_hat_to_five_digits():
    objective = PseudoLabelObjective(
        SSLConfig(threshold="flex", tau=0.8, lambda_u=1.0, rampup_epochs=3.0), 10, num_classes=3
    )
    objective.set_progress(1.0)
    objective.threshold.selected_label[:3] = torch.tensor([0, 0, 2])  # beta = [2/7, 0, 1/7]
    objective.debias.p_hat = torch.tensor([1 / 3, 1 / 6, 1 / 2])
    report = objective.report()
    assert report["unlabelled_weight"] == 0.33333
    beta = [2 / 7, 0.0, 1 / 7]
    assert report["thresholds"] == [round(0.8 * b / (2 - b), 5) for b in beta]
    assert report["thresholds"] == [0.13333, 0.0, 0.06154]  # 0.8 * 2/12, 0, 0.8 / 13
    assert report["p_hat"] == [0.33333, 0.16667, 0.5]


def test_objective_without_ramp_weights_the_unlabelled_loss_by_lambda_u():
    expected = by_hand()
    objective = make_objective(rampup_epochs=0.0)
    loss = objective(Scale(), Scale(), **batch())
    assert objective.weight == LAMBDA_U
    assert loss.item() == pytest.approx(expected["labelled"] + LAMBDA_U * expected["unlabelled"])


def test_objective_passes_its_labelled_loss_the_labelled_logits_as_float():
    calls = []

    def labelled_loss(logits, labels):
        calls.append((logits.dtype, logits.tolist(), labels.tolist()))
        return logits.sum() * 0

    objective = PseudoLabelObjective(
        SSLConfig(threshold="fixed", tau=0.5), 10, labelled_loss=labelled_loss, num_classes=C
    )
    objective(Scale(), Scale(), **batch())
    assert calls == [(torch.float32, LABELLED, LABELS)]


def test_default_labelled_loss_is_plain_cross_entropy():
    objective = PseudoLabelObjective(SSLConfig(), 10)
    assert objective.labelled_loss is F.cross_entropy
    assert objective.debias.p_hat.shape == (8,)  # the 8 ABAW classes by default
    assert objective.threshold.thresholds().shape == (8,)


def test_the_unlabelled_weight_starts_at_zero_with_a_ramp_and_ramps_linearly():
    ramped = PseudoLabelObjective(SSLConfig(lambda_u=3.0, rampup_epochs=0.5), 10)
    assert ramped.weight == 0.0  # before the first set_progress
    ramped.set_progress(0.25)
    assert ramped.weight == pytest.approx(1.5)
    ramped.set_progress(0.75)
    assert ramped.weight == 3.0
    constant = PseudoLabelObjective(SSLConfig(lambda_u=3.0, rampup_epochs=0.0), 10)
    assert constant.weight == 3.0
    constant.set_progress(0.0)
    assert constant.weight == 3.0  # no ramp: full weight from the first step


def test_the_config_reaches_the_threshold_policy_and_debias():
    flex = PseudoLabelObjective(
        SSLConfig(
            threshold="flex",
            tau=0.7,
            flex_warmup=False,
            debias_lambda=0.4,
            debias_momentum=0.9,
        ),
        num_unlabelled=12,
        num_classes=5,
    )
    assert isinstance(flex.threshold, FlexThreshold)
    assert flex.threshold.tau == 0.7 and flex.threshold.warmup is False
    assert flex.threshold.num_classes == 5 and flex.threshold.selected_label.shape == (12,)
    assert flex.debias.strength == 0.4 and flex.debias.momentum == 0.9
    torch.testing.assert_close(flex.debias.p_hat, torch.full((5,), 0.2))
    free = PseudoLabelObjective(SSLConfig(threshold="free", free_momentum=0.8), 12, num_classes=5)
    assert isinstance(free.threshold, FreeThreshold) and free.threshold.momentum == 0.8
    assert free.threshold.thresholds().shape == (5,)
    fixed = PseudoLabelObjective(SSLConfig(threshold="fixed", tau=0.3), 12, num_classes=5)
    assert isinstance(fixed.threshold, FixedThreshold)
    assert fixed.threshold.thresholds().tolist() == pytest.approx([0.3] * 5)


def test_objective_state_dict_holds_threshold_and_debias_state_and_resumes_the_step():
    """The checkpoint layout {"threshold": ..., "debias": {"p_hat": ...}} is what resumed runs
    (and the saved checkpoints) read."""
    objective = make_objective(threshold="flex", tau=0.6)
    objective(Scale(), Scale(), **batch())
    state = objective.state_dict()
    assert set(state) == {"threshold", "debias"}
    assert set(state["threshold"]) == {"selected_label"} and set(state["debias"]) == {"p_hat"}
    restored = PseudoLabelObjective(
        make_config(threshold="flex", tau=0.6), num_unlabelled=10, num_classes=C
    )
    restored.load_state_dict({k: {n: t.clone() for n, t in v.items()} for k, v in state.items()})
    torch.testing.assert_close(restored.debias.p_hat, objective.debias.p_hat)
    torch.testing.assert_close(restored.threshold.thresholds(), objective.threshold.thresholds())
    restored.set_progress(EPOCHS_DONE)
    again = objective(Scale(), Scale(), **batch())
    assert restored(Scale(), Scale(), **batch()).item() == pytest.approx(again.item())


# --- the ssl bounds: on the config fields, checked when the config is built ------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mu", 1),
        ("tau", 0.001),
        ("tau", 0.999),
        ("teacher", "ema"),
        ("teacher", "model"),
        ("lambda_u", 0.0),
        ("lambda_u", 0.5),
        ("debias_lambda", 0.0),
        ("debias_lambda", 0.5),
        ("rampup_epochs", 0.0),
        ("rampup_epochs", 0.5),
        ("teacher_momentum", 0.0),
        ("debias_momentum", 0.0),
        ("free_momentum", 0.0),
        ("free_momentum", 0.999),
        ("threshold", "free"),
    ],
)
def test_ssl_config_accepts_values_on_the_boundary_and_the_objective_builds(field, value):
    config = load_config(None, [f"ssl.{field}={value}"]).ssl
    assert getattr(config, field) == value
    PseudoLabelObjective(config, 10)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mu", 0, "ssl.mu: must be >= 1, got 0"),
        ("tau", 0.0, "ssl.tau: must be > 0 and < 1, got 0.0"),
        ("tau", 1.0, "ssl.tau: must be > 0 and < 1, got 1.0"),
        ("tau", 1.5, "ssl.tau: must be > 0 and < 1, got 1.5"),
        ("teacher", "oracle", "ssl.teacher: must be one of ema, model, got 'oracle'"),
        ("teacher", "MODEL", "ssl.teacher: must be one of ema, model, got 'MODEL'"),
        *[
            (field, -0.1, f"ssl.{field}: must be >= 0, got -0.1")
            for field in ("lambda_u", "debias_lambda", "rampup_epochs")
        ],
        *[
            (field, value, f"ssl.{field}: must be >= 0 and < 1, got {value}")
            for field in ("teacher_momentum", "debias_momentum", "free_momentum")
            for value in (-0.1, 1.0, 1.5)
        ],
        (
            "threshold",
            "adaptive",
            "ssl.threshold: must be one of fixed, flex, free, got 'adaptive'",
        ),
    ],
)
def test_ssl_config_rejects_values_outside_the_bounds_with_the_exact_message(field, value, message):
    """Refused when the config is built, with SSL off (the default) as with it on."""
    for enabled in ("false", "true"):
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
            load_config(None, [f"ssl.enabled={enabled}", f"ssl.{field}={value}"])


def test_pseudo_label_stats_accumulate_counts_over_steps_by_hand():
    from fervid.stage1.objective import PseudoLabelStats

    stats = PseudoLabelStats(3)
    # step 1: kept rows 0-2; truth known for rows 0, 1, 3; pseudo-label right for rows 0 and 3
    stats.add(
        torch.tensor([1.0, 1.0, 1.0, 0.0]),
        torch.tensor([0, 1, 2, 2]),
        torch.tensor([0, 2, -1, 2]),
        torch.tensor(1.0),
        torch.tensor(0.5),
    )
    # step 2: kept row 0 (no truth); row 1 rejected, known and wrong
    stats.add(
        torch.tensor([1.0, 0.0]),
        torch.tensor([1, 0]),
        torch.tensor([-1, 1]),
        torch.tensor(2.0),
        torch.tensor(0.25),
    )
    summary = stats.summary()
    assert summary["mask_rate"] == 4 / 6
    assert summary["pseudo_histogram"] == [0.25, 0.5, 0.25]  # kept: 0, 1, 2 and 1
    assert summary["pseudo_accuracy"] == 1 / 2  # kept with truth: rows 0 (right), 1 (wrong)
    assert summary["pseudo_accuracy_all"] == 2 / 4  # with truth: 4 rows, 2 right
    assert summary["loss_labelled"] == 1.5 and summary["loss_unlabelled"] == 0.375
    stats.add(
        torch.tensor([1.0, 1.0, 1.0]),
        torch.tensor([0, 0, 1]),
        torch.tensor([-1, -1, -1]),
        torch.tensor(0.0),
        torch.tensor(0.0),
    )
    after_reset = stats.summary()
    assert after_reset["pseudo_histogram"] == [0.66667, 0.33333, 0.0]  # rounded to 5 digits
    assert after_reset["pseudo_accuracy"] is None and after_reset["mask_rate"] == 1.0
