"""Column names of the per-frame tables fervid writes (predictions, evaluation, predict)."""

from fervid.labels import CLASS_NAMES

VIDEO = "video"
FRAME = "frame"
LABEL = "label"  # the annotated class (ground truth), -1 when unknown
HAS_IMAGE = "has_image"
FILLED = "filled"  # probabilities filled from neighbouring frames (no face image)
PRED = "pred"  # predicted class index
PRED_NAME = "pred_name"
PROB_COLUMNS: list[str] = list(CLASS_NAMES)  # one probability column per class, named by class
