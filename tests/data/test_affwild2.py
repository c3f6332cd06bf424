"""Aff-Wild2 reader, its cache, its bad-input errors and the dataset check."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fervid.data import affwild2
from fervid.data.affwild2 import read_split, read_video_frames
from fervid.data.check import check_dataset
from fervid.data.frame_lists import read_test_frames
from fervid.errors import DataError
from fervid.labels import ABAW_HEADER


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FERVID_CACHE_DIR", str(tmp_path / "cache"))


def write_images(root: Path, video: str, frames, folder: str = "cropped_aligned") -> None:
    directory = root / folder / video
    directory.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        Image.new("RGB", (8, 8), (frame % 256, 0, 0)).save(directory / f"{frame:05d}.jpg")


def write_labels(root: Path, split: str, video: str, labels, header: str = ABAW_HEADER) -> Path:
    directory = root / "EXPR_Recognition_Challenge" / split
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{video}.txt"
    path.write_text("\n".join([header, *map(str, labels)]) + "\n")
    return path


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "affwild2"
    write_labels(root, "Train_Set", "10-60-1280x720", [0, 1, -1, 4, 7])
    write_images(root, "10-60-1280x720", [1, 2, 3, 5])  # frame 4 has no face crop
    write_labels(root, "Train_Set", "video5_left", [2, 3, 3])
    write_labels(root, "Train_Set", "video5_right", [-1, 6, 5])
    write_images(root, "video5_left", [1, 2, 3])
    write_images(root, "video5_right", [1, 2, 3])
    write_labels(root, "Validation_Set", "val1", [5, 5, -1, -1])
    write_images(root, "val1", [1, 2, 3, 4])
    write_images(root, "test1", [1, 2, 4])  # not annotated: a test video
    return root


def rows(table) -> list[tuple[str, int, int, bool]]:
    return [
        (table.video_name(i), int(table.frame[i]), int(table.label[i]), bool(table.has_image[i]))
        for i in range(len(table))
    ]


def test_read_split_rows(tree):
    table = read_split(tree, "train")
    assert rows(table) == [
        ("10-60-1280x720", 1, 0, True),
        ("10-60-1280x720", 2, 1, True),
        ("10-60-1280x720", 4, 4, False),
        ("10-60-1280x720", 5, 7, True),
        ("video5_left", 1, 2, True),
        ("video5_left", 2, 3, True),
        ("video5_left", 3, 3, True),
        ("video5_right", 2, 6, True),
        ("video5_right", 3, 5, True),
    ]
    for i in np.flatnonzero(table.has_image):
        path = Path(table.image_path(i))
        assert path.is_absolute() and path.is_file()
        assert path.parent.name == table.video_name(i)
    assert not Path(table.image_path(2)).exists()
    assert table.image_path(2).endswith(f"cropped_aligned{os.sep}10-60-1280x720{os.sep}00004.jpg")


def test_validation_split_and_separate_annotation_root(tree, tmp_path):
    moved = tmp_path / "annotations"
    moved.mkdir()
    (tree / "EXPR_Recognition_Challenge").rename(moved / "EXPR_Recognition_Challenge")
    table = read_split(tree, "validation", annotations=moved)
    assert rows(table) == [("val1", 1, 5, True), ("val1", 2, 5, True)]
    # The challenge folder itself is accepted too.
    assert len(read_split(tree, "validation", moved / "EXPR_Recognition_Challenge")) == 2
    with pytest.raises(DataError, match="EXPR_Recognition_Challenge"):
        read_split(tree, "train")


def test_header_tolerates_bom_crlf_and_trailing_space(tree):
    path = tree / "EXPR_Recognition_Challenge" / "Train_Set" / "video5_left.txt"
    path.write_bytes(b"\xef\xbb\xbf" + ABAW_HEADER.encode() + b"  \r\n2\r\n3 \r\n3\r\n\r\n")
    table = read_split(tree, "train", cache=False)
    assert [label for name, _, label, _ in rows(table) if name == "video5_left"] == [2, 3, 3]


def test_cache_hit_and_invalidation(tree, tmp_path):
    cache = tmp_path / "cache"
    first = read_split(tree, "train")
    files = list(cache.glob("affwild2-train-*.npz"))
    assert len(files) == 1
    # A hit is served from the cache file: corrupting the labels in it shows through.
    cached = affwild2.FrameTable.load(files[0])
    cached.label[:] = 3
    cached.save(files[0])
    assert (read_split(tree, "train").label == 3).all()
    # Changing an annotation file (size and mtime) invalidates the cache.
    write_labels(tree, "Train_Set", "video5_left", [2, 3, 3, 1])
    write_images(tree, "video5_left", [4])
    again = read_split(tree, "train")
    assert rows(again)[:4] == rows(first)[:4]
    assert ("video5_left", 4, 1, True) in rows(again)
    # Removing an image changes its folder's mtime: has_image is recomputed.
    (tree / "cropped_aligned" / "10-60-1280x720" / "00005.jpg").unlink()
    assert ("10-60-1280x720", 5, 7, False) in rows(read_split(tree, "train"))
    assert len(list(cache.glob("affwild2-train-*.npz"))) == 1  # stale entries are removed


def test_cache_defaults_to_root_folder(tree, monkeypatch):
    monkeypatch.delenv("FERVID_CACHE_DIR")
    read_split(tree, "validation")
    assert list((tree / ".fervid_cache").glob("affwild2-validation-*.npz"))


def test_cache_can_be_disabled(tree, tmp_path):
    read_split(tree, "train", cache=False)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("", None, "empty annotation file"),
        ("Neutral,Anger,Disgust,Fear,Happy,Sad,Surprise,Other\n0\n", 1, "header"),
        (ABAW_HEADER + "\n", 1, "no label lines"),
        (ABAW_HEADER + "\n0\n1\n8\n", 4, "'8' is not an integer in -1..7"),
        (ABAW_HEADER + "\n0\nhappy\n1\n", 3, "'happy'"),
        (ABAW_HEADER + "\n0\n\n1\n", 3, "not an integer"),
        (ABAW_HEADER + "\n0\n-2\n1.5\n", 3, "1 more bad lines"),
    ],
)
def test_bad_annotation_file(tree, content, line, message):
    path = tree / "EXPR_Recognition_Challenge" / "Train_Set" / "video5_left.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as caught:
        read_split(tree, "train")
    assert caught.value.path == str(path)
    assert caught.value.line == line
    assert "video5_left.txt" in str(caught.value)


def test_missing_folders(tree, tmp_path):
    with pytest.raises(DataError, match="cropped_aligned"):
        read_split(tmp_path / "elsewhere", "train")
    (tree / "EXPR_Recognition_Challenge" / "Validation_Set").rename(tree / "moved")
    with pytest.raises(DataError, match="Validation_Set"):
        read_split(tree, "validation")
    with pytest.raises(ValueError, match="train, validation"):
        read_split(tree, "test")
    (tree / "EXPR_Recognition_Challenge" / "Validation_Set").mkdir()
    with pytest.raises(DataError, match="no annotation files") as caught:
        read_split(tree, "validation")
    assert caught.value.path.endswith("Validation_Set")


def test_annotation_without_image_folder(tree):
    write_labels(tree, "Train_Set", "ghost", [0, 1])
    with pytest.raises(DataError, match="no image folder") as caught:
        read_split(tree, "train")
    assert caught.value.path.endswith("ghost.txt")


def test_too_many_label_lines(tree):
    write_images(tree, "long", [1, 100])
    # Labels may run past the last image (faces lost at the end) by up to max(50, 10%) ...
    write_labels(tree, "Train_Set", "long", [0] * 150)
    assert len(read_split(tree, "train")) == 9 + 150
    # ... but not further, unless the extra lines are all -1.
    write_labels(tree, "Train_Set", "long", [0] * 151)
    with pytest.raises(DataError, match="end at frame 100") as caught:
        read_split(tree, "train")
    assert caught.value.line == 152 and caught.value.path.endswith("long.txt")
    write_labels(tree, "Train_Set", "long", [0] * 100 + [-1] * 900)
    assert len(read_split(tree, "train")) == 9 + 100


def test_read_split_mentions_further_problems(tree):
    write_labels(tree, "Train_Set", "ghost", [0])
    write_labels(tree, "Train_Set", "video5_left", [9])
    with pytest.raises(DataError, match="1 more problems"):
        read_split(tree, "train")


def test_read_test_frames(tree, tmp_path):
    table = read_test_frames(tree, ["test1"])
    assert rows(table) == [
        ("test1", 1, -1, True),
        ("test1", 2, -1, True),
        ("test1", 3, -1, False),
        ("test1", 4, -1, True),
    ]
    listing = tmp_path / "test_videos.txt"
    listing.write_text("test1\n\nval1\n")
    assert read_test_frames(tree, listing).videos == ["test1", "val1"]
    sample = tmp_path / "sample.txt"
    sample.write_text(
        "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n"
        "test1/00001.jpg,\ntest1/00005.jpg,\ntest1/00003.jpg,\n"
    )
    assert rows(read_test_frames(tree, sample)) == [
        ("test1", 1, -1, True),
        ("test1", 3, -1, False),
        ("test1", 5, -1, False),
    ]
    with pytest.raises(DataError, match="missing"):
        read_test_frames(tree, ["missing"])


def test_read_video_frames(tree):
    table = read_video_frames(tree, ["test1", "video5_left"])
    assert rows(table)[:3] == [
        ("test1", 1, -1, True),
        ("test1", 2, -1, True),
        ("test1", 4, -1, True),
    ]
    assert table.has_image.all() and len(table) == 6
    everything = read_video_frames(tree)
    assert sorted(set(everything.videos)) == sorted(os.listdir(tree / "cropped_aligned"))
    write_images(tree, "pool1", [1, 2], folder="unlabelled/cropped_aligned")
    pool = read_video_frames(tree / "unlabelled")
    assert pool.videos == ["pool1"] and Path(pool.image_path(1)).is_file()


def test_unusual_image_names(tree):
    folder = tree / "cropped_aligned" / "val1"
    (folder / "Thumbs.db").write_bytes(b"x")
    (folder / "7.jpg").write_bytes(b"x")  # not zero-padded: not a frame
    assert rows(read_split(tree, "validation", cache=False))[1] == ("val1", 2, 5, True)
    png = tree / "cropped_aligned" / "pngs"
    png.mkdir()
    Image.new("RGB", (4, 4)).save(png / "00002.png")
    table = read_video_frames(tree, ["pngs"])
    assert table.image_path(0).endswith("00002.png") and Path(table.image_path(0)).is_file()


def test_check_dataset_reports_everything(tree):
    write_labels(tree, "Train_Set", "ghost", [0])
    write_labels(tree, "Train_Set", "bad", [0, 12])
    write_images(tree, "bad", [1, 2])
    write_images(tree, "pool1", [1, 2, 3], folder="unlabelled/cropped_aligned")
    report = check_dataset(tree)
    train, validation = report.splits
    assert (train.videos, train.annotated_frames, train.frames_without_images) == (3, 9, 1)
    assert train.unannotated_lines == 2
    assert train.class_counts == [1, 1, 1, 2, 1, 1, 1, 1]
    assert validation.class_counts[5] == 2 and validation.unannotated_lines == 2
    assert not report.ok
    problems = report.all_problems()
    assert any("ghost.txt" in p and "no image folder" in p for p in problems)
    assert any("bad.txt:3" in p for p in problems)
    text = report.format()
    assert "Surprise" in text and "2 problem(s)" in text and "bad.txt:3" in text
    assert "unlabelled pool:" in text and "1 videos, 3 images" in text
    assert "without annotations" in text


def test_check_dataset_video_in_both_splits(tree):
    write_labels(tree, "Validation_Set", "video5_left", [1, 1, 1])
    report = check_dataset(tree)
    assert report.problems == ["1 video(s) annotated in both splits: video5_left"]
    assert report.splits[1].videos == 2 and report.splits[1].class_counts[1] == 3


def test_check_dataset_missing_parts(tmp_path):
    report = check_dataset(tmp_path)
    assert "cropped_aligned" in report.format() and not report.ok
    write_images(tmp_path, "v", [1])
    write_labels(tmp_path, "Train_Set", "v", [4])
    report = check_dataset(tmp_path)
    assert report.splits[0].class_counts[4] == 1
    assert any("Validation_Set" in p for p in report.splits[1].problems)
    assert "unlabelled pool: none" in report.format()
