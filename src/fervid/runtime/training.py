"""What every training loop shares: the skeleton around its epochs (:class:`TrainingRun`:
refuse or resume a run, evaluate every k epochs, checkpoint, final evaluation) and the pieces
inside them: device, precision, optimizer, schedule, augmentation generator, resume state,
validation logging."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path
from typing import Any, Protocol

import torch
import yaml
from torch import nn

from fervid.config import OptimConfig, to_dict
from fervid.errors import ConfigError
from fervid.runtime.checkpoint import load_state, save_state, save_weights
from fervid.runtime.dist import barrier, check_same_everywhere, is_main, rank, world_size
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


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The augmentation generator of ``epoch`` on this process: a stream of its own per (seed,
    epoch, process), so a resumed run draws what the uninterrupted one drew."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch * 101 + rank())


# ----------------------------------------------------------------------------------------------
# The skeleton around the epochs


class Checkpointed(Protocol):
    """What a training loop checkpoints after every epoch besides the RNG and the logs: a step
    object's model, optimizer, EMA teacher, ... as named parts of one state dict."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Validation(Protocol):
    """How a stage evaluates its model on the validation split (``eval.split``)."""

    def predict(self) -> Any:
        """The current model's predictions (under torchrun every process takes part and gets
        them all)."""
        ...

    def score(self, predictions: Any) -> dict:
        """Their metrics: ``macro_f1``, ``per_class_f1``, ..."""
        ...

    def write(self, out_dir: Path, predictions: Any) -> dict:
        """Write their evaluation files into ``out_dir`` (process 0 alone calls it); returns the
        metrics."""
        ...


class TrainingRun:
    """The skeleton both stages' loops share, around the epochs they train; a fix to resuming
    lands here once.

    - ``TrainingRun(run_dir, resume, epochs, eval_every)`` refuses a run directory that already
      holds a run unless ``resume``;
    - :meth:`start` records the config and provenance;
    - :meth:`epochs_left` restores the checkpoint of a resumed run (training state, RNG, logs)
      and gives the epochs still to train;
    - :meth:`end_epoch` evaluates every ``eval_every`` epochs and after the last, logs the
      epoch and checkpoints atomically;
    - :meth:`finish` writes the final model and its evaluation (predicting once more when a
      resume found no epoch left).
    """

    def __init__(self, run_dir: str | Path, resume: bool, epochs: int, eval_every: int):
        self.run = RunDir(Path(run_dir))
        if self.run.checkpoint.exists() and not resume:
            raise FileExistsError(
                f"{self.run.path} already holds a run; pass --resume or pick another --run-dir"
            )
        self.resume, self.epochs, self.eval_every = resume, epochs, eval_every
        self.predictions: Any = None
        """The validation predictions of the last epoch that was evaluated."""

    def start(self, config: Any, kind: str) -> None:
        """Check that every process got the same config, then record it in the run."""
        check_same_everywhere(yaml.safe_dump(to_dict(config)), "configs")
        self.run.start(config, kind)

    def epochs_left(self, trained: Checkpointed, shared_by: str) -> range:
        """The epochs to train: all, or when resuming those after the checkpoint's, whose
        training state goes into ``trained`` (``shared_by``: what the process count shares
        out, see :func:`load_resume_state`), whose RNG state is restored and whose logs lose
        the lines of the killed epoch."""
        start = 0
        if self.resume and self.run.checkpoint.exists():
            state = load_resume_state(self.run.checkpoint, shared_by)
            trained.load_state_dict(state)
            torch.set_rng_state(state["rng"])
            start = state["epoch"] + 1
            self.run.truncate_logs(state["log_lines"])
            log.info("resumed %s after epoch %d", self.run.path, start)
        return range(start, self.epochs)

    def end_epoch(
        self, epoch: int, record: dict, trained: Checkpointed, validation: Validation
    ) -> None:
        """After ``epoch``: validate when due (every ``eval_every`` epochs and after the last),
        add the metrics to the epoch's log ``record`` and write it, then checkpoint."""
        self.predictions = None
        last = epoch + 1 == self.epochs
        if last or (self.eval_every and (epoch + 1) % self.eval_every == 0):
            self.predictions = validation.predict()
            log_validation(record, validation.score(self.predictions))
        self.run.log(record)
        save_resume_state(self.run, epoch=epoch, **trained.state_dict())

    def final_predictions(self, validation: Validation) -> Any:
        """The last epoch's validation predictions; made now when a resume found every epoch
        trained already."""
        if self.predictions is None:
            self.predictions = validation.predict()
        return self.predictions

    def finish(
        self, weights: dict[str, torch.Tensor], meta: dict, validation: Validation, split: str
    ) -> dict:
        """Process 0 writes the final model (``model.safetensors`` with ``meta`` in its
        sidecar) and the evaluation of the final predictions into ``eval/<split>``; every
        process returns their metrics."""
        predictions = self.final_predictions(validation)
        metrics = None
        if is_main():
            save_weights(self.run.path / "model", weights, meta)
            metrics = validation.write(self.run.path / "eval" / split, predictions)
        barrier()
        return metrics if metrics is not None else validation.score(predictions)
