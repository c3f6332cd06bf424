"""What ``fervid predict`` can be asked: :class:`PredictOptions`, one field per choice.

Each field's annotation is its rule (a bound, a set of names), checked when the options are
built, whether from Python or from the command line: ``fervid predict``'s flags are made from
these fields (fervid/cli/predict_options.py), the annotation giving the check and the field's
docstring the ``--help`` text, so the two cannot say different things. This module imports
nothing heavy: the command line reads it before it knows what it will run.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, get_type_hints

from fervid.errors import ConfigError
from fervid.runtime.typed import NONE_WORD, Bounds, DeviceName, Fraction, PositiveInt, check_value
from fervid.video.detect import (
    DEFAULT_DETECTOR,
    DEFAULT_MAX_SIDE,
    DETECTORS,
    MIN_MAX_SIDE,
    load_backends,
)


@dataclass(frozen=True)
class RegistryName:
    """A name registered in a registry (``names`` lists them), checked like a bound."""

    names: Callable[[], list[str]]

    def check(self, value: str, path: str) -> None:
        if value not in self.names():
            raise ConfigError(f"{path}: must be {self.describe()}, got {value!r}")

    def describe(self) -> str:
        return "one of " + ", ".join(self.names())


def detector_names() -> list[str]:
    """The registered face detectors (the backends register themselves on import, cheaply)."""
    load_backends()
    return DETECTORS.names()


@dataclass
class PredictOptions:
    """How ``fervid predict`` reads its inputs; each value checked when built (ConfigError)."""

    every: PositiveInt = 1
    """Process every N-th frame. Each track still gets one row per source frame: the Temporal
    Encoder predicts the frames between from the processed ones around them (it sees them as
    masked frames of the track's real frame axis); for frame-only models they are
    interpolated."""
    detect_every: PositiveInt = 1
    """Run the face detector on every k-th processed frame, reusing its boxes in between."""
    detector: Annotated[str, RegistryName(detector_names)] = DEFAULT_DETECTOR
    """The face detector; docs/video.md compares them."""
    max_side: Annotated[int, Bounds(MIN_MAX_SIDE)] | None = field(
        default=DEFAULT_MAX_SIDE, metadata={NONE_WORD: "full"}
    )
    """Longest side the detector sees: raise it for small faces; full (None in Python) gives
    it the frame as it is."""
    min_score: Fraction | None = None
    """Keep faces the detector scores at least this (None: the detector's own default)."""
    batch_size: PositiveInt = 64
    """Faces encoded together."""
    smoothing: PositiveInt = 15
    """Moving-average window, in source frames, for models without a temporal encoder (only
    frames with a face count, whatever the frame step); 1 = off."""
    min_track_frames: PositiveInt = 1
    """Drop tracks with fewer detections than this."""
    threads: PositiveInt = 1
    """Threads of the detector backend."""
    flip: bool = False
    """Flip test-time augmentation: each face's probabilities and features are the mean over
    the face and its mirror image (a second encoder pass per face)."""
    live: bool = False
    """Live input: hand on each face's row as soon as its frame is encoded (the command writes
    it to stdout as one JSON line, Python gets it through on_row), with the frame model's
    probabilities; drop frames that arrive while the pipeline is behind (counted in the
    summary); stop cleanly on Ctrl-C. The tables written at the end use the temporal model."""
    device: Annotated[str, DeviceName()] = "auto"
    """Where faces are encoded, in batches: auto is the GPU when there is one (under torchrun,
    the process's own), else the CPU; the face detector and ONNX models run on the CPU."""

    def __post_init__(self):
        hints = field_rules(type(self))
        for name, hint in hints.items():
            setattr(self, name, check_value(hint, getattr(self, name), f"PredictOptions.{name}"))

    def run_key(self) -> dict:
        """The options an input's outputs depend on (not where they were computed)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "device"}


@functools.cache
def field_rules(cls: type) -> dict:
    """Field name -> annotation (with its bounds and choices) of dataclass ``cls``."""
    hints = get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}
