"""Pieces every training loop shares: device, precision, optimizer, schedule, resume state,
validation logging."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path

import torch
from torch import nn

from fervid.config import OptimConfig
from fervid.errors import ConfigError
from fervid.runtime.checkpoint import load_state, save_state
from fervid.runtime.dist import is_main, world_size
from fervid.runtime.run_dir import RunDir

log = logging.getLogger("fervid")


def log_validation(record: dict, metrics: dict) -> None:
    """Add validation macro and per-class F1 to an epoch's log record, and say it."""
    record["val_macro_f1"] = metrics["macro_f1"]
    record["val_per_class_f1"] = metrics["per_class_f1"]
    log.info(
        "epoch %d: loss %.4f, validation macro F1 %.4f",
        record["epoch"],
        record["loss"],
        metrics["macro_f1"],
    )


def save_resume_state(run: RunDir, **state) -> None:
    """Process 0 writes the epoch's training ``state`` (model, optimizer, ...) to the run's
    checkpoint, plus what every resume needs: the torch RNG state, how many lines each log
    holds, and the process count that ``load_resume_state`` checks."""
    if is_main():
        extra = {"rng": torch.get_rng_state(), "log_lines": run.log_lines()}
        save_state(run.checkpoint, {**state, **extra, "world_size": world_size()})


def load_resume_state(checkpoint: Path, shared_by: str) -> dict:
    """The training state in ``checkpoint``, refused (ConfigError) if another number of
    processes wrote it: ``shared_by`` says what the process count shares out."""
    state = load_state(checkpoint)
    if state.get("world_size", 1) != world_size():
        raise ConfigError(
            f"{checkpoint} was written by {state.get('world_size', 1)} processes; resume it with "
            f"the same number ({shared_by} by process count), not {world_size()}"
        )
    return state


def pick_device(name: str | torch.device) -> torch.device:
    """A torch device by name (``train.device``); ``auto`` = this process's GPU (``LOCAL_RANK``)
    when there is one, else the CPU. A ``torch.device`` is returned as it is."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: unknown device {name!r}") from None


def autocast(precision: str, device: torch.device):
    """bf16 autocast when asked for (``train.precision``: ``auto`` = on CUDA devices that
    support it, ``fp32`` = never)."""
    use_bf16 = precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def build_optimizer(
    model: nn.Module, config: OptimConfig, scaled: tuple[nn.Module, float] | None = None
) -> torch.optim.Optimizer:
    """AdamW or SGD; no weight decay on biases and normalisation parameters. ``scaled``: a
    further module whose parameters learn at ``lr_scale`` times the scheduled rate."""
    parts = [(model, 1.0)] + ([scaled] if scaled is not None else [])
    groups = []
    for module, lr_scale in parts:
        params = [p for p in module.parameters() if p.requires_grad]
        groups += [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
        groups[-2]["lr_scale"] = groups[-1]["lr_scale"] = lr_scale
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=config.lr)


def cosine_lr(step: int, total_steps: int, warmup_steps: int, config: OptimConfig) -> float:
    """Linear warm-up, then cosine decay to ``lr * min_lr_ratio``."""
    if step < warmup_steps:
        return config.lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's rate to ``lr`` times the group's ``lr_scale`` (see build_optimizer)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
