"""Threshold policies and DebiasPL against hand-computed examples."""

import pytest
import torch
import torch.nn.functional as F

from fervid.errors import ConfigError
from fervid.stage1.debias import DebiasedPseudoLabeler
from fervid.stage1.thresholds import THRESHOLDS, FixedThreshold, FlexThreshold, FreeThreshold


def probs_of(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_registry_builds_every_policy_by_name():
    assert THRESHOLDS.names() == ["fixed", "flex", "free"]
    assert isinstance(
        THRESHOLDS.build("flex", num_classes=3, num_unlabelled=5, tau=0.9), FlexThreshold
    )


@pytest.mark.parametrize("tau", [0.0, 1.0, 1.5, -0.1])
def test_tau_outside_open_unit_interval_is_rejected(tau):
    with pytest.raises(ConfigError, match="tau"):
        FixedThreshold(3, 10, tau=tau)


def test_fixed_threshold():
    policy = FixedThreshold(3, 10, tau=0.8)
    mask = policy.mask(
        probs_of([[0.9, 0.05, 0.05], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]]), torch.arange(3)
    )
    assert mask.tolist() == [1.0, 0.0, 1.0]
    assert policy.thresholds().tolist() == pytest.approx([0.8] * 3)


def test_flex_threshold_warmup_form_by_hand():
    # 10 unlabelled samples, 3 classes, tau = 0.8
    policy = FlexThreshold(3, 10, tau=0.8)
    # nothing selected yet: sigma = 0, every threshold is 0, every sample passes
    first = probs_of([[0.9, 0.05, 0.05], [0.85, 0.1, 0.05], [0.2, 0.7, 0.1], [0.1, 0.05, 0.85]])
    assert policy.mask(first, torch.tensor([0, 1, 2, 3])).tolist() == [1, 1, 1, 1]
    # confident (>= 0.8): sample 0 -> 0, sample 1 -> 0, sample 3 -> 2; sample 2 not recorded
    assert policy.selected_label.tolist() == [0, 0, -1, 2, -1, -1, -1, -1, -1, -1]
    # sigma = [2, 0, 1], unused = 7 -> beta = sigma / max(2, 7) = [2/7, 0, 1/7]
    beta = torch.tensor([2 / 7, 0, 1 / 7])
    torch.testing.assert_close(policy.class_beta(), beta)
    expected = 0.8 * beta / (2 - beta)
    torch.testing.assert_close(policy.thresholds(), expected)
    second = probs_of([[0.2, 0.1, 0.7], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    mask = policy.mask(second, torch.tensor([4, 5, 6]))
    # sample 4: class 2 at 0.7 >= T(2)=0.0615 -> 1; sample 5: class 1, T(1)=0 -> 1; sample 6: class 0, 0.6 >= 0.133 -> 1
    assert mask.tolist() == [1, 1, 1]
    assert policy.selected_label[5].item() == 1  # 0.8 >= tau: recorded


def test_flex_threshold_without_warmup_uses_max_sigma():
    policy = FlexThreshold(3, 10, tau=0.8, warmup=False)
    policy.selected_label[:4] = torch.tensor([0, 0, 1, 2])
    torch.testing.assert_close(policy.class_beta(), torch.tensor([1.0, 0.5, 0.5]))


def test_flex_state_round_trip():
    policy = FlexThreshold(3, 6, tau=0.7)
    policy.selected_label[:3] = torch.tensor([2, 1, 2])
    restored = FlexThreshold(3, 6, tau=0.7)
    restored.load_state_dict({k: v.clone() for k, v in policy.state_dict().items()})
    torch.testing.assert_close(restored.thresholds(), policy.thresholds())


def test_free_threshold_by_hand():
    policy = FreeThreshold(2, 10, momentum=0.5)
    probs = probs_of([[0.9, 0.1], [0.6, 0.4]])
    mask = policy.mask(probs, torch.arange(2))
    # tau_t = 0.5*0.5 + 0.5*mean(0.9, 0.6) = 0.625; p = 0.5*[.5,.5] + 0.5*[.75,.25] = [.625,.375]
    torch.testing.assert_close(policy.global_confidence, torch.tensor(0.625))
    torch.testing.assert_close(policy.class_probability, torch.tensor([0.625, 0.375]))
    torch.testing.assert_close(policy.thresholds(), torch.tensor([0.625, 0.375]))
    assert mask.tolist() == [1.0, 0.0]  # 0.6 < 0.625


def test_debias_p_hat_moves_toward_the_predicted_class_distribution():
    debias = DebiasedPseudoLabeler(4, strength=0.5, momentum=0.9)
    # the model favours class 2: its raw softmax puts ~70% there on average
    logits = torch.log(torch.tensor([[0.1, 0.1, 0.7, 0.1]])).repeat(32, 1)
    for _ in range(60):
        debias.pseudo_label_probs(logits)
    torch.testing.assert_close(debias.p_hat, torch.tensor([0.1, 0.1, 0.7, 0.1]), atol=0.01, rtol=0)


def test_debias_pseudo_labels_counter_the_bias():
    debias = DebiasedPseudoLabeler(2, strength=1.0, momentum=0.0)  # p_hat = last batch mean
    biased = torch.log(torch.tensor([[0.8, 0.2]])).repeat(4, 1)
    debias.pseudo_label_probs(biased)  # p_hat becomes [0.8, 0.2]
    probs = debias.pseudo_label_probs(torch.log(torch.tensor([[0.6, 0.4]])))
    # softmax(log[.6,.4] - log[.8,.2]) = normalise([.75, 2]) -> class 1 wins
    torch.testing.assert_close(probs, torch.tensor([[0.75 / 2.75, 2 / 2.75]]))


def test_debias_marginal_loss_uses_log_p_hat():
    debias = DebiasedPseudoLabeler(3, strength=0.7)
    debias.p_hat = torch.tensor([0.6, 0.3, 0.1])
    logits = torch.randn(5, 3)
    labels = torch.tensor([0, 1, 2, 0, 1])
    mask = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0])
    expected = (
        F.cross_entropy(logits + 0.7 * torch.log(debias.p_hat), labels, reduction="none") * mask
    ).mean()
    torch.testing.assert_close(debias.unlabelled_loss(logits, labels, mask), expected)


