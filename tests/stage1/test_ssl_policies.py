"""Threshold policies and DebiasPL against hand-computed examples."""

import typing

import pytest
import torch
import torch.nn.functional as F

from fervid.config import SSLConfig, load_config
from fervid.errors import ConfigError
from fervid.stage1.debias import DebiasedPseudoLabeler
from fervid.stage1.thresholds import THRESHOLDS, FixedThreshold, FlexThreshold, FreeThreshold


def probs_of(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_registry_builds_every_policy_by_name_and_the_config_offers_exactly_these():
    assert THRESHOLDS.names() == ["fixed", "flex", "free"]
    assert sorted(typing.get_args(typing.get_type_hints(SSLConfig)["threshold"])) == (
        THRESHOLDS.names()
    )
    assert isinstance(
        THRESHOLDS.build("flex", num_classes=3, num_unlabelled=5, tau=0.9), FlexThreshold
    )


@pytest.mark.parametrize("tau", [0.0, 1.0, 1.5, -0.1])
def test_tau_outside_open_unit_interval_is_rejected_with_ssl_on_or_off(tau):
    for enabled in ("false", "true"):
        with pytest.raises(ConfigError, match=rf"^ssl\.tau: must be > 0 and < 1, got {tau}$"):
            load_config(None, [f"ssl.enabled={enabled}", f"ssl.tau={tau}"])


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
    with pytest.raises(ConfigError, match="^ssl.rampup_epochs: must be >= 0"):
        load_config(None, ["ssl.rampup_epochs=-1"])


# --- issue 17: tests that pin the method's claims (docs/testing.md) ----------------------------


def test_policies_default_to_the_papers_tau_warmup_and_momentum():
    assert FixedThreshold(3, 10).tau == 0.95
    flex = FlexThreshold(3, 10)
    assert flex.tau == 0.95 and flex.warmup is True
    free = FreeThreshold(2, 10)
    free.mask(probs_of([[1.0, 0.0]]), torch.arange(1))
    # tau_t = 0.999 * 1/2 + 0.001 * 1; p = 0.999 * [.5, .5] + 0.001 * [1, 0]
    torch.testing.assert_close(free.global_confidence, torch.tensor(0.5005))
    torch.testing.assert_close(free.class_probability, torch.tensor([0.5005, 0.4995]))


def test_fixed_threshold_keeps_a_confidence_exactly_at_tau():
    policy = FixedThreshold(3, 10, tau=0.75)
    mask = policy.mask(probs_of([[0.75, 0.25, 0.0], [0.25, 0.0, 0.75], [0.7, 0.2, 0.1]]), None)
    assert mask.tolist() == [1.0, 1.0, 0.0]


def test_fixed_threshold_has_no_state_and_restores_from_its_empty_state_dict():
    policy = FixedThreshold(3, 10, tau=0.8)
    assert policy.state_dict() == {}
    restored = FixedThreshold(3, 10, tau=0.8)
    restored.load_state_dict(policy.state_dict())
    probs = probs_of([[0.9, 0.05, 0.05], [0.5, 0.4, 0.1]])
    assert restored.mask(probs, torch.arange(2)).tolist() == [1.0, 0.0]
    torch.testing.assert_close(restored.thresholds(), torch.full((3,), 0.8))


def test_flex_per_class_threshold_rejects_a_sample_that_a_global_threshold_keeps():
    """Class 0 is well learned (beta = 1, T = tau), class 1 not at all (T = 0): the same
    confidence 0.7 is rejected for class 0 and kept for class 1, which no single threshold
    for all classes does."""
    policy = FlexThreshold(3, 4, tau=0.8)
    policy.selected_label[:3] = 0  # sigma = [3, 0, 0], unused = 1 -> beta = [1, 0, 0]
    torch.testing.assert_close(policy.thresholds(), torch.tensor([0.8, 0.0, 0.0]))
    probs = probs_of([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.8, 0.1, 0.1]])
    # the third: confidence exactly T(0) = tau, kept
    assert policy.mask(probs, torch.tensor([3, 3, 3])).tolist() == [0.0, 1.0, 1.0]


def test_flex_records_only_predictions_at_or_above_tau():
    policy = FlexThreshold(3, 5, tau=0.75)
    probs = probs_of([[0.0, 0.25, 0.75], [0.74, 0.26, 0.0], [0.25, 0.75, 0.0]])
    policy.mask(probs, torch.tensor([0, 1, 4]))
    assert policy.selected_label.tolist() == [2, -1, -1, -1, 1]
    # a later prediction below tau leaves the sample's record as it was
    policy.mask(probs_of([[0.5, 0.5, 0.0]]), torch.tensor([0]))
    assert policy.selected_label.tolist() == [2, -1, -1, -1, 1]
    # and a confident one replaces it
    policy.mask(probs_of([[0.9, 0.1, 0.0]]), torch.tensor([0]))
    assert policy.selected_label[0].item() == 0


