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
from typing import Any


@dataclass
class SynthConfig:
    seed: int = 0
    """Seed of everything; the same seed gives byte-identical files."""
    train_identities: int = 36
    """People in the labelled train split (no person is in two splits)."""
    validation_identities: int = 11
    """People in the validation split."""
    unlabelled_identities: int = 17
    """People in the unlabelled pool (nobody from the labelled splits)."""
    train_videos: int = 32
    """Source videos of the train split; a two-person video gives two annotated folders."""
    validation_videos: int = 10
    """Source videos of the validation split."""
    unlabelled_videos: int = 16
    """Source videos of the unlabelled pool."""
    two_person_fraction: float = 0.12
    """Share of videos with two people, written as ``<video>_left`` and ``<video>_right``."""
    frames_min: int = 260
    """Shortest video, in frames."""
    frames_max: int = 640
    """Longest video, in frames."""
    class_frequencies: list[float] = field(
        default_factory=lambda: [0.30, 0.04, 0.03, 0.03, 0.17, 0.12, 0.06, 0.25]
    )
    """Target share of frames per class (Neutral..Other), roughly Aff-Wild2's train split."""
    min_events_per_class: int = 3
    """Every class gets at least this many events in each split (when it has enough events)."""
    neutral_frames: int = 60
    """Mean length of a neutral stretch between events."""
    apex_frames: int = 45
    """Mean length of an event's apex (the held expression)."""
    ramp_frames: int = 14
    """Mean length of an event's onset and of its offset; labelled with the event's class."""
    weak_event_fraction: float = 0.2
    """Share of events whose peak intensity is weak (0.25-0.5 instead of 0.6-1)."""
    au_noise: float = 0.12
    """Standard deviation of per-frame white noise added to every action unit."""
    au_drift: float = 0.05
    """Standard deviation of slow (about 1 s) random drift of every action unit."""
    identity_idiosyncrasy: float = 0.15
    """Spread (log-normal sigma) of each person's gain on each action unit."""
    resting_face: float = 0.1
    """Largest resting activation of an AU in a person's neutral face (e.g. low brows)."""
    other_max_similarity: float = 0.5
    """Mixtures labelled Other must have cosine similarity below this to every prototype."""
    talking_fraction: float = 0.25
    """Share of time with talking-like mouth movement, independent of the label."""
    blink_rate: float = 0.3
    """Blinks per second."""
    unannotated_fraction: float = 0.06
    """Share of frames labelled -1, in runs at the ends and inside every labelled video."""
    missing_image_fraction: float = 0.015
    """Share of frames with a label but no image (face detector misses, gaps of 1-6 frames)."""
    pose_yaw: float = 7.0
    """Standard deviation of the head's yaw, degrees (varies smoothly over time)."""
    pose_pitch: float = 5.0
    """Standard deviation of the head's pitch, degrees."""
    pose_roll: float = 3.0
    """Standard deviation of the head's roll before alignment, degrees."""
    align_jitter: float = 1.0
    """Standard deviation of the crop alignment error, pixels (scale and angle follow)."""
    lighting: float = 0.2
    """Strength of directional lighting and of per-video brightness and colour casts."""
    noise: float = 2.5
    """Mean standard deviation of sensor noise, grey levels."""
    blur_fraction: float = 0.08
    """Share of frames blurred (motion or focus blur, in runs)."""
    occlusion_fraction: float = 0.04
    """Share of frames with a hand or an object over part of the face (in runs)."""
    jpeg_quality_min: int = 60
    """Lowest JPEG quality of a video (each video draws its quality in [min, max])."""
    jpeg_quality_max: int = 95
    """Highest JPEG quality of a video."""
    glasses_probability: float = 0.1
    """Share of people with glasses."""
    beard_probability: float = 0.1
    """Share of people with a beard or moustache."""
    scene_videos: int = 3
    """Raw scene videos (mp4 with a ground-truth CSV) for detection, alignment and tracking."""
    scene_seconds: float = 8.0
    """Length of each scene video, seconds."""
    scene_fps: int = 25
    """Frame rate of the scene videos."""
    supersample: int = 2
    """Faces are drawn at this multiple of the output size and downsampled (anti-aliasing)."""
    workers: int = 2
    """Processes that render videos; does not change the output."""

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
