"""fervid: facial expression recognition in video (semi-supervised frame encoder + temporal
encoder, after arXiv 2403.11942)."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``fervid.Predictor`` without importing the video stack for every ``import fervid``."""
    if name == "Predictor":
        from fervid.predict import Predictor

        return Predictor
    raise AttributeError(f"module 'fervid' has no attribute {name!r}")
