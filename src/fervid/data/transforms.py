"""Batched image augmentation on tensors (runs wherever the batch is: CPU or GPU)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def weak_augment(
    images: torch.Tensor, generator: torch.Generator, max_shift: float = 0.125
) -> torch.Tensor:
    """Random horizontal flip and a random translation of up to ``max_shift`` of the side
    (reflect padding, then a random crop back to size), per sample, on a uint8 batch (B,3,H,W).
    """
    batch, _, height, width = images.shape
    flip = torch.rand(batch, generator=generator) < 0.5
    images = torch.where(flip.view(-1, 1, 1, 1).to(images.device), images.flip(-1), images)
    pad = round(max_shift * height)
    if pad == 0:
        return images
    padded = F.pad(images.float(), (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator).to(images.device)
    rows = (dy.view(-1, 1) + torch.arange(height, device=images.device)).view(batch, 1, height, 1)
    cols = (dx.view(-1, 1) + torch.arange(width, device=images.device)).view(batch, 1, 1, width)
    channels = torch.arange(3, device=images.device).view(1, 3, 1, 1)
    batch_index = torch.arange(batch, device=images.device).view(-1, 1, 1, 1)
    shifted = padded[batch_index, channels, rows, cols]
    return shifted.to(images.dtype)
