"""The labelled half of the stage-1 loss (``train.loss``, ``train.label_smoothing``).

- ``ce``: cross-entropy (the paper's; with class-uniform batches the imbalance is handled by
  the sampler);
- ``class_weighted``: cross-entropy weighted by the inverse class frequency of the labelled
  frames, the weights normalised to mean 1 over the classes;
- ``logit_adjusted``: the logit-adjusted loss of Menon et al. (ICLR 2021): cross-entropy of
  ``logits + tau * log(prior)``, with the prior = the class frequencies of the labelled frames;
  the model then predicts with its plain logits, which are balanced.

The two corrections are for plain shuffled batches (``train.class_balanced=false``); the config
refuses them with class-uniform batches, whose prior is already uniform. Frequencies are
add-one smoothed, so a class with no labelled frame gets a finite weight and prior.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fervid.config import TrainConfig


class LabelledLoss:
    """``loss(logits, labels)`` -> the mean labelled loss of a batch."""

    def __init__(self, config: TrainConfig, class_counts: np.ndarray | None = None):
        self.label_smoothing = config.label_smoothing
        self.weight: torch.Tensor | None = None
        self.adjustment: torch.Tensor | None = None
        if config.loss == "ce":
            return
        if class_counts is None:
            raise ValueError(f"train.loss={config.loss} needs the labelled class counts")
        counts = np.asarray(class_counts, dtype=np.float64) + 1.0
        prior = torch.tensor(counts / counts.sum(), dtype=torch.float32)
        if config.loss == "class_weighted":
            self.weight = (1.0 / prior) / (1.0 / prior).mean()
        else:
            self.adjustment = config.logit_adjust_tau * prior.log()

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.adjustment is not None:
            logits = logits + self.adjustment.to(logits.device)
        weight = None if self.weight is None else self.weight.to(logits.device)
        return F.cross_entropy(logits, labels, weight=weight, label_smoothing=self.label_smoothing)
