"""Decode one image file into an RGB uint8 array, or fail with a DataError naming the file.

Truncated files raise instead of decoding to grey: Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES``
must stay ``False`` (its default), and nothing in fervid sets it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from fervid.errors import DataError

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_rgb(path: str | Path, draft_size: int | None = None) -> np.ndarray:
    """The image at ``path`` as an (H, W, 3) uint8 array.

    Grey, grey+alpha, palette, RGBA, CMYK and 16-bit images are converted (alpha is dropped;
    16-bit values are scaled to 8 bits). ``draft_size`` lets the JPEG decoder shrink the image by
    a power of two while keeping both sides >= ``draft_size``, which is several times faster
    when a small network input is wanted; the caller still resizes to the exact size."""
    return _decode(path, path, draft_size)


def decode_rgb(
    data: bytes, name: str | Path = "<bytes>", draft_size: int | None = None
) -> np.ndarray:
    """Like ``load_rgb`` for encoded bytes already in memory (e.g. read from an archive);
    ``name`` is what a DataError reports."""
    return _decode(io.BytesIO(data), name, draft_size)


def _decode(
    source: str | Path | io.BytesIO, name: str | Path, draft_size: int | None
) -> np.ndarray:
    try:
        with Image.open(source) as image:
            if draft_size is not None and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image.load()
            return to_rgb_array(image)
    except FileNotFoundError as error:
        raise DataError(name, "image file not found") from error
    except UnidentifiedImageError as error:
        raise DataError(name, "not an image (unrecognised or unsupported format)") from error
    except Image.DecompressionBombError as error:
        raise DataError(name, f"image too large ({error})") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise DataError(name, f"unreadable image, truncated or corrupt ({error})") from error


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert a loaded PIL image of any common mode to an (H, W, 3) uint8 array."""
    if image.mode == "RGB":
        return np.array(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        return _grey_to_rgb((values // 257).astype(np.uint8))
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        if values.size and np.nanmax(values) <= 1.0:
            values = values * 255.0
        return _grey_to_rgb(np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    return np.array(image.convert("RGB"))


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)
