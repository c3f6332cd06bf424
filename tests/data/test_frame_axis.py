"""Every store and frame list puts a video on its real frame axis: one row per frame from 1 to its
last frame, frames without a face crop masked, so that windows, positions, the moving average
and the neighbour fill see frames the same distance apart in training, validation and test.
Stores written before (format 1) open as before when none of their videos skips a frame, and are
refused with a way to rebuild them when one does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fervid.config import load_config
from fervid.data.frame_lists import frame_axis, read_test_frames
from fervid.data.table import FrameTable
from fervid.errors import DataError
from fervid.labels import ABAW_HEADER
from fervid.models.temporal import make_windows
from fervid.stage2.compare import moving_average_per_video
from fervid.stage2.extract import split_frames
from fervid.stage2.store import FeatureStore, write_store

ENCODER = {"sha256": "7" * 64, "backbone": "synthetic", "input_size": 0, "source": "test"}
GAP = range(6, 16)  # frames 6-15: not annotated (-1) and no face crop


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FERVID_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def gapped(tmp_path) -> Path:
    """One 20-frame validation video whose frames 6-15 are -1 and have no crop."""
    root = tmp_path / "affwild2"
    labels = [-1 if frame in GAP else frame % 8 for frame in range(1, 21)]
    folder = root / "EXPR_Recognition_Challenge" / "Validation_Set"
    folder.mkdir(parents=True)
    (folder / "gap.txt").write_text("\n".join([ABAW_HEADER, *map(str, labels)]) + "\n")
    crops = root / "cropped_aligned" / "gap"
    crops.mkdir(parents=True)
    for frame in range(1, 21):
        if frame not in GAP:
            Image.new("RGB", (8, 8), (frame, 0, 0)).save(crops / f"{frame:05d}.jpg")
    return root


def test_a_gap_without_labels_or_crops_keeps_its_rows_in_validation_and_test_alike(gapped):
    data = load_config(None, [f"data.root={gapped}"]).data
    validation = split_frames(data, "validation")
    test = frame_axis(gapped, read_test_frames(gapped, ["gap"]))
    for table in (validation, test):
        assert table.frame.tolist() == list(range(1, 21))
        assert not table.has_image[np.isin(table.frame, GAP)].any()
        assert table.has_image[~np.isin(table.frame, GAP)].all()
    assert (validation.label[np.isin(validation.frame, GAP)] == -1).all()
    assert validation.label.tolist()[:5] == [1, 2, 3, 4, 5]

    # a window's rows are consecutive frames, not frames 1-5 followed by 16-18
    windows = make_windows([rows for _, rows in validation.video_slices()], 8, 4)
    first = windows.starts[0] + np.arange(windows.lengths[0])
    assert validation.frame[first].tolist() == list(range(1, 9))

    # the moving average at frame 5 averages frames 4-6, of which 6 has no face: never frame 16
    probs = np.random.default_rng(0).dirichlet(np.ones(8), 20).astype(np.float32)
    averaged, known = moving_average_per_video(validation, probs, validation.has_image, 3)
    np.testing.assert_allclose(averaged[4], probs[3:5].mean(axis=0), rtol=1e-6)
    assert known[4] and not known[9]  # frame 10: its window (9-11) holds no face


def test_the_test_frame_list_is_the_annotation_length_else_the_last_crop(gapped, tmp_path):
    more = gapped / "cropped_aligned" / "unlisted"
    more.mkdir()
    for frame in (1, 2, 4):
        Image.new("RGB", (8, 8)).save(more / f"{frame:05d}.jpg")
    table = read_test_frames(gapped, ["unlisted", "gap"])
    assert table.videos == ["unlisted", "gap"]  # the list's order
    assert table.frame[table.video == 0].tolist() == [1, 2, 3, 4]  # to its last crop
    assert table.frame[table.video == 1].tolist() == list(range(1, 21))  # its annotation's length
    frame_list = tmp_path / "frames.txt"  # the sample submission's rows without its header
    frame_list.write_text("gap/00003.jpg\ngap/00001.jpg\ngap/00025.jpg\n")
    listed = read_test_frames(gapped, frame_list)
    assert listed.frame.tolist() == [1, 3, 25]
    frame_list.write_text("gap/00000.jpg\n")
    with pytest.raises(DataError, match="frames.txt:1: 'gap/00000.jpg' is not <video>"):
        read_test_frames(gapped, frame_list)
    axis = frame_axis(gapped, listed)
    assert axis.frame.tolist() == list(range(1, 26))  # to the last listed frame
    assert not axis.has_image[20:].any()


def dense_store(path: Path, frames=(1, 2, 3, 4, 5, 6)) -> FeatureStore:
    table = FrameTable(
        videos=["v"],
        patterns=["{}"],
        video=np.zeros(len(frames)),
        frame=np.asarray(frames),
        label=np.arange(len(frames)) % 8,
        has_image=np.ones(len(frames), bool),
    )
    rng = np.random.default_rng(1)
    features = rng.normal(size=(len(frames), 4)).astype(np.float32)
    return write_store(path, table, ENCODER, features, rng.normal(size=(len(frames), 8)))


def as_format_1(store: FeatureStore, frames=None) -> Path:
    """The store as an older fervid wrote it: format 1, and (``frames``) rows that skip frames."""
    meta = json.loads((store.path / "store.json").read_text())
    (store.path / "store.json").write_text(json.dumps({**meta, "format_version": 1}))
    if frames is not None:
        table = store.table.select(np.arange(len(store.table)))
        table.frame = np.asarray(frames, np.int32)
        table.save(store.path / "index.npz")
    return store.path


def test_an_old_store_opens_as_before_when_no_video_skips_a_frame(tmp_path):
    store = dense_store(tmp_path / "store")
    old = FeatureStore.open(as_format_1(store))
    np.testing.assert_array_equal(old.frame_probabilities()[0], store.frame_probabilities()[0])
    assert old.table.frame.tolist() == [1, 2, 3, 4, 5, 6]


def test_an_old_store_whose_rows_skip_frames_is_refused_with_how_to_rebuild_it(tmp_path):
    path = as_format_1(dense_store(tmp_path / "store"), frames=[1, 2, 3, 14, 15, 16])
    with pytest.raises(
        DataError, match=r"video v jumps from frame 3 to 14.*rerun `fervid features"
    ):
        FeatureStore.open(path)


def test_a_store_is_never_written_with_rows_that_skip_frames(tmp_path):
    with pytest.raises(DataError, match="rows of video v jump from frame 3 to frame 14"):
        dense_store(tmp_path / "store", frames=(1, 2, 3, 14, 15, 16))
    assert not (tmp_path / "store" / "store.json").exists()
