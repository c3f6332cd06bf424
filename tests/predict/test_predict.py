"""fervid predict end to end, with a random-weights frame model (the pipeline, not accuracy)."""

import json
import shutil

import av
import numpy as np
import pandas as pd
import pytest
import torch

from fervid import schema
from fervid.api import predict
from fervid.cli import main
from fervid.config import load_config, to_dict
from fervid.errors import DataError
from fervid.models.frame import FrameModel
from fervid.predict import COLUMNS, PredictOptions, Predictor
from fervid.runtime.checkpoint import save_weights


@pytest.fixture(scope="module")
def random_weights_model(tmp_path_factory):
    """A frame model with untrained weights, packaged like a trained one."""
    config = load_config(None, ["model.backbone=test_resnet", "model.input_size=32"])
    torch.manual_seed(0)
    model = FrameModel(config.model)
    path = tmp_path_factory.mktemp("model") / "random.safetensors"
    return save_weights(path, model.state_dict(), {"kind": "frame", "config": to_dict(config)})


def write_video(path, frames=12, size=(64, 48), codec="libx264", fps=10):
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(frames):
            image = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.mark.slow
def test_real_video_every_output(shared_data, random_weights_model, tmp_path):
    video = shared_data / "WolfgangLanger_Pexels.mp4"
    results, errors = predict(
        [video], random_weights_model, tmp_path, annotate=True, options=PredictOptions(every=3)
    )
    assert errors == []
    table = pd.read_parquet(tmp_path / "WolfgangLanger_Pexels.parquet")
    assert list(table.columns) == COLUMNS
    # every frame labelled: the face is in all 472 frames and 471 is a processed frame (3 x 157),
    # so the track spans the whole clip (with every=4 it would end at frame 469, the last
    # processed one)
    assert table[schema.FRAME].tolist() == list(range(1, 473))  # one face, one track
    assert table["detected"].sum() == 158  # frames 1, 4, ..., 472
    assert table.loc[table["detected"], schema.FRAME].tolist() == list(range(1, 473, 3))
    np.testing.assert_allclose(table[schema.PROB_COLUMNS].sum(axis=1), 1.0, atol=1e-4)
    csv = pd.read_csv(tmp_path / "WolfgangLanger_Pexels.csv")
    assert len(csv) == len(table)
    summary = json.loads((tmp_path / "WolfgangLanger_Pexels.json").read_text())
    assert summary["decode_complete"] and summary["tracks"][0]["frames"] == len(table)
    assert (tmp_path / "WolfgangLanger_Pexels_track1_timeline.png").stat().st_size > 1000
    with av.open(str(tmp_path / "WolfgangLanger_Pexels_annotated.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 472


@pytest.mark.slow
def test_images_and_folders(shared_data, random_weights_model, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copy(shared_data / "multi_face.jpg", folder)
    shutil.copy(shared_data / "single_face.jpg", folder)
    results, errors = predict([folder], random_weights_model, tmp_path / "out")
    assert errors == []
    by_name = {r.path.name: r.table for r in results}
    assert len(by_name["multi_face.jpg"]) == 5 and by_name["multi_face.jpg"]["track"].nunique() == 5
    assert len(by_name["single_face.jpg"]) == 1


@pytest.mark.parametrize(
    ("suffix", "codec"),
    [(".mp4", "libx264"), (".avi", "mpeg4"), (".mkv", "libx264"), (".mov", "mpeg4")],
)
@pytest.mark.slow
def test_containers_without_faces_give_empty_tables(random_weights_model, tmp_path, suffix, codec):
    video = write_video(tmp_path / f"noise{suffix}", codec=codec)
    prediction = Predictor(random_weights_model).run(video)
    assert prediction.table.empty and list(prediction.table.columns) == COLUMNS
    assert prediction.summary["frames_decoded"] == 12
    assert prediction.summary["tracks"] == []


@pytest.mark.slow
def test_bad_inputs_fail_alone_and_the_others_complete(
    shared_data, random_weights_model, tmp_path, capsys
):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    empty = tmp_path / "empty.mp4"
    empty.touch()
    good = shared_data / "single_face.jpg"
    code = main(
        [
            "-q",
            "predict",
            str(text),
            str(empty),
            str(good),
            "--model",
            str(random_weights_model),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "notes.mp4" in err and "empty.mp4" in err
    assert "Traceback" not in err
    assert (tmp_path / "out" / "single_face.parquet").exists()


@pytest.mark.slow
def test_truncated_video_keeps_what_decodes(shared_data, random_weights_model, tmp_path):
    data = (shared_data / "WolfgangLanger_Pexels.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    # the clip's index (moov) sits before its data, so the first half still opens and decodes
    # (an mp4 with its index at the end cannot be opened at all: tests/video/test_decode.py)
    prediction = Predictor(random_weights_model, PredictOptions(every=4)).run(cut)
    summary = prediction.summary
    assert not summary["decode_complete"]
    assert "stopped at frame" in summary["warning"]
    decoded = summary["frames_decoded"]
    assert 0 < decoded < 472 and summary["frames_expected"] == 472
    table = prediction.table
    last_processed = (decoded - 1) // 4 * 4  # 0-based
    assert table[schema.FRAME].tolist() == list(range(1, last_processed + 2))
    assert table["detected"].sum() == last_processed // 4 + 1


def test_unwritable_output_folder(random_weights_model, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="output folder is not writable"):
        predict([tmp_path], random_weights_model, blocker / "out")


def test_model_with_wrong_hash_or_newer_format(random_weights_model, tmp_path):
    broken = tmp_path / "m.safetensors"
    shutil.copy(random_weights_model, broken)
    meta = json.loads(random_weights_model.with_suffix(".json").read_text())
    broken.with_suffix(".json").write_text(json.dumps({**meta, "sha256": "0" * 64}))
    with pytest.raises(DataError, match="sha256"):
        Predictor(broken)
    broken.with_suffix(".json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(DataError, match="newer"):
        Predictor(broken)


def test_synthetic_model_warns(random_weights_model, tmp_path, caplog):
    root = tmp_path / "synthroot"
    root.mkdir()
    (root / "synth.json").write_text("{}")
    config = load_config(
        None, ["model.backbone=test_resnet", "model.input_size=32", f"data.root={root}"]
    )
    path = save_weights(
        tmp_path / "synthetic",
        FrameModel(config.model).state_dict(),
        {"kind": "frame", "config": to_dict(config)},
    )
    with caplog.at_level("WARNING", logger="fervid"):
        Predictor(path)
    assert "synthetic" in caplog.text


def test_no_model_and_none_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("FERVID_HOME", str(tmp_path))
    with pytest.raises(DataError, match="no model given"):
        Predictor(None)


def test_predictor_is_available_at_the_package_top_level():
    import fervid

    assert fervid.Predictor is Predictor


def test_a_table_written_before_pred_name_reads_with_it(tmp_path):
    """Predict tables held the predicted class name as ``label`` before, the name that now means
    the true class only: read_predictions renames it, and refuses a table that is not predict's."""
    from fervid.api import read_predictions

    row = dict.fromkeys(COLUMNS, 0) | {schema.PRED_NAME: "Happiness"}
    old = pd.DataFrame([row]).rename(columns={schema.PRED_NAME: "label"})
    old.to_csv(tmp_path / "old.csv", index=False)
    table = read_predictions(tmp_path / "old.csv")
    assert list(table.columns) == COLUMNS and table[schema.PRED_NAME].tolist() == ["Happiness"]
    old.drop(columns=["label"]).to_parquet(tmp_path / "cut.parquet")
    with pytest.raises(DataError, match="pred_name"):
        read_predictions(tmp_path / "cut.parquet")
