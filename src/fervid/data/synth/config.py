"""Knobs of the synthetic expression-video dataset (see docs/synthetic.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SynthConfig:
    seed: int = 0
    train_identities: int = 16
    validation_identities: int = 6
    unlabelled_identities: int = 8
