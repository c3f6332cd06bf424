"""One step of stage 2: a batch of windows from the window source, feature dropout and noise, the
Temporal Encoder, the cross-entropy over the windows' annotated frames, one AdamW step."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from fervid.config import Config, OptimConfig, TemporalConfig
from fervid.data.table import FrameTable
from fervid.models.temporal import TemporalEncoder
from fervid.runtime.dist import world_size
from fervid.runtime.training import autocast, build_optimizer
from fervid.stage2.windows import StoredWindows


class Stage2Step:
    """The body of the stage-2 loop: the Temporal Encoder (DDP-wrapped under torchrun) reading
    the windows of one source (:func:`fervid.stage2.windows.window_source`), its AdamW
    optimizer (which also trains a fine-tuned encoder, at ``encoder_lr_scale`` times the rate),
    and one call = one optimizer step on a batch of windows."""

    def __init__(
        self,
        config: Config,
        model: TemporalEncoder,
        source: StoredWindows,
        table: FrameTable,
        device: torch.device,
    ):
        cfg = config.temporal
        self.cfg, self.precision, self.device = cfg, config.train.precision, device
        self.source = source
        self.model = model.to(device)
        self.trained = DistributedDataParallel(model) if world_size() > 1 else model
        self.optim = OptimConfig(
            lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_epochs=cfg.warmup_epochs
        )
        """The stage-2 rates (``temporal.lr``, ...) as the optimizer and schedule take them."""
        self.optimizer = build_optimizer(model, self.optim, scaled=source.trained_along)
        self.class_weight = (
            inverse_frequency(table.class_counts()).to(device) if cfg.class_weights else None
        )

    def start_epoch(self, chosen: np.ndarray) -> None:
        """Training mode, and the source ready for the epoch's windows ``chosen``."""
        self.model.train()
        self.source.start_epoch(chosen)

    def __call__(self, picked: np.ndarray, rng: torch.Generator) -> torch.Tensor:
        """Read the windows ``picked``, hide frames and add noise (:func:`augment`), and take
        one optimizer step on the cross-entropy over their annotated frames (plus ``frame_loss``
        times a fine-tuned encoder's own loss). Returns the loss."""
        batch, frame_loss = self.source(picked, rng)
        with autocast(self.precision, self.device):
            features, mask = augment(batch.features, batch.mask, self.source.std, self.cfg, rng)
            features, mask = features.to(self.device), mask.to(self.device)
            logits = self.trained(features, mask, given_logits=self.source.given_logits)
        labels = batch.labels.to(self.device)
        loss = window_loss(logits.float(), labels, mask, self.cfg.train_missing, self.class_weight)
        loss = loss + self.cfg.frame_loss * frame_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def state_dict(self) -> dict:
        """What evolves besides the RNG: weights, optimizer, and a fine-tuned encoder's
        weights."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **self.source.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`'s ``state`` (a resumed run)."""
        self.model.load_state_dict(state["model"])
        self.source.load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])


def augment(
    features: torch.Tensor,
    mask: torch.Tensor,
    std: np.ndarray,
    cfg: TemporalConfig,
    rng: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian feature noise (in units of each dimension's std) and feature dropout (frames
    hidden as if they had no face)."""
    if cfg.feature_noise > 0:
        noise = torch.randn(features.shape, generator=rng) * torch.from_numpy(std)
        features = features + cfg.feature_noise * noise.to(features.device)
    if cfg.feature_dropout > 0:
        mask = mask | (torch.rand(mask.shape, generator=rng) < cfg.feature_dropout).to(mask.device)
    return features, mask


def inverse_frequency(counts: np.ndarray) -> torch.Tensor:
    """Class weights total/count, normalised to mean 1 over the classes present."""
    present = counts > 0
    weights = np.zeros(len(counts))
    weights[present] = counts.sum() / counts[present]
    weights[present] /= weights[present].mean()
    return torch.tensor(weights, dtype=torch.float32)


def window_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    train_missing: bool,
    class_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy over annotated frames of windows with a face (frames with no face
    included when ``train_missing``); 0 when a batch has none."""
    valid = (labels >= 0) & ~mask.all(dim=1, keepdim=True)
    if not train_missing:
        valid &= ~mask
    targets = labels.clamp(min=0)
    losses = F.cross_entropy(
        logits.flatten(0, 1), targets.flatten(), weight=class_weight, reduction="none"
    )
    weight = valid.flatten().float()
    if class_weight is not None:
        weight = weight * class_weight[targets.flatten()]
    return (losses * valid.flatten()).sum() / weight.sum().clamp(min=1e-6)
