"""Class-per-folder image sources: name mapping, numeric folders, dropped classes, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image

from fervid.data.folders import parse_source, read_class_folders, read_labelled_sources
from fervid.errors import DataError
from fervid.labels import CLASS_NAMES, FOLDER_NAME_TO_CLASS, NUMERIC_FOLDERS
from tests.helpers import REPO


def add_images(folder: Path, count: int, suffix: str = ".jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (6, 6)).save(folder / f"img{index}{suffix}")


def labels_by_folder(table) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for row in range(len(table)):
        found.setdefault(table.video_name(row).split("/")[0], set()).add(int(table.label[row]))
    return found


def test_named_folders_map_case_insensitively(tmp_path):
    add_images(tmp_path / "Happy", 2)
    add_images(tmp_path / "angry", 1, ".png")
    add_images(tmp_path / "NEUTRAL" / "nested", 1)
    (tmp_path / "angry" / "readme.txt").write_text("not an image")
    table = read_class_folders(tmp_path)
    assert labels_by_folder(table) == {"Happy": {4}, "angry": {1}, "NEUTRAL": {0}}
    assert len(table) == 4 and (table.frame == 0).all() and table.has_image.all()
    assert table.videos[0] == "Happy/img0.jpg"
    assert all(Path(table.image_path(row)).is_file() for row in range(len(table)))
    assert "NEUTRAL/nested/img0.jpg" in table.videos


def test_numeric_folders_need_a_dataset(tmp_path):
    add_images(tmp_path / "1", 1)
    add_images(tmp_path / "6", 1)
    with pytest.raises(DataError, match="affectnet, rafdb, fer2013, expw"):
        read_class_folders(tmp_path)
    assert labels_by_folder(read_class_folders(tmp_path, "affectnet")) == {"1": {4}, "6": {1}}
    assert labels_by_folder(read_class_folders(tmp_path, "RAF-DB")) == {"1": {6}, "6": {1}}
    with pytest.raises(DataError, match="unknown dataset 'ckplus'"):
        read_class_folders(tmp_path, "ckplus")


def test_numeric_folder_outside_the_dataset(tmp_path):
    add_images(tmp_path / "0", 1)
    with pytest.raises(DataError, match="no class '0' in dataset 'rafdb'") as caught:
        read_class_folders(tmp_path, "rafdb")
    assert caught.value.path.endswith("/0")


def test_contempt_is_dropped_with_a_warning(tmp_path, caplog):
    add_images(tmp_path / "contempt", 3)
    add_images(tmp_path / "sad", 2)
    with caplog.at_level(logging.WARNING, logger="fervid"):
        table = read_class_folders(tmp_path)
    assert labels_by_folder(table) == {"sad": {5}}
    assert "dropped 3 images" in caplog.text and "contempt" in caplog.text
    add_images(tmp_path / "7", 1)
    (tmp_path / "sad").rename(tmp_path / "2")
    assert labels_by_folder(read_class_folders(tmp_path, "affectnet")) == {"2": {5}}


def test_only_dropped_classes_is_an_error(tmp_path):
    add_images(tmp_path / "Contempt", 1)
    with pytest.raises(DataError, match="every class folder was dropped"):
        read_class_folders(tmp_path)


def test_docs_mapping_table_matches_labels():
    docs = REPO / "docs" / "data.md"
    if not docs.exists():
        pytest.skip("docs not present")
    rows = {
        line.split("|")[1].strip(): line
        for line in docs.read_text().splitlines()
        if line.startswith("| ") and line.count("|") == 8
    }
    for name, label in FOLDER_NAME_TO_CLASS.items():
        key = "(dropped)" if label is None else CLASS_NAMES[label]
        assert f"`{name}`" in rows[key].split("|")[3], name
    for column, (dataset, numbers) in enumerate(NUMERIC_FOLDERS.items(), start=4):
        for number, label in numbers.items():
            key = "(dropped)" if label is None else CLASS_NAMES[label]
            assert f"`{number}`" in rows[key].split("|")[column], (dataset, number)


def test_bad_layouts(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_class_folders(tmp_path / "missing")
    with pytest.raises(DataError, match="no class folders"):
        read_class_folders(tmp_path)
    add_images(tmp_path / "happy", 1)
    (tmp_path / "fear").mkdir()
    with pytest.raises(DataError, match="class folder has no images") as caught:
        read_class_folders(tmp_path)
    assert caught.value.path.endswith("fear")
    (tmp_path / "fear").rmdir()
    add_images(tmp_path / "bored", 1)
    with pytest.raises(DataError, match="unknown class folder 'bored'.*surprise"):
        read_class_folders(tmp_path)


def test_combining_sources(tmp_path):
    add_images(tmp_path / "a" / "happy", 2)
    add_images(tmp_path / "b{x}" / "3", 1)  # braces in a path survive str.format
    table = read_labelled_sources([str(tmp_path / "a"), f"{tmp_path / 'b{x}'}:fer2013"])
    assert len(table) == 3 and table.label.tolist() == [4, 4, 4]
    assert table.video.tolist() == [0, 1, 2]
    assert Path(table.image_path(2)).is_file()
    assert len(read_labelled_sources([])) == 0


def test_parse_source():
    assert parse_source("/data/affectnet:affectnet") == ("/data/affectnet", "affectnet")
    assert parse_source("/data/raf") == ("/data/raf", None)
    assert parse_source("relative/dir") == ("relative/dir", None)
