"""Threshold policies: which pseudo-labels of the unlabelled batch count.

Each policy turns pseudo-label probabilities (B, C) of unlabelled samples (with their dataset
indices) into a 0/1 mask, updates its own statistics, and keeps them in ``state_dict`` so a
resumed run continues with them. In a multi-process run the statistics are combined over all
processes at every step (each sample counting once, whatever the batch size of its process), so
every process holds the same thresholds, those of one process on the whole global batch.

- ``fixed``: FixMatch (Sohn et al. 2020), confidence >= tau.
- ``flex``: FlexMatch (Zhang et al. 2021), the dynamic threshold module (DTM) of the paper's
  predecessor. sigma(c) counts unlabelled samples whose latest confident prediction (>= tau) is
  c; beta(c) = sigma(c) / max(max_c sigma, #unused samples) (warm-up form) and
  T(c) = tau * beta(c) / (2 - beta(c)), never below ``floor`` (``ssl.threshold_floor``; 0 =
  the published form, whose warm-up thresholds start at 0 and keep every pseudo-label).
  "Unused" are the samples with no confident prediction yet: of the whole pool as published
  (``ssl.flex_unused=pool``), or of the samples drawn so far (``drawn``). The published count
  assumes a run that visits the pool many times (FlexMatch: thousands of passes); when the
  pool is as large as the run's budget, most of it is never drawn, so the warm-up never ends
  and the thresholds stay near 0. Counting only drawn samples measures the same thing, how
  much of what the model has seen it is sure of, whatever the pool's size, and equals the
  published count once every sample has been drawn.
- ``free``: FreeMatch (Wang et al. 2023) self-adaptive threshold: tau_t = EMA of the mean max
  confidence; T(c) = tau_t * p(c) / max_c p(c) with p an EMA of the mean class probability.

The arguments' bounds (``tau`` in (0, 1), ``floor`` in [0, tau]) are those of the config fields
``ssl.tau`` and ``ssl.threshold_floor``, checked once, when the config is built.
"""

from __future__ import annotations

import torch

from fervid.runtime.dist import all_gather_cat, mean_over_rows
from fervid.runtime.registry import Registry

THRESHOLDS: Registry[ThresholdPolicy] = Registry("threshold policy")


class ThresholdPolicy:
    """Interface: ``mask(probs, indices) -> (B,) float mask``; ``thresholds() -> (C,)``."""

    def mask(self, probs: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def thresholds(self) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, value in state.items():
            getattr(self, name).copy_(value)


@THRESHOLDS.register("fixed")
class FixedThreshold(ThresholdPolicy):
    def __init__(self, num_classes: int, num_unlabelled: int, tau: float = 0.95, **_):
        self.tau = tau
        self.num_classes = num_classes

    def mask(self, probs: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return (probs.max(dim=1).values >= self.tau).float()

    def thresholds(self) -> torch.Tensor:
        return torch.full((self.num_classes,), self.tau)


@THRESHOLDS.register("flex")
class FlexThreshold(ThresholdPolicy):
    def __init__(
        self,
        num_classes: int,
        num_unlabelled: int,
        tau: float = 0.95,
        warmup: bool = True,
        floor: float = 0.0,
        unused: str = "pool",
        **_,
    ):
        self.tau = tau
        self.floor = floor
        self.num_classes = num_classes
        self.warmup = warmup
        self.selected_label = torch.full((num_unlabelled,), -1, dtype=torch.long)
        self.drawn = torch.zeros(num_unlabelled, dtype=torch.bool) if unused == "drawn" else None
        """With ``unused="drawn"``: which samples the run has drawn so far."""

    def class_beta(self) -> torch.Tensor:
        """beta(c): the learning effect of class c, from the latest confident predictions."""
        sigma = torch.bincount(
            self.selected_label[self.selected_label >= 0], minlength=self.num_classes
        ).float()
        never_confident = self.selected_label < 0
        if self.drawn is not None:
            never_confident &= self.drawn
        unused = float(never_confident.sum())
        scale = max(float(sigma.max()), unused) if self.warmup else float(sigma.max())
        return sigma / scale if scale > 0 else torch.zeros(self.num_classes)

    def thresholds(self) -> torch.Tensor:
        beta = self.class_beta()
        return (self.tau * beta / (2.0 - beta)).clamp(min=self.floor)

    def mask(self, probs: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        confidence, predicted = probs.max(dim=1)
        mask = (confidence >= self.thresholds().to(probs.device)[predicted]).float()
        # record this step's confident predictions (from every process) for the next steps
        confident = (confidence >= self.tau).long()
        gathered = all_gather_cat(
            torch.stack([indices.to(probs.device), predicted, confident], dim=1)
        )
        chosen = gathered[gathered[:, 2] == 1].cpu()
        self.selected_label[chosen[:, 0]] = chosen[:, 1]
        if self.drawn is not None:
            self.drawn[gathered[:, 0].cpu()] = True
        return mask

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.drawn is None:
            return {"selected_label": self.selected_label}
        return {"selected_label": self.selected_label, "drawn": self.drawn}


@THRESHOLDS.register("free")
class FreeThreshold(ThresholdPolicy):
    def __init__(self, num_classes: int, num_unlabelled: int, momentum: float = 0.999, **_):
        self.num_classes = num_classes
        self.momentum = momentum
        self.global_confidence = torch.tensor(1.0 / num_classes)
        self.class_probability = torch.full((num_classes,), 1.0 / num_classes)

    def thresholds(self) -> torch.Tensor:
        return self.global_confidence * self.class_probability / self.class_probability.max()

    def mask(self, probs: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        m = self.momentum
        batch_confidence = mean_over_rows(probs.max(dim=1).values).cpu()
        batch_probability = mean_over_rows(probs).cpu()
        self.global_confidence = m * self.global_confidence + (1 - m) * batch_confidence
        self.class_probability = m * self.class_probability + (1 - m) * batch_probability
        confidence, predicted = probs.max(dim=1)
        return (confidence >= self.thresholds().to(probs.device)[predicted]).float()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "global_confidence": self.global_confidence,
            "class_probability": self.class_probability,
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.global_confidence = state["global_confidence"].clone()
        self.class_probability = state["class_probability"].clone()
