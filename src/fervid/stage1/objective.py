"""The stage-1 semi-supervised objective (FixMatch form, with the paper's two additions):

    loss = CE(model(x_l), y_l) + lambda_u * mean(mask * CE(z_strong [+ lambda log p_hat], y_hat))

where y_hat and mask come from the weak view: the teacher's logits are debiased
(DebiasPL), a threshold policy (fixed / flex = DTM / free) decides which pseudo-labels count.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from fervid.config import SSLConfig
from fervid.labels import NUM_CLASSES
from fervid.stage1.debias import DebiasedPseudoLabeler
from fervid.stage1.thresholds import THRESHOLDS


class PseudoLabelObjective:
    def __init__(
        self,
        config: SSLConfig,
        num_unlabelled: int,
        labelled_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
        num_classes: int = NUM_CLASSES,
    ):
        self.labelled_loss = labelled_loss
        self.lambda_u = config.lambda_u
        self.rampup_epochs = config.rampup_epochs
        self.weight = config.lambda_u if config.rampup_epochs <= 0 else 0.0
        self.threshold = THRESHOLDS.build(
            config.threshold,
            num_classes=num_classes,
            num_unlabelled=num_unlabelled,
            tau=config.tau,
            warmup=config.flex_warmup,
            unused=config.flex_unused,
            floor=config.threshold_floor,
            momentum=config.free_momentum,
        )
        self.debias = DebiasedPseudoLabeler(
            num_classes, config.debias_lambda, config.debias_momentum
        )
        self.stats = PseudoLabelStats(num_classes)

    def __call__(
        self,
        model: nn.Module,
        teacher: nn.Module | None,
        labelled: torch.Tensor,
        labels: torch.Tensor,
        weak: torch.Tensor,
        strong: torch.Tensor,
        indices: torch.Tensor,
        truth: torch.Tensor,
    ) -> torch.Tensor:
        """Loss of one step. ``teacher`` None: the model pseudo-labels the weak view itself,
        in the same forward pass (FixMatch); else the teacher does, without gradients."""
        n, m = len(labels), len(weak)
        if teacher is None:
            logits = model(torch.cat([labelled, weak, strong]))
            labelled_logits, weak_logits, strong_logits = (
                logits[:n],
                logits[n : n + m].detach(),
                logits[n + m :],
            )
        else:
            with torch.no_grad():
                weak_logits = teacher(weak)
            logits = model(torch.cat([labelled, strong]))
            labelled_logits, strong_logits = logits[:n], logits[n:]

        probs = self.debias.pseudo_label_probs(weak_logits)
        pseudo_labels = probs.argmax(dim=1)
        mask = self.threshold.mask(probs, indices)
        labelled_loss = self.labelled_loss(labelled_logits.float(), labels)
        unlabelled_loss = self.debias.unlabelled_loss(strong_logits.float(), pseudo_labels, mask)
        self.stats.add(mask, pseudo_labels, truth, labelled_loss, unlabelled_loss)
        return labelled_loss + self.weight * unlabelled_loss

    def set_progress(self, epochs_done: float) -> None:
        """The unlabelled loss weight for this point of training (``ssl.rampup_epochs``)."""
        ramp = 1.0 if self.rampup_epochs <= 0 else min(1.0, epochs_done / self.rampup_epochs)
        self.weight = self.lambda_u * ramp

    def state_dict(self) -> dict:
        return {"threshold": self.threshold.state_dict(), "debias": self.debias.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.threshold.load_state_dict(state["threshold"])
        self.debias.load_state_dict(state["debias"])

    def report(self) -> dict:
        """Pseudo-label statistics since the last report, with the current thresholds and p_hat."""
        return {
            **self.stats.summary(),
            "unlabelled_weight": round(self.weight, 5),
            "thresholds": [round(float(t), 5) for t in self.threshold.thresholds()],
            "p_hat": [round(float(p), 5) for p in self.debias.p_hat],
        }


class PseudoLabelStats:
    """Running counts between two reports: mask rate, histogram and accuracy of pseudo-labels."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        self.seen = 0
        self.kept = 0
        self.histogram = torch.zeros(self.num_classes, dtype=torch.long)
        self.kept_with_truth = 0
        self.kept_correct = 0
        self.all_with_truth = 0
        self.all_correct = 0
        self.loss_sums = [0.0, 0.0]
        self.steps = 0

    def add(self, mask, pseudo_labels, truth, labelled_loss, unlabelled_loss) -> None:
        kept = mask.bool().cpu()
        pseudo_labels, truth = pseudo_labels.cpu(), truth.cpu()
        known = truth >= 0
        correct = pseudo_labels == truth
        self.seen += len(kept)
        self.kept += int(kept.sum())
        self.histogram += torch.bincount(pseudo_labels[kept], minlength=self.num_classes)
        self.kept_with_truth += int((kept & known).sum())
        self.kept_correct += int((kept & known & correct).sum())
        self.all_with_truth += int(known.sum())
        self.all_correct += int((known & correct).sum())
        self.loss_sums[0] += float(labelled_loss.detach())
        self.loss_sums[1] += float(unlabelled_loss.detach())
        self.steps += 1

    def summary(self) -> dict:
        kept = max(self.kept, 1)
        result = {
            "mask_rate": self.kept / max(self.seen, 1),
            "pseudo_histogram": [round(int(c) / kept, 5) for c in self.histogram],
            "pseudo_accuracy": self.kept_correct / self.kept_with_truth
            if self.kept_with_truth
            else None,
            "pseudo_accuracy_all": self.all_correct / self.all_with_truth
            if self.all_with_truth
            else None,
            "loss_labelled": self.loss_sums[0] / max(self.steps, 1),
            "loss_unlabelled": self.loss_sums[1] / max(self.steps, 1),
        }
        self.reset()
        return result
