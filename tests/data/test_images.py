"""load_rgb: every common image mode becomes (H, W, 3) uint8; bad files raise DataError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from fervid.data.images import decode_rgb, load_rgb
from fervid.errors import DataError


def test_rgb_jpeg_round_trip(tmp_path):
    pixels = np.zeros((12, 10, 3), dtype=np.uint8)
    pixels[:, :5] = (200, 30, 30)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    loaded = load_rgb(tmp_path / "a.png")
    assert loaded.dtype == np.uint8 and loaded.shape == (12, 10, 3)
    assert (loaded == pixels).all()


def test_grey_rgba_palette(tmp_path):
    Image.new("L", (4, 3), 77).save(tmp_path / "grey.png")
    Image.new("RGBA", (4, 3), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    Image.new("RGB", (4, 3), (0, 255, 0)).convert("P").save(tmp_path / "palette.png")
    assert (load_rgb(tmp_path / "grey.png") == 77).all()
    rgba = load_rgb(tmp_path / "rgba.png")
    assert rgba.shape == (3, 4, 3) and tuple(rgba[0, 0]) == (10, 20, 30)
    assert tuple(load_rgb(tmp_path / "palette.png")[1, 1]) == (0, 255, 0)


def test_sixteen_bit_grey_is_scaled(tmp_path):
    values = np.array([[0, 257 * 100], [65535, 32768]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    loaded = load_rgb(tmp_path / "deep.png")
    assert loaded.dtype == np.uint8 and loaded.shape == (2, 2, 3)
    assert loaded[:, :, 0].tolist() == [[0, 100], [255, 127]]  # scaled by 1/257, not 1/256
    assert (loaded[:, :, 0] == loaded[:, :, 2]).all()


def test_truncated_jpeg_raises(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG", quality=95)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(DataError, match="truncated") as caught:
        load_rgb(path)
    assert caught.value.path == str(path)
    assert decode_rgb(buffer.getvalue()).shape == (64, 64, 3)


def test_not_an_image_and_missing(tmp_path):
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(DataError, match="not an image") as caught:
        load_rgb(tmp_path / "notes.jpg")
    assert "notes.jpg" in str(caught.value)
    with pytest.raises(DataError, match="not found"):
        load_rgb(tmp_path / "nothing.jpg")
    with pytest.raises(DataError, match="archive.zip:face.jpg"):
        decode_rgb(b"\x00" * 10, name="archive.zip:face.jpg")


def test_draft_size_shrinks_jpeg(tmp_path):
    Image.new("RGB", (112, 112), (90, 90, 90)).save(tmp_path / "face.jpg")
    assert load_rgb(tmp_path / "face.jpg").shape == (112, 112, 3)
    small = load_rgb(tmp_path / "face.jpg", draft_size=28)
    assert small.shape == (28, 28, 3) and abs(int(small[5, 5, 0]) - 90) < 4
