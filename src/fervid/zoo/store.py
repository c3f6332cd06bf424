"""The model folder and loading any fervid model file by path or by installed name.

Model folder: ``$FERVID_HOME/models``, or ``~/.fervid/models`` when ``FERVID_HOME`` is unset.
Each model there is a pair ``<name>.safetensors`` + ``<name>.json`` as written by
:func:`fervid.runtime.checkpoint.save_weights`. :func:`load_model` picks the loader from the sidecar's
``kind``; :func:`register_loader` adds kinds.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fervid.errors import DataError, FervidError
from fervid.runtime.io import atomic_path
from fervid.runtime.model_file import read_json
from fervid.runtime.registry import Registry

if TYPE_CHECKING:
    from torch import nn

HOME_ENV = "FERVID_HOME"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Kinds that classify real faces out of the box, best first (for ``fervid predict`` without
# ``--model``).
REAL_FACE_KINDS = ("fer_mini_xception",)

MODEL_KINDS: Registry[nn.Module] = Registry("model kind")
"""Sidecar ``kind`` -> loader(path) returning an eval-mode module with ``probabilities(crops)``."""


@MODEL_KINDS.register("frame")
def _load_frame(path: Path) -> nn.Module:
    from fervid.models.frame import load_frame_model

    return load_frame_model(path)


@MODEL_KINDS.register("fer_mini_xception")
def _load_fer(path: Path) -> nn.Module:
    from fervid.zoo.fer_model import load_fer_model

    return load_fer_model(path)


@MODEL_KINDS.register("onnx")
def _load_onnx(path: Path):
    from fervid.zoo.onnx_model import load_onnx_model

    return load_onnx_model(path)


@MODEL_KINDS.register("video")
def _load_video(path: Path) -> nn.Module:
    from fervid.zoo.video_model import load_video_model

    return load_video_model(path)


def register_loader(kind: str, loader: Callable[[Path], nn.Module]) -> None:
    """Teach :func:`load_model` a new sidecar ``kind``."""
    MODEL_KINDS.register(kind)(loader)


def model_dir() -> Path:
    """``$FERVID_HOME/models`` or ``~/.fervid/models`` (not created here)."""
    home = os.environ.get(HOME_ENV)
    return (Path(home).expanduser() if home else Path.home() / ".fervid") / "models"


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The ``.json`` sidecar of a model file, without checking the weights."""
    sidecar = Path(path).with_suffix(".json")
    if not sidecar.is_file():
        raise DataError(sidecar, "model file not found")
    meta = read_json(sidecar)
    if not isinstance(meta, dict):
        raise DataError(sidecar, "not a fervid model sidecar (expected a JSON object)")
    return meta


def resolve_model(path_or_name: str | Path) -> Path:
    """The ``.safetensors`` path of a model given as a file (either half of the pair, or the
    path without suffix), a run folder holding ``model.safetensors``, or the name of an
    installed model."""
    path = Path(path_or_name).expanduser()
    if path.is_dir():
        path = path / "model.safetensors"
    if path.suffix not in (".safetensors", ".json"):
        path = path.with_name(path.name + ".safetensors")
    if path.with_suffix(".json").is_file():
        return path.with_suffix(".safetensors")
    name = str(path_or_name)
    if NAME_PATTERN.match(name):
        installed = model_dir() / f"{name}.safetensors"
        if installed.with_suffix(".json").is_file():
            return installed
    raise DataError(
        path_or_name,
        f"no such model file and no installed model of that name in {model_dir()} "
        "(see `fervid models`)",
    )


def load_model(path_or_name: str | Path) -> nn.Module:
    """Load any fervid model (path or installed name), dispatching on the sidecar's ``kind``.

    The result (a torch module in eval mode, or for kind ``onnx`` a numpy model) has
    ``probabilities(uint8 crops (B,3,H,W)) -> (B, 8)``.
    The weights' sha256 is checked against the sidecar.
    """
    path = resolve_model(path_or_name)
    kind = read_sidecar(path).get("kind")
    if kind == "temporal":
        raise DataError(
            path,
            "a stage-2 model holds only the Temporal Encoder, which needs its frame encoder: "
            f"package the pair with `fervid export --temporal {path.parent} --out MODEL."
            "safetensors` (add --frame STAGE1_RUN unless the run fine-tuned its encoder)",
        )
    if kind not in MODEL_KINDS:
        raise DataError(
            path.with_suffix(".json"),
            f"unknown model kind {kind!r}; this fervid loads {', '.join(MODEL_KINDS.names())}",
        )
    return MODEL_KINDS.build(kind, path)


def install(model_file: str | Path, name: str | None = None) -> Path:
    """Copy a model file pair into :func:`model_dir` as ``<name>``; returns the new
    ``.safetensors`` path. The pair is hash-checked first; an existing model of that name is
    replaced."""
    from fervid.runtime.model_file import checked_sidecar

    source = Path(model_file).with_suffix(".safetensors")
    name = name or source.stem
    if not NAME_PATTERN.match(name):
        raise FervidError(f"model name {name!r}: use letters, digits, '.', '_' and '-'")
    checked_sidecar(source)
    target = model_dir() / f"{name}.safetensors"
    if target.resolve() == source.resolve():
        return target
    for suffix in (".safetensors", ".json"):
        with atomic_path(target.with_suffix(suffix)) as temporary:
            shutil.copyfile(source.with_suffix(suffix), temporary)
    return target


def _summary(value: Any, keys: tuple[str, ...]) -> str:
    """A one-line string from a sidecar field that is either a string or a dict."""
    if isinstance(value, dict):
        parts = [str(value[k]) for k in keys if value.get(k)]
        return " ".join(parts)
    return "" if value is None else str(value)


def list_models() -> list[dict[str, str]]:
    """The installed models, sorted by name: name, kind, sha256, source, licence, path.
    A pair with an unreadable sidecar is listed with kind ``"?"``."""
    folder = model_dir()
    models = []
    for sidecar in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        weights = sidecar.with_suffix(".safetensors")
        if not weights.is_file():
            continue
        try:
            meta = read_sidecar(sidecar)
        except DataError:
            meta = {"kind": "?"}
        source = meta.get("source", "")
        if isinstance(source, dict):
            source = (
                f"{_summary(source, ('package', 'version', 'project'))}: {source.get('file', '')}"
            )
        models.append(
            {
                "name": sidecar.stem,
                "kind": str(meta.get("kind", "?")),
                "sha256": str(meta.get("sha256", "")),
                "source": source,
                "licence": _summary(meta.get("licence"), ("spdx",)),
                "path": str(weights),
            }
        )
    return models


def default_model() -> Path | None:
    """The installed real-face model to use when none is given: the first installed model whose
    kind is in :data:`REAL_FACE_KINDS` (in that order of preference), else ``None``."""
    models = list_models()
    for kind in REAL_FACE_KINDS:
        for model in models:
            if model["kind"] == kind:
                return Path(model["path"])
    return None
