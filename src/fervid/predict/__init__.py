"""``fervid predict``: videos and images in, per-frame expression tables, plots and video out.

- :mod:`~fervid.predict.options`: ``PredictOptions``, what predict can be asked (light: the
  command line reads it at start-up);
- :mod:`~fervid.predict.predictor`: ``Predictor`` (video -> faces -> crops -> encoder ->
  temporal model -> per-frame table);
- :mod:`~fervid.predict.tracks`: the faces of each track while a video is read;
- :mod:`~fervid.predict.batch`: many inputs in one resumable job, the job summary;
- :mod:`~fervid.predict.outputs`: tables, JSON summary, timeline plots, annotated video.

``Predictor``, ``Prediction`` and ``COLUMNS`` are imported on first use, so that reading the
options does not load the video stack.
"""

from fervid.predict.options import PredictOptions

__all__ = ["COLUMNS", "Prediction", "PredictOptions", "Predictor"]


def __getattr__(name: str):
    if name in ("COLUMNS", "Prediction", "Predictor"):
        from fervid.predict import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'fervid.predict' has no attribute {name!r}")