def test_flex_mask_uses_the_thresholds_from_before_the_step():
    policy = FlexThreshold(2, 2, tau=0.75)
    # fresh: T = 0, both kept, although after recording them beta(0) = 1 and T(0) = 0.75
    mask = policy.mask(probs_of([[0.8, 0.2], [0.76, 0.24]]), torch.tensor([0, 1]))
    assert mask.tolist() == [1.0, 1.0]
    torch.testing.assert_close(policy.thresholds(), torch.tensor([0.75, 0.0]))


def test_flex_beta_counts_class_zero_and_keeps_one_entry_per_class():
    policy = FlexThreshold(4, 6, tau=0.8, warmup=False)
    policy.selected_label[:3] = torch.tensor([0, 0, 1])  # classes 2 and 3 never selected
    torch.testing.assert_close(policy.class_beta(), torch.tensor([1.0, 0.5, 0.0, 0.0]))
    assert policy.thresholds().shape == (4,)
    warm = FlexThreshold(4, 6, tau=0.8)
    warm.selected_label[:3] = torch.tensor([0, 0, 1])  # unused = 3 > max sigma = 2
    torch.testing.assert_close(warm.class_beta(), torch.tensor([2 / 3, 1 / 3, 0.0, 0.0]))


def test_flex_without_warmup_and_without_confident_predictions_keeps_every_sample():
    policy = FlexThreshold(3, 5, tau=0.9, warmup=False)
    torch.testing.assert_close(policy.class_beta(), torch.zeros(3))  # 0 / 0 counts as 0
    torch.testing.assert_close(policy.thresholds(), torch.zeros(3))
    assert policy.mask(probs_of([[0.4, 0.3, 0.3]]), torch.tensor([0])).tolist() == [1.0]


def test_flex_without_warmup_divides_by_a_max_sigma_of_one():
    policy = FlexThreshold(3, 5, tau=0.9, warmup=False)
    policy.selected_label[4] = 2
    torch.testing.assert_close(policy.class_beta(), torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(policy.thresholds(), torch.tensor([0.0, 0.0, 0.9]))


def test_free_threshold_keeps_a_confidence_exactly_at_its_threshold():
    policy = FreeThreshold(2, 10, momentum=0.5)
    # a uniform batch leaves tau_t = 0.5 and p = [.5, .5]: T = [0.5, 0.5]
    assert policy.mask(probs_of([[0.5, 0.5]]), torch.arange(1)).tolist() == [1.0]
    torch.testing.assert_close(policy.thresholds(), torch.tensor([0.5, 0.5]))


def test_free_per_class_threshold_rejects_a_sample_that_a_global_threshold_keeps():
    policy = FreeThreshold(2, 10, momentum=0.5)
    probs = probs_of([[0.95, 0.05], [0.55, 0.45], [0.45, 0.55]])
    mask = policy.mask(probs, torch.arange(3))
    # tau_t = 0.5 * 1/2 + 0.5 * mean(0.95, 0.55, 0.55); p = 0.5 * 1/2 + 0.5 * [0.65, 0.35]
    tau_t = 0.25 + 0.5 * (0.95 + 0.55 + 0.55) / 3
    p = [0.25 + 0.5 * 0.65, 0.25 + 0.5 * 0.35]
    expected = [tau_t * p[0] / p[0], tau_t * p[1] / p[0]]  # [0.592, 0.437]
    torch.testing.assert_close(policy.thresholds(), torch.tensor(expected))
    # the same confidence 0.55 is rejected for class 0 (T = 0.59), kept for class 1 (T = 0.44)
    assert mask.tolist() == [1.0, 0.0, 1.0]


def test_free_state_restored_from_state_dict_continues_the_same_thresholds():
    policy = FreeThreshold(3, 10, momentum=0.6)
    policy.mask(probs_of([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]), torch.arange(2))
    state = policy.state_dict()
    assert set(state) == {"global_confidence", "class_probability"}
    restored = FreeThreshold(3, 10, momentum=0.6)
    restored.load_state_dict({k: v.clone() for k, v in state.items()})
    torch.testing.assert_close(restored.thresholds(), policy.thresholds())
    following = probs_of([[0.5, 0.3, 0.2], [0.3, 0.3, 0.4]])
    assert (
        restored.mask(following, torch.arange(2)).tolist()
        == policy.mask(following, torch.arange(2)).tolist()
    )
    torch.testing.assert_close(restored.global_confidence, policy.global_confidence)
    torch.testing.assert_close(restored.class_probability, policy.class_probability)


def test_flex_state_dict_is_the_selected_labels_and_restores_the_masks():
    policy = FlexThreshold(3, 6, tau=0.7)
    policy.mask(probs_of([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]]), torch.tensor([0, 5]))
    state = policy.state_dict()
    assert set(state) == {"selected_label"}
    restored = FlexThreshold(3, 6, tau=0.7)
    restored.load_state_dict({k: v.clone() for k, v in state.items()})
    assert torch.equal(restored.selected_label, policy.selected_label)
    following = probs_of([[0.3, 0.4, 0.3], [0.35, 0.3, 0.35]])
    assert (
        restored.mask(following, torch.tensor([1, 2])).tolist()
        == policy.mask(following, torch.tensor([1, 2])).tolist()
    )


