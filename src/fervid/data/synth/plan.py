"""The plan of a dataset: which videos exist, who is in them, and what happens in every frame.

Planning is cheap (no pixels) and runs in the main process; rendering then needs nothing but a
video's plan, so any number of worker processes produce the same bytes. Every random stream is
seeded from (seed, purpose, index) with numpy's ``SeedSequence``:

- person ``i``: ``[seed, 1, i]``
- track ``p`` of video ``v``: ``[seed, 2, v, p]`` (+ ``[0]`` timeline, ``[1]`` AUs, ``[2]``
  nuisances, ``[3]`` noise), the video's background ``[seed, 2, v, 99]``
- names, splits and two-person videos: ``[seed, 3]``; scene ``s``: ``[seed, 4, s]``
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fervid.data.synth.config import SynthConfig
from fervid.data.synth.identity import Identity, make_identity
from fervid.data.synth.timeline import (
    Event,
    annotation_mask,
    event_labels,
    missing_image_mask,
    sample_events,
    track_labels,
)
from fervid.labels import NUM_CLASSES
from fervid.runtime.typed import check_fields

SPLITS = ("train", "validation", "unlabelled")
SCENE_LAYOUTS = (("single", 320, 240, 1), ("moving", 640, 360, 1), ("pair", 640, 360, 2))


@dataclass
class TrackPlan:
    """One face track: one ``cropped_aligned`` folder and its annotation file."""

    folder: str
    identity: int
    seed: list[int]
    events: list[Event]
    annotated: np.ndarray
    """bool per frame: False where the annotation says -1."""
    has_image: np.ndarray
    """bool per frame: False where the face detector "missed" (no JPEG is written)."""

    @property
    def frames(self) -> int:
        return len(self.annotated)

    @property
    def truth(self) -> np.ndarray:
        """The true class of every frame (no -1)."""
        return event_labels(self.events, self.frames)

    @property
    def labels(self) -> np.ndarray:
        """The annotation: the true class, or -1 where not annotated."""
        return track_labels(self.events, self.annotated)


@dataclass
class VideoPlan:
    index: int
    name: str
    split: str
    tracks: list[TrackPlan]
    """One track, or two (``<name>_left``, ``<name>_right``)."""


@dataclass
class ScenePlan:
    index: int
    name: str
    layout: str
    width: int
    height: int
    fps: int
    frames: int
    identities: list[int]
    events: list[list[Event]]
    """Per face, its expression events."""


def person(config: SynthConfig, identity: int) -> Identity:
    """The person with global index ``identity`` in the dataset of ``config``."""
    return make_identity(
        [config.seed, 1, identity],
        glasses_probability=config.glasses_probability,
        beard_probability=config.beard_probability,
        idiosyncrasy=config.identity_idiosyncrasy,
        resting_face=config.resting_face,
    )


def make_plan(config: SynthConfig) -> tuple[list[VideoPlan], list[ScenePlan]]:
    """Every video of every split and every scene, with who is in it and its timeline (the
    caller, :func:`fervid.data.synth.writer.generate`, has checked ``config``)."""
    rng = np.random.default_rng([config.seed, 3])
    counts = {
        "train": config.train_videos,
        "validation": config.validation_videos,
        "unlabelled": config.unlabelled_videos,
    }
    people = {
        "train": config.train_identities,
        "validation": config.validation_identities,
        "unlabelled": config.unlabelled_identities,
    }
    numbers = rng.permutation(sum(counts.values())) + 1
    videos: list[VideoPlan] = []
    first_identity = 0
    for split in SPLITS:
        identities = first_identity + rng.permutation(people[split])
        first_identity += people[split]
        pairs = _pair_count(config.two_person_fraction, counts[split], people[split])
        paired = set(rng.choice(counts[split], size=pairs, replace=False).tolist())
        slot = 0
        split_videos = []
        for k in range(counts[split]):
            index = len(videos) + len(split_videos)
            name = f"synth_{numbers[index]:03d}"
            frames = int(rng.integers(config.frames_min, config.frames_max + 1))
            sides = ["left", "right"] if k in paired else [None]
            tracks = []
            for position, side in enumerate(sides):
                folder = name if side is None else f"{name}_{side}"
                identity = int(identities[slot % len(identities)])
                slot += 1
                tracks.append(
                    _track(
                        config, folder, identity, [config.seed, 2, index, position], frames, split
                    )
                )
            split_videos.append(VideoPlan(index, name, split, tracks))
        _deal_classes([t for v in split_videos for t in v.tracks], config, rng)
        videos.extend(split_videos)
    scenes = [_scene(config, s, first_identity + 2 * s) for s in range(config.scene_videos)]
    return videos, scenes


def check_config(config: SynthConfig) -> None:
    """Raise :class:`ConfigError` naming the first field of ``config`` that cannot work: the
    bounds on SynthConfig's fields and its own cross-field checks, for a config built in Python
    (one read from YAML or overrides was checked when it was built)."""
    check_fields(config, "synth")


def _pair_count(fraction: float, videos: int, identities: int) -> int:
    if fraction <= 0 or identities < 2:
        return 0
    return min(videos, max(1, round(fraction * videos)))


def _track(
    config: SynthConfig, folder: str, identity: int, seed: list[int], frames: int, split: str
) -> TrackPlan:
    rng = np.random.default_rng(seed + [0])
    events = sample_events(config, rng, frames)
    if split == "unlabelled":
        annotated = np.ones(frames, dtype=bool)
    else:
        annotated = annotation_mask(config, rng, frames)
    has_image = ~missing_image_mask(config, rng, frames)
    return TrackPlan(folder, identity, seed, events, annotated, has_image)


def _deal_classes(tracks: list[TrackPlan], config: SynthConfig, rng: np.random.Generator) -> None:
    """Relabel the expression events of a split from a shuffled deck with the target class shares.

    Each class, rare ones included, is thus spread over many videos and people (a model cannot
    learn "this person means Fear"), and has at least ``min_events_per_class`` events when the
    split has enough events.
    """
    events = [e for t in tracks for e in t.events if e.label > 0 and e.start < t.frames]
    if not events:
        return
    shares = np.asarray(config.class_frequencies[1:], dtype=np.float64)
    shares = (
        shares / shares.sum()
        if shares.sum() > 0
        else np.full(NUM_CLASSES - 1, 1.0 / (NUM_CLASSES - 1))
    )
    wanted = shares * len(events)
    counts = np.floor(wanted).astype(int)
    floor = (
        config.min_events_per_class
        if len(events) >= (NUM_CLASSES - 1) * config.min_events_per_class
        else 0
    )
    counts = np.maximum(counts, floor)
    while counts.sum() > len(events):
        counts[np.argmax(counts)] -= 1
    while counts.sum() < len(events):
        counts[np.argmax(wanted - counts)] += 1
    deck = rng.permutation(np.repeat(np.arange(1, NUM_CLASSES), counts))
    for event, label in zip(events, deck, strict=True):
        event.label = int(label)


def _scene(config: SynthConfig, index: int, first_identity: int) -> ScenePlan:
    rng = np.random.default_rng([config.seed, 4, index])
    layout, width, height, faces = SCENE_LAYOUTS[index % len(SCENE_LAYOUTS)]
    frames = max(1, int(round(config.scene_seconds * config.scene_fps)))
    events = [sample_events(config, rng, frames) for _ in range(faces)]
    identities = [first_identity + k for k in range(faces)]
    return ScenePlan(
        index,
        f"scene_{index + 1:02d}_{layout}",
        layout,
        width,
        height,
        config.scene_fps,
        frames,
        identities,
        events,
    )
