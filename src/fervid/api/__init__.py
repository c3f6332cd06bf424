"""The Python API: one function per thing fervid does; the ``fervid`` command is a thin layer
over them (fervid/cli/commands.py), so everything the command does can be done from Python.

- :mod:`~fervid.api.data`: :func:`synth`, :func:`check`, :func:`crop`;
- :mod:`~fervid.api.training`: :func:`train`, :func:`features`, :func:`demo`,
  :func:`train_two_stages`, :func:`ablate`, :func:`plot`;
- :mod:`~fervid.api.evaluation`: :func:`evaluate`, :func:`evaluate_temporal`, :func:`submit`;
- :mod:`~fervid.api.model_files`: :func:`export`, :func:`import_fer`, :func:`import_onnx`,
  :func:`list_models`, :func:`model_folder`;
- :mod:`~fervid.api.prediction`: :func:`predict` (with :class:`PredictOptions`),
  :func:`read_predictions`.

Each module imports what a function needs when it runs, so ``from fervid import api`` is quick.
"""

from fervid.api.data import check, check_output_folder, crop, synth
from fervid.api.evaluation import evaluate, evaluate_temporal, model_file, split_options, submit
from fervid.api.model_files import export, import_fer, import_onnx, list_models, model_folder
from fervid.api.prediction import PredictOptions, predict, read_predictions
from fervid.api.training import (
    ablate,
    demo,
    features,
    plot,
    train,
    train_two_stages,
    two_stage_overrides,
)

__all__ = [
    "PredictOptions",
    "ablate",
    "check",
    "check_output_folder",
    "crop",
    "demo",
    "evaluate",
    "evaluate_temporal",
    "export",
    "features",
    "import_fer",
    "import_onnx",
    "list_models",
    "model_file",
    "model_folder",
    "plot",
    "predict",
    "read_predictions",
    "split_options",
    "submit",
    "synth",
    "train",
    "train_two_stages",
    "two_stage_overrides",
]
