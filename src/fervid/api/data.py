"""The data steps of the Python API: the synthetic dataset, a dataset check, face crops of
videos (``fervid data synth | check | crop``)."""

from __future__ import annotations

from pathlib import Path

from fervid.config import Config
from fervid.errors import DataError


def synth(out: str | Path, config: Config | None = None, progress: bool = True) -> dict:
    """Write the synthetic Aff-Wild2-layout dataset to ``out`` (skipped if already there)."""
    from fervid.data.synth import generate

    config = config or Config()
    return generate(out, config.synth, progress=progress)


def check(root: str | Path, annotations: str | Path | None = None):
    """A report on an Aff-Wild2-layout dataset (``.format()`` for text, ``.ok``): counts per
    class and split, frames without images, problems."""
    from fervid.data.check import check_dataset

    return check_dataset(root, annotations)


def crop(
    videos: list[str | Path],
    out: str | Path,
    every: int = 1,
    detector: str = "retinaface",
    max_side: int | None = 320,
) -> list:
    """Detected, tracked and aligned 112x112 face crops of each video in the Aff-Wild2 layout
    (``out/cropped_aligned/<video>[_<track>]/NNNNN.jpg``)."""
    from fervid.video.crops import write_crops
    from fervid.video.decode import expand_inputs
    from fervid.video.detect import build_detector

    paths = expand_inputs(videos)
    stems = [p.stem for p in paths]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        raise DataError(
            out, f"several inputs are named {clash[0]!r}; their crop folders would collide"
        )
    check_output_folder(out)
    built = build_detector(detector, max_side=max_side)
    return [write_crops(path, out, built, every=every) for path in paths]


def check_output_folder(out: str | Path) -> Path:
    """Create ``out`` if needed and make sure files can be written there."""
    import tempfile

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".fervid-write-test-"):
            pass
    except OSError as error:
        raise DataError(out, f"output folder is not writable ({error.strerror or error})") from None
    return out