def test_debias_defaults_are_off_with_momentum_0_999_and_a_uniform_p_hat():
    debias = DebiasedPseudoLabeler(4)
    torch.testing.assert_close(debias.p_hat, torch.full((4,), 0.25))
    logits = torch.log(torch.tensor([[0.7, 0.1, 0.1, 0.1]]))
    # strength 0: the pseudo-label distribution is the plain softmax, even with a moved p_hat
    debias.p_hat = torch.tensor([0.1, 0.2, 0.3, 0.4])
    torch.testing.assert_close(debias.pseudo_label_probs(logits), torch.softmax(logits, dim=1))
    expected = 0.999 * torch.tensor([0.1, 0.2, 0.3, 0.4]) + 0.001 * torch.tensor(
        [0.7, 0.1, 0.1, 0.1]
    )
    torch.testing.assert_close(debias.p_hat, expected)


def test_debias_p_hat_update_is_one_ema_step_of_the_raw_weak_softmax():
    debias = DebiasedPseudoLabeler(2, strength=1.0, momentum=0.75)
    logits = torch.log(torch.tensor([[0.8, 0.2], [0.4, 0.6]]))
    probs = debias.pseudo_label_probs(logits)
    # pseudo-labels use p_hat before the update: uniform, so the plain softmax
    torch.testing.assert_close(probs, torch.tensor([[0.8, 0.2], [0.4, 0.6]]))
    # p_hat = 0.75 * [.5, .5] + 0.25 * mean([.8, .2], [.4, .6]) (raw, not debiased)
    torch.testing.assert_close(debias.p_hat, torch.tensor([0.525, 0.475]))


def test_debias_state_dict_is_p_hat_and_restores_the_debiased_pseudo_labels():
    debias = DebiasedPseudoLabeler(2, strength=1.0, momentum=0.0)
    debias.pseudo_label_probs(torch.log(torch.tensor([[0.8, 0.2]])))  # p_hat = [.8, .2]
    state = debias.state_dict()
    assert set(state) == {"p_hat"}
    restored = DebiasedPseudoLabeler(2, strength=1.0, momentum=0.0)
    restored.load_state_dict({k: v.clone() for k, v in state.items()})
    torch.testing.assert_close(restored.p_hat, torch.tensor([0.8, 0.2]))
    probs = restored.pseudo_label_probs(torch.log(torch.tensor([[0.6, 0.4]])))
    torch.testing.assert_close(probs, torch.tensor([[0.75 / 2.75, 2 / 2.75]]))


def test_debias_marginal_loss_moves_log_p_hat_to_the_logits_device():
    """Checked on the meta device (no GPU needed): p_hat lives on the CPU, the logits elsewhere."""
    debias = DebiasedPseudoLabeler(3, strength=0.5)
    logits = torch.zeros(4, 3, device="meta")
    labels = torch.zeros(4, dtype=torch.long, device="meta")
    loss = debias.unlabelled_loss(logits, labels, torch.ones(4, device="meta"))
    assert loss.device.type == "meta" and loss.shape == ()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["fixed", "flex", "free"])
def test_policies_and_debias_run_on_cuda_tensors_with_state_on_the_cpu(name):
    """The statistics live on the CPU, the batch on the GPU: thresholds and log p_hat move to
    the batch's device (the .to(device) calls only a GPU run can check)."""
    policy = THRESHOLDS.build(name, num_classes=3, num_unlabelled=4, tau=0.5)
    probs = probs_of([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]]).cuda()
    assert policy.mask(probs, torch.tensor([0, 1])).device.type == "cuda"  # indices on the CPU
    debias = DebiasedPseudoLabeler(3, strength=0.5)
    assert debias.pseudo_label_probs(torch.zeros(2, 3).cuda()).device.type == "cuda"


