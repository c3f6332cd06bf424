"""The ABAW test path: `fervid submit` writes a complete submission file for the test videos (frames
with no face crop filled from neighbours, `_left/_right` videos, an ensemble) and refuses an
incomplete one. The models are the small real model files of tests/fixtures/legacy-4c18e36."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fervid import api
from fervid.cli import main
from fervid.config import load_config
from fervid.data.affwild2 import unannotated_videos
from fervid.data.frame_lists import read_test_frames
from fervid.errors import DataError
from fervid.evaluate import SUBMISSION_HEADER, write_submission
from fervid.stage2 import submission
from tests.conftest import write_colour_coded_affwild2
from tests.helpers import FIXTURES

LEGACY = FIXTURES / "legacy-4c18e36"
VIDEO_MODEL = LEGACY / "video.safetensors"  # frame encoder + Temporal Encoder
FRAME_MODEL = LEGACY / "stage1"  # a stage-1 run folder
TEST_VIDEOS = {"test_00_left": 30, "test_00_right": 26, "test_01": 34}
NO_IMAGE = {4, 5, 6, 17}  # frames of every test video whose face the detector "missed"


@pytest.fixture(scope="module")
def challenge(tmp_path_factory) -> Path:
    """Training and validation videos with annotations plus three test videos without."""
    root = write_colour_coded_affwild2(tmp_path_factory.mktemp("challenge"), 1, 20)
    rng = np.random.default_rng(5)
    for name, frames in TEST_VIDEOS.items():
        folder = root / "cropped_aligned" / name
        folder.mkdir(parents=True)
        for frame in range(1, frames + 1):
            if frame not in NO_IMAGE:
                pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{frame:05d}.jpg", quality=90)
    return root


def sample_submission(path: Path, last_frames: dict[str, int]) -> Path:
    """The organisers' sample file: header, then every frame to predict (with a dummy label)."""
    rows = [f"{v}/{f:05d}.jpg,0" for v, n in last_frames.items() for f in range(1, n + 1)]
    path.write_text("\n".join([SUBMISSION_HEADER, *rows]) + "\n")
    return path


def submit(root: Path, out: Path, *extra: str) -> int:
    return main(["-q", "submit", "--out", str(out), f"data.root={root}", "data.workers=0", *extra])


