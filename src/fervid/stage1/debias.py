"""Debiased pseudo-labelling (DebiasPL, Wang et al., CVPR 2022), in its official form.

p_hat is an EMA (momentum m) of the batch mean of the *raw* softmax of the weak-view logits,
initialised uniform. Pseudo-labels come from softmax(z_weak - lambda * log p_hat) (before this
step's update of p_hat); the unlabelled loss is the adaptive marginal loss
CE(z_strong + lambda * log p_hat, y_hat) (after it). lambda = 0 is the plain masked loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fervid.runtime.dist import mean_over_rows


class DebiasedPseudoLabeler:
    def __init__(self, num_classes: int, strength: float = 0.0, momentum: float = 0.999):
        self.strength = strength
        self.momentum = momentum
        self.p_hat = torch.full((num_classes,), 1.0 / num_classes)

    def pseudo_label_probs(self, weak_logits: torch.Tensor) -> torch.Tensor:
        """Debiased pseudo-label distribution of the weak view; then updates p_hat."""
        weak_logits = weak_logits.detach().float()
        log_prior = torch.log(self.p_hat).to(weak_logits.device)
        probs = torch.softmax(weak_logits - self.strength * log_prior, dim=1)
        batch_mean = mean_over_rows(torch.softmax(weak_logits, dim=1)).cpu()
        self.p_hat = self.momentum * self.p_hat + (1 - self.momentum) * batch_mean
        return probs

    def unlabelled_loss(
        self, strong_logits: torch.Tensor, pseudo_labels: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Masked (adaptive marginal) cross-entropy on the strong view, averaged over the batch."""
        if self.strength:
            strong_logits = strong_logits + self.strength * torch.log(self.p_hat).to(
                strong_logits.device
            )
        per_sample = F.cross_entropy(strong_logits, pseudo_labels, reduction="none")
        return (per_sample * mask).mean()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"p_hat": self.p_hat}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.p_hat = state["p_hat"].clone()
