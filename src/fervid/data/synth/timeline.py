"""What happens over time in one face track: expression events, labels and AU intensities.

A track is a sequence of segments: neutral stretches and expression events. An event has an
onset (intensity ramps up from 0), an apex (held near a random peak) and an offset (back to 0);
every frame of the event, ramps included, carries the event's label, as Aff-Wild2 annotators
label whole episodes. Low-intensity ramp frames are therefore ambiguous on their own while
their neighbours reveal the class. Talking, blinks, slow drift and per-frame noise are added on
top of the events, independently of the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fervid.data.synth.config import SynthConfig
from fervid.data.synth.expressions import AU, NUM_AUS, event_pattern
from fervid.labels import IGNORE_LABEL, NUM_CLASSES


@dataclass
class Event:
    """One segment of a track: a neutral stretch (label 0) or an expression event."""

    label: int
    start: int
    """First frame, 0-based."""
    onset: int
    apex: int
    offset: int
    peak: float
    """Intensity at the apex, 0..1 (0 for neutral stretches)."""

    @property
    def end(self) -> int:
        """One past the last frame."""
        return self.start + self.onset + self.apex + self.offset


def segment_probabilities(config: SynthConfig) -> np.ndarray:
    """Probability of each class per segment, so that frame shares match ``class_frequencies``."""
    frequencies = np.asarray(config.class_frequencies, dtype=np.float64)
    lengths = np.full(NUM_CLASSES, 2 * config.ramp_frames + config.apex_frames, dtype=np.float64)
    lengths[0] = config.neutral_frames
    weights = frequencies / lengths
    return weights / weights.sum()


def sample_events(config: SynthConfig, rng: np.random.Generator, num_frames: int) -> list[Event]:
    """Segments covering ``num_frames`` frames (the last one may run past the end)."""
    probabilities = segment_probabilities(config)
    events: list[Event] = []
    start = 0
    while start < num_frames:
        label = int(rng.choice(NUM_CLASSES, p=probabilities))
        if label == 0:
            length = _around(rng, config.neutral_frames, 0.5, 1.5)
            events.append(Event(0, start, 0, length, 0, 0.0))
        else:
            weak = rng.random() < config.weak_event_fraction
            peak = rng.uniform(0.25, 0.5) if weak else rng.uniform(0.6, 1.0)
            onset = _around(rng, config.ramp_frames, 0.4, 1.6)
            apex = _around(rng, config.apex_frames, 0.3, 1.7)
            offset = _around(rng, config.ramp_frames, 0.4, 1.6)
            events.append(Event(label, start, onset, apex, offset, float(peak)))
        start = events[-1].end
    return events


def _around(rng: np.random.Generator, mean: int, low: float, high: float) -> int:
    return int(rng.integers(max(2, round(mean * low)), max(3, round(mean * high)) + 1))


def event_labels(events: list[Event], num_frames: int) -> np.ndarray:
    """Per-frame label (int8) of every frame: the label of the segment covering it."""
    labels = np.zeros(num_frames, dtype=np.int8)
    for event in events:
        labels[event.start : min(event.end, num_frames)] = event.label
    return labels


def envelope(event: Event) -> np.ndarray:
    """Intensity of an event over its frames: smooth ramp up, held apex, smooth ramp down."""
    up = _smoothstep(np.arange(1, event.onset + 1) / (event.onset + 1))
    down = _smoothstep(np.arange(event.offset, 0, -1) / (event.offset + 1))
    return np.concatenate([up, np.ones(event.apex), down]) * event.peak


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3 - 2 * x)


def smooth_noise(rng: np.random.Generator, num_frames: int, dims: int, frames: float) -> np.ndarray:
    """Gaussian noise low-passed over about ``frames`` frames, unit standard deviation."""
    width = max(1, int(frames))
    raw = rng.standard_normal((num_frames + 4 * width, dims))
    kernel = np.exp(-0.5 * (np.arange(-2 * width, 2 * width + 1) / (width / 2)) ** 2)
    kernel /= np.sqrt((kernel**2).sum())
    smooth = np.stack([np.convolve(raw[:, d], kernel, mode="valid") for d in range(dims)], 1)
    return smooth[:num_frames].astype(np.float32)


def random_runs(
    rng: np.random.Generator,
    num_frames: int,
    fraction: float,
    mean_length: float,
    min_length: int = 1,
) -> np.ndarray:
    """Boolean mask with runs of about ``mean_length`` covering about ``fraction`` of the frames."""
    mask = np.zeros(num_frames, dtype=bool)
    if fraction <= 0 or num_frames == 0:
        return mask
    count = rng.poisson(fraction * num_frames / mean_length)
    for _ in range(count):
        length = max(min_length, int(rng.exponential(mean_length)))
        start = int(rng.integers(0, max(1, num_frames - length)))
        mask[start : start + length] = True
    return mask


def annotation_mask(config: SynthConfig, rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """True where a frame is annotated. Unannotated runs sit at one or both ends and inside."""
    annotated = np.ones(num_frames, dtype=bool)
    total = int(round(config.unannotated_fraction * num_frames))
    if total <= 0:
        return annotated
    at_start, at_end = rng.random() < 0.6, rng.random() < 0.6
    if not (at_start or at_end):
        at_start = True
    inner = 1 + int(rng.integers(0, 2))
    shares = rng.dirichlet(np.ones(inner + at_start + at_end))
    lengths = np.maximum(1, np.round(shares * total).astype(int))
    position = 0
    if at_start:
        annotated[: lengths[position]] = False
        position += 1
    if at_end:
        annotated[num_frames - lengths[position] :] = False
        position += 1
    for length in lengths[position:]:
        start = int(
            rng.integers(num_frames // 8, max(num_frames // 8 + 1, num_frames * 7 // 8 - length))
        )
        annotated[start : start + length] = False
    return annotated


def missing_image_mask(
    config: SynthConfig, rng: np.random.Generator, num_frames: int
) -> np.ndarray:
    """True where the face detector "missed": gaps of 1-6 frames, at least one per track."""
    missing = np.zeros(num_frames, dtype=bool)
    if config.missing_image_fraction <= 0:
        return missing
    count = max(1, rng.poisson(config.missing_image_fraction * num_frames / 3.0))
    for _ in range(count):
        length = int(rng.integers(1, 7))
        start = int(rng.integers(1, max(2, num_frames - length - 1)))
        missing[start : start + length] = True
    return missing


def au_trace(
    config: SynthConfig,
    events: list[Event],
    num_frames: int,
    gain: np.ndarray,
    resting: np.ndarray,
    seed: list[int],
    fps: float = 30.0,
) -> np.ndarray:
    """Per-frame AU intensities (num_frames x NUM_AUS, float32, 0..1) of a track.

    ``gain`` and ``resting`` are the person's per-AU gain and resting activation; ``seed`` seeds
    the event patterns (one stream per event) and the noise.
    """
    rng = np.random.default_rng(seed + [1])
    aus = np.zeros((num_frames, NUM_AUS), dtype=np.float32)
    for index, event in enumerate(events):
        if event.label == 0 or event.start >= num_frames:
            continue
        pattern = event_pattern(
            event.label,
            np.random.default_rng(seed + [1000 + index]),
            other_max_similarity=config.other_max_similarity,
        )
        stop = min(event.end, num_frames)
        wobble = 1.0 + 0.08 * smooth_noise(rng, event.end - event.start, 1, fps / 3)[:, 0]
        intensity = (envelope(event) * wobble)[: stop - event.start]
        aus[event.start : stop] += intensity[:, None] * pattern[None, :]
    aus *= gain[None, :]
    aus += resting[None, :]
    aus += config.au_drift * np.maximum(smooth_noise(rng, num_frames, NUM_AUS, fps), 0)
    aus += config.au_noise * rng.standard_normal((num_frames, NUM_AUS)).astype(np.float32)
    _add_talking(config, rng, aus, fps)
    _add_blinks(config, rng, aus, fps)
    return np.clip(aus, 0.0, 1.0)


def _add_talking(
    config: SynthConfig, rng: np.random.Generator, aus: np.ndarray, fps: float
) -> None:
    num_frames = len(aus)
    talking = random_runs(rng, num_frames, config.talking_fraction, 2.5 * fps, int(fps / 2))
    if not talking.any():
        return
    time = np.arange(num_frames) / fps
    phase = 2 * np.pi * np.cumsum(rng.uniform(2.5, 5.5, num_frames)) / fps
    syllables = np.maximum(0.0, np.sin(phase)) ** 1.5
    amplitude = rng.uniform(0.15, 0.4) * (
        1 + 0.3 * np.sin(2 * np.pi * 0.4 * time + rng.uniform(0, 6))
    )
    mouth = talking * amplitude * syllables
    aus[:, AU["jaw_drop"]] += 0.5 * mouth
    aus[:, AU["lips_part"]] += mouth
    aus[:, AU["lip_pucker"]] += 0.25 * talking * np.maximum(0, np.sin(0.7 * phase)) ** 2


def _add_blinks(config: SynthConfig, rng: np.random.Generator, aus: np.ndarray, fps: float) -> None:
    num_frames = len(aus)
    count = rng.poisson(config.blink_rate * num_frames / fps)
    shape = np.array([0.35, 0.85, 1.0, 0.8, 0.45, 0.15], dtype=np.float32)
    for start in rng.integers(0, max(1, num_frames - len(shape)), size=count):
        stop = min(num_frames, start + len(shape))
        aus[start:stop, AU["eye_close"]] += shape[: stop - start]


def track_labels(events: list[Event], annotated: np.ndarray) -> np.ndarray:
    """The annotation of a track: event labels, with -1 where not annotated."""
    labels = event_labels(events, len(annotated))
    labels[~annotated] = IGNORE_LABEL
    return labels
