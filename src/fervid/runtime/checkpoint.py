"""Checkpoints that are safe to load.

- Model files: ``<name>.safetensors`` (weights) + ``<name>.json`` (config, class names, input
  geometry, sha256 of the weights). Loading checks the hash.
- Resume state: one torch file of tensors and plain values (optimizer, EMA, RNG, counters),
  loaded with ``torch.load(weights_only=True)`` so nothing arbitrary is unpickled.
All writes are atomic: a crash mid-save leaves the previous file intact.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fervid import __version__
from fervid.errors import DataError
from fervid.labels import CLASS_NAMES
from fervid.runtime.io import atomic_path, atomic_write_text

MODEL_FORMAT_VERSION = 1


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar with ``meta`` and the hash."""
    path = Path(path).with_suffix(".safetensors")
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary))
        digest = sha256_file(temporary)
    sidecar = {
        "format_version": MODEL_FORMAT_VERSION,
        "fervid_version": __version__,
        "class_names": list(CLASS_NAMES),
        "sha256": digest,
        **meta,
    }
    atomic_write_text(path.with_suffix(".json"), json.dumps(sidecar, indent=2))
    return path


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a model file pair written by :func:`save_weights`, checking format and hash."""
    path = Path(path)
    weights = path.with_suffix(".safetensors")
    sidecar = path.with_suffix(".json")
    for needed in (weights, sidecar):
        if not needed.is_file():
            raise DataError(needed, "model file not found")
    try:
        meta = json.loads(sidecar.read_text())
    except json.JSONDecodeError as error:
        raise DataError(sidecar, f"not valid JSON ({error})") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(version, int):
        raise DataError(
            sidecar,
            "not a fervid model file (its sidecar has no format_version; write model "
            "files with `fervid train`, `fervid export` or `fervid import`)",
        )
    if version > MODEL_FORMAT_VERSION:
        raise DataError(
            sidecar,
            f"model format version {version} is newer than this fervid reads "
            f"({MODEL_FORMAT_VERSION}); upgrade fervid",
        )
    digest = sha256_file(weights)
    if digest != meta.get("sha256"):
        raise DataError(
            weights, f"sha256 {digest[:12]}... does not match the one recorded in {sidecar.name}"
        )
    try:
        state = load_file(str(weights))
    except Exception as error:  # noqa: BLE001
        raise DataError(weights, f"cannot read safetensors ({error})") from None
    return state, meta


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
