"""Knobs of the synthetic expression-video dataset (see docs/synthetic.md).

The defaults are the default demo dataset: 32 train videos (36 annotated folders, about 15k
frames, 36 people), 10 validation videos (11 folders, about 5k frames, 11 people), an
unlabelled pool of 16 videos (about 8k frames, 17 people) and 3 raw scene videos, generated in
about a minute on two CPU cores. :func:`tiny_config` is a preset of a few hundred frames for
tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any

from fervid.errors import ConfigError
from fervid.runtime.typed import (
    Bounds,
    Fraction,
    NonNegative,
    NonNegativeInt,
    Positive,
    PositiveInt,
)

JpegQuality = Annotated[int, Bounds(1, 100)]


@dataclass
class SynthConfig:
    seed: NonNegativeInt = 0
    """Seed of everything; the same seed gives byte-identical files."""
    train_identities: PositiveInt = 36
    """People in the labelled train split (no person is in two splits)."""
    validation_identities: PositiveInt = 11
    """People in the validation split."""
    unlabelled_identities: PositiveInt = 17
    """People in the unlabelled pool (nobody from the labelled splits)."""
    train_videos: PositiveInt = 32
    """Source videos of the train split; a two-person video gives two annotated folders."""
    validation_videos: PositiveInt = 10
    """Source videos of the validation split."""
    unlabelled_videos: PositiveInt = 16
    """Source videos of the unlabelled pool."""
    two_person_fraction: Fraction = 0.12
    """Share of videos with two people, written as ``<video>_left`` and ``<video>_right``."""
    frames_min: Annotated[int, Bounds(10)] = 260
    """Shortest video, in frames."""
    frames_max: PositiveInt = 640
    """Longest video, in frames."""
    class_frequencies: list[NonNegative] = field(
        default_factory=lambda: [0.30, 0.04, 0.03, 0.03, 0.17, 0.12, 0.06, 0.25]
    )
    """Target share of frames per class (Neutral..Other), roughly Aff-Wild2's train split."""
    min_events_per_class: NonNegativeInt = 3
    """Every class gets at least this many events in each split (when it has enough events)."""
    neutral_frames: PositiveInt = 60
    """Mean length of a neutral stretch between events."""
    apex_frames: PositiveInt = 45
    """Mean length of an event's apex (the held expression)."""
    ramp_frames: PositiveInt = 14
    """Mean length of an event's onset and of its offset; labelled with the event's class."""
    weak_event_fraction: Fraction = 0.2
    """Share of events whose peak intensity is weak (0.25-0.5 instead of 0.6-1)."""
    au_noise: NonNegative = 0.12
    """Standard deviation of per-frame white noise added to every action unit."""
    au_drift: NonNegative = 0.05
    """Standard deviation of slow (about 1 s) random drift of every action unit."""
    identity_idiosyncrasy: NonNegative = 0.15
    """Spread (log-normal sigma) of each person's gain on each action unit."""
    resting_face: NonNegative = 0.1
    """Largest resting activation of an AU in a person's neutral face (e.g. low brows)."""
    other_max_similarity: Fraction = 0.5
    """Mixtures labelled Other must have cosine similarity below this to every prototype."""
    talking_fraction: Fraction = 0.25
    """Share of time with talking-like mouth movement, independent of the label."""
    blink_rate: NonNegative = 0.3
    """Blinks per second."""
    unannotated_fraction: Fraction = 0.06
    """Share of frames labelled -1, in runs at the ends and inside every labelled video."""
    missing_image_fraction: Fraction = 0.015
    """Share of frames with a label but no image (face detector misses, gaps of 1-6 frames)."""
    pose_yaw: NonNegative = 7.0
    """Standard deviation of the head's yaw, degrees (varies smoothly over time)."""
    pose_pitch: NonNegative = 5.0
    """Standard deviation of the head's pitch, degrees."""
    pose_roll: NonNegative = 3.0
    """Standard deviation of the head's roll before alignment, degrees."""
    align_jitter: NonNegative = 1.0
    """Standard deviation of the crop alignment error, pixels (scale and angle follow)."""
    lighting: NonNegative = 0.2
    """Strength of directional lighting and of per-video brightness and colour casts."""
    noise: NonNegative = 2.5
    """Mean standard deviation of sensor noise, grey levels."""
    blur_fraction: Fraction = 0.08
    """Share of frames blurred (motion or focus blur, in runs)."""
    occlusion_fraction: Fraction = 0.04
    """Share of frames with a hand or an object over part of the face (in runs)."""
    jpeg_quality_min: JpegQuality = 60
    """Lowest JPEG quality of a video (each video draws its quality in [min, max])."""
    jpeg_quality_max: JpegQuality = 95
    """Highest JPEG quality of a video."""
    glasses_probability: Fraction = 0.1
    """Share of people with glasses."""
    beard_probability: Fraction = 0.1
    """Share of people with a beard or moustache."""
    scene_videos: NonNegativeInt = 3
    """Raw scene videos (mp4 with a ground-truth CSV) for detection, alignment and tracking."""
    scene_seconds: Positive = 8.0
    """Length of each scene video, seconds."""
    scene_fps: PositiveInt = 25
    """Frame rate of the scene videos."""
    supersample: PositiveInt = 2
    """Faces are drawn at this multiple of the output size and downsampled (anti-aliasing)."""
    workers: PositiveInt = 2
    """Processes that render videos; does not change the output."""

    def __post_init__(self):
        for low, high in (("frames_min", "frames_max"), ("jpeg_quality_min", "jpeg_quality_max")):
            if getattr(self, low) > getattr(self, high):
                raise ConfigError(
                    f"synth.{low}: must not exceed synth.{high} ({getattr(self, high)}), "
                    f"got {getattr(self, low)}"
                )
        if len(self.class_frequencies) != 8 or sum(self.class_frequencies[1:]) <= 0:
            raise ConfigError(
                "synth.class_frequencies: must be 8 non-negative numbers, one per ABAW class, not "
                f"all of the expression classes (all but Neutral) 0; got {self.class_frequencies}"
            )

    def identity_key(self) -> dict[str, Any]:
        """The fields that determine the output (everything but ``workers``)."""
        values = dataclasses.asdict(self)
        values.pop("workers")
        return values


def tiny_config(seed: int = 0, **overrides: Any) -> SynthConfig:
    """A dataset of a few hundred frames, generated in a few seconds (for tests and smoke runs)."""
    values: dict[str, Any] = {
        "seed": seed,
        "train_identities": 3,
        "validation_identities": 2,
        "unlabelled_identities": 2,
        "train_videos": 3,
        "validation_videos": 2,
        "unlabelled_videos": 1,
        "two_person_fraction": 0.34,
        "frames_min": 45,
        "frames_max": 65,
        "min_events_per_class": 1,
        "neutral_frames": 12,
        "apex_frames": 8,
        "ramp_frames": 4,
        "missing_image_fraction": 0.03,
        "scene_videos": 1,
        "scene_seconds": 1.2,
        "workers": 1,
    }
    values.update(overrides)
    return SynthConfig(**values)
