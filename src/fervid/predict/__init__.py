"""``fervid predict``: videos and images in, per-frame expression tables, plots and video out.

- :mod:`~fervid.predict.predictor`: ``Predictor`` (video -> faces -> crops -> encoder ->
  temporal model -> per-frame table) and its options;
- :mod:`~fervid.predict.tracks`: the faces of each track while a video is read;
- :mod:`~fervid.predict.outputs`: tables, JSON summary, timeline plots, annotated video.
"""

from fervid.predict.predictor import COLUMNS, Prediction, PredictOptions, Predictor

__all__ = ["COLUMNS", "Prediction", "PredictOptions", "Predictor"]
