"""Checkpoints that are safe to load.

- Model files: ``<name>.safetensors`` (weights) + ``<name>.json`` (config, class names, input
  geometry, sha256 of the weights). Loading checks the hash.
- Resume state: one torch file of tensors and plain values (optimizer, EMA, RNG, counters),
  loaded with ``torch.load(weights_only=True)`` so nothing arbitrary is unpickled.
All writes are atomic: a crash mid-save leaves the previous file intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fervid.errors import DataError
from fervid.runtime.io import atomic_path
from fervid.runtime.model_file import (  # noqa: F401 - MODEL_FORMAT_VERSION, sha256_file: API
    MODEL_FORMAT_VERSION,
    read_model_file,
    sha256_file,
    write_model_file,
)


def save_weights(path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar with ``meta`` and the hash."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    return write_model_file(path, lambda name: save_file(tensors, name), meta)


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a model file pair written by :func:`save_weights`, checking format and hash."""
    return read_model_file(path, load_file)


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Resume state (tensors, numbers, strings, lists, dicts) written atomically."""
    with atomic_path(path) as temporary:
        torch.save(state, temporary)


def load_state(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(path, "checkpoint not found") from None
    except Exception as error:  # noqa: BLE001
        raise DataError(path, f"cannot read checkpoint ({error})") from None
