"""Model files without torch: the sidecar checks every fervid model file passes (format
version, sha256 of the weights file) and reading / writing a pair of numpy arrays.

:mod:`fervid.runtime.checkpoint` reads torch tensors through the same checks; an ONNX model
(:mod:`fervid.zoo.onnx_model`) is read through these alone, so ``fervid predict`` with it never
imports torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

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


def write_sidecar(path: Path, digest: str, meta: dict[str, Any]) -> None:
    """The ``.json`` beside a weights file: format, versions, class names, sha256, ``meta``."""
    sidecar = {
        "format_version": MODEL_FORMAT_VERSION,
        "fervid_version": __version__,
        "class_names": list(CLASS_NAMES),
        "sha256": digest,
        **meta,
    }
    atomic_write_text(path.with_suffix(".json"), json.dumps(sidecar, indent=2))


def read_json(sidecar: Path) -> Any:
    """A sidecar's JSON, or a DataError naming the file when it is not valid JSON."""
    try:
        return json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(sidecar, f"not valid JSON ({error})") from None


def checked_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar of a model file pair, once both files exist, the sidecar is a fervid one of a
    format this fervid reads, and the weights file's sha256 is the one it records."""
    path = Path(path)
    weights = path.with_suffix(".safetensors")
    sidecar = path.with_suffix(".json")
    for needed in (weights, sidecar):
        if not needed.is_file():
            raise DataError(needed, "model file not found")
    meta = read_json(sidecar)
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
    return meta


def write_model_file(path: str | Path, write: Callable[[str], None], meta: dict[str, Any]) -> Path:
    """``write(file name)`` the weights as ``path`` (.safetensors), atomically, then the sidecar
    with ``meta`` and their sha256."""
    path = Path(path).with_suffix(".safetensors")
    with atomic_path(path) as temporary:
        write(str(temporary))
        digest = sha256_file(temporary)
    write_sidecar(path, digest, meta)
    return path


def read_model_file(path: str | Path, read: Callable[[str], Any]) -> tuple[Any, dict[str, Any]]:
    """(``read(file name)`` of the weights, the sidecar) of a model file pair, the sidecar
    checked first (:func:`checked_sidecar`); a file safetensors cannot parse is a DataError."""
    meta = checked_sidecar(path)
    weights = Path(path).with_suffix(".safetensors")
    try:
        return read(str(weights)), meta
    except Exception as error:  # noqa: BLE001 - any parse failure is a bad file
        raise DataError(weights, f"cannot read safetensors ({error})") from None


def save_arrays(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write numpy ``arrays`` as ``path`` (.safetensors) and its sidecar (atomically)."""
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    return write_model_file(path, lambda name: save_file(arrays, name), meta)


def load_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The numpy arrays and sidecar of a model file pair (:func:`checked_sidecar` first)."""
    from safetensors.numpy import load_file

    return read_model_file(path, load_file)