def test_debias_strength_zero_is_exactly_the_plain_masked_loss():
    torch.manual_seed(0)
    debias = DebiasedPseudoLabeler(8, strength=0.0, momentum=0.9)
    weak, strong = torch.randn(16, 8), torch.randn(16, 8, requires_grad=True)
    for _ in range(3):
        probs = debias.pseudo_label_probs(weak)
    assert torch.equal(probs, torch.softmax(weak, dim=1))
    confidence, labels = probs.max(dim=1)
    mask = (confidence >= 0.3).float()
    plain = (F.cross_entropy(strong, labels, reduction="none") * mask).mean()
    assert torch.equal(debias.unlabelled_loss(strong, labels, mask), plain)


def test_unlabelled_weight_ramps_linearly_over_rampup_epochs():
    from fervid.config import SSLConfig
    from fervid.stage1.objective import PseudoLabelObjective

    objective = PseudoLabelObjective(SSLConfig(lambda_u=2.0, rampup_epochs=2.0), 100)
    weights = []
    for epochs_done in (0.0, 0.5, 1.0, 2.0, 3.5):
        objective.set_progress(epochs_done)
        weights.append(objective.weight)
    assert weights == [0.0, 0.5, 1.0, 2.0, 2.0]
    constant = PseudoLabelObjective(SSLConfig(lambda_u=2.0), 100)
    assert constant.weight == 2.0
    with pytest.raises(ConfigError, match="rampup_epochs"):
        PseudoLabelObjective(SSLConfig(rampup_epochs=-1.0), 100)
