"""``fervid import onnx``: ONNX files with EmotiEffLib / HSEmotion signatures, imported with
each preset, predict through ``fervid predict`` with the probabilities onnxruntime gives on the
same crops; the class mapping, the hash checks and the refusals (one line, exit 2)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import tests.predict.test_time_axis as base
import tests.zoo.onnx_helpers as onnx
from fervid import schema
from fervid.cli import main
from fervid.errors import DataError
from fervid.labels import CLASS_NAMES
from fervid.predict import PredictOptions, Predictor
from fervid.zoo import load_model
from fervid.zoo.onnx_import import import_onnx

clip, frame_model_file = base.clip, base.frame_model_file  # fixtures

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead

MEAN = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
HSE_8 = ["Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]
HSE_7 = [name for name in HSE_8 if name != "Contempt"]
PRESETS = {  # name: (input size, classes), from EmotiEffLib's published preprocessing
    "enet_b0_8_best_vgaf": (224, HSE_8),
    "enet_b0_8_best_afew": (224, HSE_8),
    "enet_b2_8": (260, HSE_8),
    "enet_b2_7": (260, HSE_7),
}


def expected_abaw(source_probs: np.ndarray, classes: list[str], contempt="other") -> np.ndarray:
    """The ABAW probabilities the mapping should give, written out independently."""
    abaw = np.zeros((len(source_probs), 8))
    for k, name in enumerate(classes):
        if name == "Contempt":
            if contempt == "other":
                abaw[:, CLASS_NAMES.index("Other")] += source_probs[:, k]
            continue
        abaw[:, CLASS_NAMES.index(name)] += source_probs[:, k]
    return abaw / abaw.sum(axis=1, keepdims=True)


class CropSpy:
    """Records the crops each ``frame_outputs`` call gets and the probabilities it returns."""

    def __init__(self, real):
        self.real, self.crops, self.probs = real, [], []

    def __call__(self, crops, flip=False):
        probs, features = self.real(crops, flip)
        self.crops.append(np.array(crops))
        self.probs.append(probs.copy())
        return probs, features


def predict(model, clip, **options):
    predictor = Predictor(model, PredictOptions(every=base.EVERY, smoothing=1, **options))
    predictor.detector = base.BrightFrameFaceDetector()
    spy = CropSpy(predictor.model.frame_outputs)
    predictor.model.frame_outputs = spy
    return predictor.run(clip).table, spy


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.slow
def test_each_preset_predicts_what_onnxruntime_gives_on_the_same_crops(preset, clip, tmp_path):
    size, classes = PRESETS[preset]
    source = onnx.expression_onnx(tmp_path / f"{preset}.onnx", size, len(classes))
    model = import_onnx(source, tmp_path / "model")  # the preset comes from the file name
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["preset"] == preset and meta["frame"]["input"]["size"] == size
    table, spy = predict(model, clip, batch_size=3)
    crops = np.concatenate(spy.crops)
    assert crops.shape[1:] == (3, size, size) and crops.dtype == np.uint8
    inputs = ((crops / 255.0 - MEAN) / STD).astype(np.float32)  # EmotiEffLib's preprocessing
    direct = onnx.softmax(onnx.run_directly(source, inputs))
    np.testing.assert_allclose(np.concatenate(spy.probs), expected_abaw(direct, classes), atol=1e-5)
    detected = table[table["detected"]]
    np.testing.assert_allclose(
        detected[schema.PROB_COLUMNS].to_numpy(), np.concatenate(spy.probs), atol=1e-5
    )
    if "Contempt" not in classes:
        assert (table["Other"] == 0).all()


def test_box_crops_are_the_detectors_box_resized_as_cv2_does(clip, tmp_path):
    source = onnx.expression_onnx(tmp_path / "enet_b0_8_best_vgaf.onnx", 224, 8)
    model = import_onnx(source, tmp_path / "model")
    from fervid.video.decode import read_frames

    image = next(f.image for f in read_frames(clip) if f.image.mean() > 60)
    box = base.BrightFrameFaceDetector().detect([image])[0]
    x0, y0, x1, y1 = (int(v) for v in box[0, :4])
    reference = cv2.resize(np.ascontiguousarray(image[y0:y1, x0:x1]), (224, 224))
    from fervid.zoo.preprocess import face_crops

    crop = face_crops(image, box, load_model(model).crop_spec)[0].transpose(1, 2, 0)
    assert np.abs(crop.astype(int) - reference.astype(int)).max() <= 1  # cv2's fixed point


@pytest.mark.parametrize("contempt", ["other", "drop"])
def test_contempt_goes_to_other_or_is_dropped(contempt, tmp_path):
    source = onnx.expression_onnx(tmp_path / "enet_b0_8_best_afew.onnx", 224, 8, seed=3)
    model = load_model(import_onnx(source, tmp_path / contempt, contempt=contempt))
    crops = np.random.default_rng(0).integers(0, 256, (5, 3, 224, 224), dtype=np.uint8)
    direct = onnx.softmax(onnx.run_directly(source, model.prepare(crops)))
    probs = model.probabilities(crops)
    np.testing.assert_allclose(probs, expected_abaw(direct, HSE_8, contempt), atol=1e-5)
    if contempt == "other":
        np.testing.assert_allclose(probs[:, 7], direct[:, 1], atol=1e-6)
    else:
        assert (probs[:, 7] == 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_flip_averages_the_logits_of_each_crop_and_its_mirror_image(tmp_path):
    source = onnx.expression_onnx(tmp_path / "enet_b2_8.onnx", 260, 8, seed=1)
    model = load_model(import_onnx(source, tmp_path / "model"))
    crops = np.random.default_rng(1).integers(0, 256, (3, 3, 260, 260), dtype=np.uint8)
    inputs = model.prepare(crops)
    logits = (onnx.run_directly(source, inputs) + onnx.run_directly(source, inputs[..., ::-1])) / 2
    probs, _ = model.frame_outputs(crops, flip=True)
    np.testing.assert_allclose(probs, expected_abaw(onnx.softmax(logits), HSE_8), atol=1e-5)


@pytest.mark.slow
def test_an_onnx_model_joins_an_ensemble_with_a_fervid_model(clip, frame_model_file, tmp_path):
    source = onnx.expression_onnx(tmp_path / "enet_b0_8_best_vgaf.onnx", 224, 8)
    model = import_onnx(source, tmp_path / "model")
    alone, _ = predict(model, clip)
    fervid_alone, _ = predict(frame_model_file, clip)
    both, _ = predict([model, frame_model_file], clip, flip=True)
    both_plain, _ = predict([model, frame_model_file], clip)
    expected = (alone[schema.PROB_COLUMNS].to_numpy() + fervid_alone[schema.PROB_COLUMNS]) / 2
    np.testing.assert_allclose(both_plain[schema.PROB_COLUMNS].to_numpy(), expected, atol=1e-5)
    assert not np.allclose(both[schema.PROB_COLUMNS], both_plain[schema.PROB_COLUMNS], atol=1e-4)


def test_the_penultimate_features_output_is_chosen_by_name(tmp_path):
    source = onnx.expression_onnx(tmp_path / "net.onnx", 224, 7, features=True)
    model = load_model(
        import_onnx(
            source,
            tmp_path / "model",
            preset="enet_b0_7",
            logits_output="logits",
            features_output="features",
        )
    )
    crops = np.random.default_rng(2).integers(0, 256, (4, 3, 224, 224), dtype=np.uint8)
    _, features = model.frame_outputs(crops)
    direct = onnx.run_directly(source, model.prepare(crops), "features")
    assert model.num_features == 6 and features.shape == (4, 6)
    np.testing.assert_allclose(features, direct, atol=1e-6)


# -- refusals: one line, exit 2 ------------------------------------------------------------------


def one_line_error(capsys, argv) -> str:
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own checks
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_refusals_exit_2_with_one_line(capsys, tmp_path):
    rank_two = onnx.rank_two_onnx(tmp_path / "flat.onnx")
    err = one_line_error(capsys, ["import", "onnx", str(rank_two), "--preset", "enet_b0_7"])
    assert "rank 2" in err and "(batch, 3, height, width)" in err
    good = onnx.expression_onnx(tmp_path / "enet_b0_8_best_vgaf.onnx", 224, 8)
    out = str(tmp_path / "m")
    err = one_line_error(
        capsys, ["import", "onnx", str(good), "--logits-output", "nope", "--out", out]
    )
    assert "no output 'nope'" in err and "logits" in err
    err = one_line_error(capsys, ["import", "onnx", str(good), "--sha256", "0" * 64, "--out", out])
    assert "sha256" in err
    mystery = onnx.expression_onnx(tmp_path / "mystery.onnx", 224, 8)
    err = one_line_error(capsys, ["import", "onnx", str(mystery), "--out", out])
    assert "missing the class order" in err and "normalisation" in err
    err = one_line_error(capsys, ["import", "fer", str(good), "--size", "224"])
    assert "--size" in err
    err = one_line_error(capsys, ["import", "onnx", str(good), "--margin", "2"])
    assert "--margin" in err


def test_a_changed_model_file_or_sidecar_is_refused(capsys, clip, tmp_path):
    source = onnx.expression_onnx(tmp_path / "enet_b0_8_best_vgaf.onnx", 224, 8)
    model = import_onnx(source, tmp_path / "model")
    sidecar = json.loads(model.with_suffix(".json").read_text())
    data = bytearray(model.read_bytes())
    data[-10] ^= 1
    model.write_bytes(bytes(data))
    err = one_line_error(
        capsys, ["predict", str(clip), "--model", str(model), "--out", str(tmp_path / "p")]
    )
    assert "sha256" in err and "does not match" in err
    from fervid.zoo.onnx_model import load_onnx_model

    model = import_onnx(source, tmp_path / "model")  # whole again
    del sidecar["frame"]["input"]["mean"]
    model.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(DataError, match="unknown ONNX model layout: missing frame.input.mean"):
        load_onnx_model(model)


@pytest.mark.parametrize("preset", ["enet_b0_8_best_vgaf", "enet_b2_7"])
def test_fervid_predict_on_real_photos_gives_onnxruntimes_probabilities(
    shared_data, preset, tmp_path
):
    import pandas as pd

    from fervid.video.decode import read_frames
    from fervid.zoo.preprocess import face_crops

    size, classes = PRESETS[preset]
    source = onnx.expression_onnx(tmp_path / f"{preset}.onnx", size, len(classes), seed=5)
    model = import_onnx(source, tmp_path / "model")
    spec = load_model(model).crop_spec
    for name in ("single_face.jpg", "multi_face.jpg"):
        out = tmp_path / "predictions"
        argv = ["-q", "predict", str(shared_data / name), "--model", str(model), "--out", str(out)]
        assert main(argv) == 0
        table = pd.read_parquet(out / f"{Path(name).stem}.parquet")
        assert len(table) == (1 if name == "single_face.jpg" else 5)
        image = next(iter(read_frames(shared_data / name))).image
        boxes = table[["x0", "y0", "x1", "y1"]].to_numpy(np.float32)
        crops = face_crops(image, np.pad(boxes, ((0, 0), (0, 11))), spec)
        inputs = ((crops / 255.0 - MEAN) / STD).astype(np.float32)
        direct = expected_abaw(onnx.softmax(onnx.run_directly(source, inputs)), classes)
        np.testing.assert_allclose(table[schema.PROB_COLUMNS].to_numpy(), direct, atol=1e-5)
