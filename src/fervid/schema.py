"""Every column name of every table fervid writes, each with one meaning.

docs/data.md ("Columns of the tables fervid writes") lists them with the files that hold them.
A true class and a predicted one never share a name: ``label`` is always the annotation (ground
truth), ``pred`` / ``pred_name`` always the model's choice.
"""

from fervid.labels import CLASS_NAMES

# -- where a row is --------------------------------------------------------------------------
VIDEO = "video"  # the dataset video (crop folder) a frame belongs to
FRAME = "frame"  # 1-based source frame number
FILE = "file"  # the input (file or stream) a predict row comes from
TIME = "time"  # the frame's presentation time, seconds
TRACK = "track"  # predict: the face's track number within its input
FACE = "face"  # synthetic scenes: the face's index, 0 = leftmost

# -- the face in the frame -------------------------------------------------------------------
BOX_COLUMNS = ["x0", "y0", "x1", "y1"]  # the face box, pixels of the frame
LANDMARK_COLUMNS = [
    f"{point}_{axis}" for point in ("eye_l", "eye_r", "nose", "mouth_l", "mouth_r") for axis in "xy"
]  # the 5 landmarks (image left eye first), pixels of the frame
SCORE = "score"  # the detector's confidence in the face
DETECTED = "detected"  # the frame was processed and the face detected there

# -- classes ---------------------------------------------------------------------------------
LABEL = "label"  # the annotated (true) class index, -1 when unknown
HAS_IMAGE = "has_image"  # the frame has a face crop (a feature store: a feature)
FILLED = "filled"  # probabilities filled from neighbouring frames (no model predicted it)
PROB_COLUMNS: list[str] = list(CLASS_NAMES)  # one probability column per class, named by class
PRED = "pred"  # the predicted class index (argmax of the probabilities)
PRED_NAME = "pred_name"  # the predicted class name
LATENCY = "latency_s"  # predict --live rows: seconds from the frame's decoding to its row

# -- predict's per-frame table (<stem>.csv / .parquet), in order -------------------------------
PREDICT_COLUMNS = [
    FILE,
    FRAME,
    TIME,
    TRACK,
    *BOX_COLUMNS,
    *LANDMARK_COLUMNS,
    SCORE,
    DETECTED,
    *PROB_COLUMNS,
    PRED,
    PRED_NAME,
]
OLD_PREDICT_PRED_NAME = "label"  # predict tables written before the rename held pred_name here

# -- predict's job summary (fervid-job-summary.csv / .parquet) ---------------------------------
DURATION = "duration_s"  # the input's duration, seconds
FRAMES = "frames"  # source frames decoded
FACES = "faces"  # faces detected, over all frames
TRACKS = "tracks"  # number of face tracks
DOMINANT = "dominant"  # each track's most frequent predicted class: "1: Happiness; 2: Neutral"
ERROR = "error"  # why the input has no outputs ("" when it has)
JOB_SUMMARY_COLUMNS = [FILE, DURATION, FRAMES, FACES, TRACKS, DOMINANT, ERROR]

# -- evaluation summaries (per_class.csv, comparison.csv) and the submission file --------------
CLASS = "class"  # a class name
F1 = "f1"  # the class's F1
SUPPORT = "support"  # annotated frames of the class
PREDICTED = "predicted"  # frames predicted as the class
SYSTEM = "system"  # frame model / moving average / temporal encoder
MACRO_F1 = "macro_f1"  # mean F1 over the 8 classes
IMAGE_LOCATION = "image_location"  # the submission's <video>/<NNNNN>.jpg