def read_rows(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    assert lines[0] == SUBMISSION_HEADER
    return lines[1:]


def test_the_test_videos_are_the_folders_without_annotations(challenge):
    assert unannotated_videos(challenge) == sorted(TEST_VIDEOS)


@pytest.mark.slow
def test_an_ensemble_submission_covers_every_listed_frame_once(challenge, tmp_path):
    asked = {name: frames + 3 for name, frames in TEST_VIDEOS.items()}  # 3 more after the last face
    sample = sample_submission(tmp_path / "sample.csv", asked)
    out = tmp_path / "submission.csv"
    models = ["--model", str(VIDEO_MODEL), "--model", str(FRAME_MODEL)]
    assert submit(challenge, out, "--videos", str(sample), *models) == 0
    rows = read_rows(out)
    expected = [f"{v}/{f:05d}.jpg" for v, n in asked.items() for f in range(1, n + 1)]
    assert sorted(row.split(",")[0] for row in rows) == sorted(expected)
    assert all(0 <= int(row.split(",")[1]) < 8 for row in rows)

    probabilities = pd.read_parquet(out.with_suffix(".parquet"))
    assert len(probabilities) == len(expected)
    no_face = probabilities[~probabilities["has_image"]]
    assert len(no_face) == 3 * (len(NO_IMAGE) + 3)
    # the video model's Temporal Encoder predicts the frames without a face from the faces
    # around them (the frame model does not): nothing is left for the neighbour fill
    assert not no_face["filled"].any()
    assert np.allclose(probabilities[list(probabilities.columns[-8:])].sum(axis=1), 1, atol=1e-5)
    # the labels are the argmax of the averaged probabilities
    argmax = probabilities[list(probabilities.columns[-8:])].to_numpy().argmax(axis=1)
    assert [int(row.split(",")[1]) for row in rows] == argmax.tolist()

    stores = sorted(p.name for p in (tmp_path / "submission-features").iterdir())
    assert len(stores) == 2  # one feature store per model, reused by a rerun
    before = out.read_text()
    assert submit(challenge, out, "--videos", str(sample), *models) == 0
    assert out.read_text() == before


@pytest.mark.slow
def test_without_a_list_every_unannotated_video_is_predicted_to_its_last_face(
    challenge, tmp_path, caplog
):
    out = tmp_path / "submission.csv"
    assert submit(challenge, out, "--model", str(VIDEO_MODEL)) == 0
    locations = {row.split(",")[0] for row in read_rows(out)}
    expected = {f"{v}/{f:05d}.jpg" for v, n in TEST_VIDEOS.items() for f in range(1, n + 1)}
    assert locations == expected  # frames 4-6 and 17 have no crop and are still there
    # never silent: frames after the last face cannot be known without the organisers' list
    assert "3 of 3 videos have no frame list or annotation file (test_00_left" in caplog.text


@pytest.mark.slow
def test_rows_follow_the_lists_video_order_with_frames_ascending(challenge, tmp_path):
    order = ["test_01", "test_00_right", "test_00_left"]
    rows = [f"{v}/{f:05d}.jpg," for v in order for f in range(TEST_VIDEOS[v], 0, -1)]
    sample = tmp_path / "sample.csv"
    sample.write_text("\n".join([SUBMISSION_HEADER, *rows]) + "\n")
    out = tmp_path / "submission.csv"
    assert submit(challenge, out, "--videos", str(sample), "--model", str(FRAME_MODEL)) == 0
    written = [row.split(",")[0] for row in read_rows(out)]
    assert written == [f"{v}/{f:05d}.jpg" for v in order for f in range(1, TEST_VIDEOS[v] + 1)]


@pytest.mark.slow
def test_frames_after_a_videos_last_face_crop_are_named_with_their_count(
    challenge, tmp_path, caplog
):
    asked = {**TEST_VIDEOS, "test_01": TEST_VIDEOS["test_01"] + 3}
    sample = sample_submission(tmp_path / "sample.csv", asked)
    config = load_config(None, [f"data.root={challenge}", "data.workers=0"])
    summary = api.submit([FRAME_MODEL], config, tmp_path / "submission.csv", sample, progress=False)
    assert summary["after_last_face"] == {"test_01": 3}
    assert "test_01: 3 listed frames come after its last face crop (frame 34)" in caplog.text
    assert summary["frames"] == sum(asked.values())


def test_a_submission_missing_listed_frames_is_refused_whatever_the_models_covered(
    challenge, tmp_path, monkeypatch
):
    """The rows written are checked against the frame list, not against the rows predicted."""
    real = submission.predict_frames

    def one_frame_short(*args, **kwargs):
        predictions, after = real(*args, **kwargs)
        return predictions.iloc[:-1], after

    monkeypatch.setattr(submission, "predict_frames", one_frame_short)
    config = load_config(None, [f"data.root={challenge}", "data.workers=0"])
    out = tmp_path / "submission.csv"
    with pytest.raises(DataError, match="1 frames missing .first: test_01/00034.jpg"):
        api.submit([FRAME_MODEL], config, out, ["test_01"], progress=False)
    assert not out.exists() and not out.with_suffix(".parquet").exists()


def test_an_incomplete_submission_is_refused_and_nothing_is_written(challenge, tmp_path):
    expected = read_test_frames(challenge, ["test_01"])
    names = ["test_01"] * len(expected)
    path = tmp_path / "submission.csv"
    path.write_text("earlier file\n")
    preds = np.zeros(len(expected), int)
    with pytest.raises(DataError, match="1 frames missing .first: test_01/00034.jpg"):
        write_submission(path, names[:-1], expected.frame[:-1], preds[:-1], expected=expected)
    twice = np.concatenate([expected.frame[:-1], expected.frame[:1]])
    with pytest.raises(DataError, match="1 frames twice .first: test_01/00001.jpg"):
        write_submission(path, names, twice, preds, expected=expected)
    other = ["test_00_left"] + names[1:]
    with pytest.raises(DataError, match="frames not asked for .first: test_00_left/00001.jpg"):
        write_submission(path, other, expected.frame, preds, expected=expected)
    assert path.read_text() == "earlier file\n"
    write_submission(path, names, expected.frame, preds, expected=expected)
    assert len(read_rows(path)) == len(expected)


def test_submit_refuses_a_model_that_cannot_run_over_crops(challenge, tmp_path, capsys):
    out = tmp_path / "submission.csv"
    stage2 = LEGACY / "stage2" / "model.safetensors"
    assert submit(challenge, out, "--model", str(stage2)) == 2
    assert "cannot run over a split of face crops" in capsys.readouterr().err
    assert not out.exists()


def test_the_command_list_shows_submit(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "submit" in capsys.readouterr().out