def test_flex_threshold_floor_raises_the_warmup_thresholds_and_keeps_higher_ones():
    policy = FlexThreshold(3, 4, tau=0.9, floor=0.5)
    assert torch.allclose(policy.thresholds(), torch.full((3,), 0.5))  # no confident sample yet
    policy.selected_label[:] = torch.tensor([0, 0, 0, 1])  # beta = (1, 1/3, 0)
    assert torch.allclose(policy.thresholds(), torch.tensor([0.9, 0.5, 0.5]))
    kept = policy.mask(torch.tensor([[0.1, 0.45, 0.45], [0.1, 0.3, 0.6]]), torch.tensor([0, 1]))
    assert kept.tolist() == [0.0, 1.0]


def test_threshold_floor_above_tau_is_a_config_error():
    message = r"^ssl\.threshold_floor: must not exceed ssl\.tau \(0\.7\), got 0\.8$"
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["ssl.tau=0.7", "ssl.threshold_floor=0.8"])
    assert load_config(None, ["ssl.tau=0.7", "ssl.threshold_floor=0.7"]).ssl.threshold_floor == 0.7


def test_threshold_floor_without_the_flex_policy_is_a_config_error():
    message = (
        r"^ssl\.threshold_floor: applies to ssl\.threshold=flex only \(set it to 0\), got 0\.5 "
        r"with ssl\.threshold=fixed$"
    )
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["ssl.threshold=fixed", "ssl.threshold_floor=0.5"])
    load_config(None, ["ssl.threshold=flex", "ssl.threshold_floor=0.5"])


def test_flex_warmup_over_drawn_samples_counts_only_what_the_run_has_drawn_by_hand():
    # a pool of 1000 of which the run draws 4: two confident (class 0 and 2), two not
    pool = FlexThreshold(3, 1000, tau=0.8)
    drawn = FlexThreshold(3, 1000, tau=0.8, unused="drawn")
    assert drawn.thresholds().tolist() == [0, 0, 0]  # nothing drawn: the published start
    probs = probs_of([[0.9, 0.05, 0.05], [0.5, 0.3, 0.2], [0.1, 0.05, 0.85], [0.4, 0.5, 0.1]])
    for policy in (pool, drawn):
        policy.mask(probs, torch.tensor([10, 11, 12, 13]))
    # sigma = [1, 0, 1]; unused: 998 of the pool, 2 of the drawn samples (11 and 13)
    torch.testing.assert_close(pool.class_beta(), torch.tensor([1 / 998, 0, 1 / 998]))
    torch.testing.assert_close(drawn.class_beta(), torch.tensor([0.5, 0, 0.5]))
    torch.testing.assert_close(drawn.thresholds(), 0.8 * torch.tensor([0.5, 0, 0.5]) / 1.5)
    assert drawn.drawn.nonzero().flatten().tolist() == [10, 11, 12, 13]
    # a drawn sample confident later is no longer unused: sigma = [1, 1, 1], unused = 1
    drawn.mask(probs_of([[0.05, 0.9, 0.05]]), torch.tensor([11]))
    torch.testing.assert_close(drawn.class_beta(), torch.tensor([1.0, 1.0, 1.0]))


def test_flex_over_drawn_samples_equals_the_published_form_once_all_are_drawn():
    pool, drawn = FlexThreshold(3, 6, tau=0.7), FlexThreshold(3, 6, tau=0.7, unused="drawn")
    probs = probs_of([[0.8, 0.1, 0.1], [0.4, 0.3, 0.3], [0.1, 0.8, 0.1]] * 2)
    for policy in (pool, drawn):
        policy.mask(probs, torch.arange(6))
    torch.testing.assert_close(drawn.thresholds(), pool.thresholds())
    assert drawn.thresholds().max() > 0


def test_flex_over_drawn_samples_restores_what_was_drawn_from_its_state():
    policy = FlexThreshold(3, 50, tau=0.7, unused="drawn")
    policy.mask(probs_of([[0.8, 0.1, 0.1], [0.4, 0.3, 0.3]]), torch.tensor([3, 7]))
    state = {k: v.clone() for k, v in policy.state_dict().items()}
    assert set(state) == {"selected_label", "drawn"}
    restored = FlexThreshold(3, 50, tau=0.7, unused="drawn")
    restored.load_state_dict(state)
    torch.testing.assert_close(restored.thresholds(), policy.thresholds())
    assert restored.thresholds()[0] > 0 and FlexThreshold(3, 50, tau=0.7).state_dict().keys() == {
        "selected_label"
    }
