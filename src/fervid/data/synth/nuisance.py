"""Everything about a frame that is not the expression: head pose, gaze, alignment error,
lighting, blur, sensor noise, occluders, JPEG quality and the background behind the face."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fervid.data.synth.config import SynthConfig
from fervid.data.synth.shapes import Shape
from fervid.data.synth.timeline import random_runs, smooth_noise

NOISE_BANK = 8


@dataclass
class TrackNuisance:
    """Per-frame nuisance parameters of one face track (arrays of length ``frames``)."""

    pose: np.ndarray
    """(n, 3) yaw, pitch, roll in degrees; smooth over time."""
    gaze: np.ndarray
    """(n, 2) gaze direction, -1..1."""
    jitter: np.ndarray
    """(n, 4) alignment error: dx, dy (pixels), log-scale, angle (degrees)."""
    light: np.ndarray
    """(n, 3) light direction (radians), directional strength, overall gain."""
    tint: np.ndarray
    """(3,) colour cast of the video."""
    blur: np.ndarray
    """(n,) Gaussian blur radius in pixels, 0 = sharp."""
    occluder: np.ndarray
    """(n,) 0 none, 1 hand, 2 bar."""
    occluder_place: np.ndarray
    """(n, 4) occluder centre x, y (crop pixels), angle (degrees), size (pixels)."""
    occluder_colour: np.ndarray
    """(n, 3) occluder colour."""
    noise: float
    """Standard deviation of the sensor noise, grey levels."""
    noise_index: np.ndarray
    """(n,) which image of the noise bank each frame uses."""
    quality: np.ndarray
    """(n,) JPEG quality."""
    background_shift: np.ndarray
    """(n, 2) integer offset of the crop window into the video's background texture."""


def sample_nuisance(
    config: SynthConfig,
    rng: np.random.Generator,
    frames: int,
    skin: tuple[int, int, int],
    fps: float = 30.0,
) -> TrackNuisance:
    """Nuisances of a track of ``frames`` frames: slow ones (pose, light) as smooth noise, fast
    ones (alignment error, sensor noise) per frame, blur and occluders in short runs."""
    n = frames
    scale = np.array([config.pose_yaw, config.pose_pitch, config.pose_roll], dtype=np.float32)
    pose = (0.4 * rng.standard_normal(3) + 0.9 * smooth_noise(rng, n, 3, 2 * fps)) * scale
    pose = np.clip(pose, -2.2 * scale - 1e-3, 2.2 * scale + 1e-3)
    gaze = np.clip(0.5 * smooth_noise(rng, n, 2, fps / 3), -1, 1)
    shake = 0.6 * smooth_noise(rng, n, 4, fps / 2) + 0.8 * rng.standard_normal((n, 4)).astype(
        np.float32
    )
    # Pixels of shift; the scale (log) and angle (degrees) errors grow with it.
    jitter = shake * config.align_jitter * np.array([1.0, 1.0, 0.02, 1.5], dtype=np.float32)
    strength = 0.8 * config.lighting * rng.uniform(0.2, 1.0)
    light = np.stack(
        [
            rng.uniform(0, 2 * np.pi) + 0.5 * smooth_noise(rng, n, 1, 3 * fps)[:, 0],
            np.clip(strength * (1 + 0.3 * smooth_noise(rng, n, 1, 2 * fps)[:, 0]), 0, 0.9),
            np.exp(
                rng.normal(0, 0.3 * config.lighting) + 0.06 * smooth_noise(rng, n, 1, 2 * fps)[:, 0]
            ),
        ],
        axis=1,
    ).astype(np.float32)
    tint = (1 + config.lighting * 0.35 * rng.uniform(-1, 1, 3)).astype(np.float32)
    blurred = random_runs(rng, n, config.blur_fraction, 5.0)
    blur = (
        blurred
        * rng.uniform(0.5, 1.8, n).astype(np.float32)
        * (1 + 0.3 * smooth_noise(rng, n, 1, 6)[:, 0])
    )
    occluder, place, colour = _occluders(config, rng, n, skin)
    base_quality = rng.integers(config.jpeg_quality_min, config.jpeg_quality_max + 1)
    quality = np.clip(base_quality + rng.integers(-4, 5, n), 20, 98)
    quality[rng.random(n) < 0.03] = max(20, config.jpeg_quality_min - 20)
    shift = 12 + np.clip(8 * smooth_noise(rng, n, 2, fps), -11, 11)
    return TrackNuisance(
        pose=pose.astype(np.float32),
        gaze=gaze.astype(np.float32),
        jitter=jitter.astype(np.float32),
        light=light,
        tint=tint,
        blur=np.maximum(blur, 0).astype(np.float32),
        occluder=occluder,
        occluder_place=place,
        occluder_colour=colour,
        noise=float(config.noise * rng.uniform(0.3, 1.7)),
        noise_index=rng.integers(0, NOISE_BANK, n),
        quality=quality.astype(int),
        background_shift=np.round(shift).astype(int),
    )


def _occluders(config: SynthConfig, rng: np.random.Generator, n: int, skin: tuple[int, int, int]):
    kind = np.zeros(n, dtype=np.int8)
    place = np.zeros((n, 4), dtype=np.float32)
    colour = np.zeros((n, 3), dtype=np.float32)
    covered = random_runs(rng, n, config.occlusion_fraction, 10.0, 3)
    starts = np.flatnonzero(covered & ~np.concatenate([[False], covered[:-1]]))
    for start in starts:
        stop = start + int(np.argmin(covered[start:])) if not covered[start:].all() else n
        # Over the mouth, over one eye, or from the side of the face.
        target = [(56, 98), (38, 52), (74, 52), (20, 80), (92, 80)][rng.integers(5)]
        drift = np.linspace(0, 1, stop - start)[:, None] * rng.normal(0, 6, 2)
        place[start:stop, :2] = np.asarray(target) + rng.normal(0, 6, 2) + drift
        place[start:stop, 2] = rng.uniform(-60, 60)
        place[start:stop, 3] = rng.uniform(22, 40)
        hand = rng.random() < 0.6
        kind[start:stop] = 1 if hand else 2
        tone = np.asarray(skin) * rng.uniform(0.85, 1.1) if hand else rng.uniform(20, 230, 3)
        colour[start:stop] = tone
    return kind, place, colour


def occluder_shapes(kind: int, place: np.ndarray, colour: np.ndarray) -> list[Shape]:
    """A hand (palm and fingers) or a bar, as polygons in crop pixels."""
    if kind == 0:
        return []
    x, y, angle, size = (float(v) for v in place)
    rgb = tuple(int(c) for c in np.clip(colour, 0, 255))
    turn = np.radians(angle)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])

    def placed(points):
        return Shape("polygon", np.asarray(points) @ rotation.T + [x, y], rgb + (255,))

    if kind == 2:
        return [placed(size * np.array([(-2, -0.25), (2, -0.25), (2, 0.25), (-2, 0.25)]))]
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    palm = np.stack([0.5 * size * np.cos(angles), 0.6 * size * np.sin(angles) + 0.5 * size], 1)
    shapes = [placed(palm)]
    for k, spread in enumerate((-0.36, -0.12, 0.12, 0.36)):
        length = size * (0.85 if k in (1, 2) else 0.7)
        cx = spread * size
        finger = [
            (cx - 0.1 * size, 0.2 * size),
            (cx + 0.1 * size, 0.2 * size),
            (cx + 0.09 * size, 0.2 * size - length),
            (cx - 0.09 * size, 0.2 * size - length),
        ]
        shapes.append(placed(finger))
    return shapes


def background_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A room-like textured background: smooth colour field, a few panels and stripes, grain."""
    low = rng.uniform(40, 220, (4, 5, 3))
    low = (0.45 * low + 0.55 * low.mean(axis=2, keepdims=True)).astype(np.uint8)
    image = Image.fromarray(low).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image, "RGBA")
    for _ in range(rng.integers(2, 6)):
        x0, y0 = rng.uniform(-0.2, 1.0) * width, rng.uniform(-0.2, 1.0) * height
        w, h = rng.uniform(0.1, 0.6) * width, rng.uniform(0.1, 0.7) * height
        grey = rng.integers(20, 240)
        colour = np.clip(grey + rng.integers(-40, 41, 3), 0, 255)
        fill = (*(int(c) for c in colour), int(rng.integers(120, 256)))
        draw.rectangle([x0, y0, x0 + w, y0 + h], fill=fill)
    if rng.random() < 0.5:
        step = int(rng.integers(6, 20))
        fill = tuple(int(c) for c in rng.integers(0, 255, 3)) + (60,)
        for x in range(0, width, 2 * step):
            draw.rectangle([x, 0, x + step - 1, height], fill=fill)
    grain = rng.normal(0, 6, (height, width, 1))
    return np.clip(np.asarray(image, dtype=np.float32) + grain, 0, 255).astype(np.uint8)


class CropFinisher:
    """Applies lighting, blur and noise of one track to rendered crops."""

    def __init__(self, nuisance: TrackNuisance, rng: np.random.Generator, size: int):
        self.nuisance = nuisance
        coordinates = np.linspace(-1.0, 1.0, size, dtype=np.float32)
        self.x, self.y = coordinates[None, :], coordinates[:, None]
        self.bank = (
            rng.standard_normal((NOISE_BANK, size, size, 3)).astype(np.float32) * nuisance.noise
        )

    def __call__(self, image: np.ndarray, frame: int) -> Image.Image:
        n = self.nuisance
        if n.blur[frame] > 0.3:
            blurred = Image.fromarray(image).filter(ImageFilter.GaussianBlur(float(n.blur[frame])))
            image = np.asarray(blurred)
        direction, strength, gain = n.light[frame]
        light = gain * (1.0 + strength * (np.cos(direction) * self.x + np.sin(direction) * self.y))
        lit = image * light[:, :, None] * n.tint + self.bank[n.noise_index[frame]]
        return Image.fromarray(np.clip(lit, 0, 255).astype(np.uint8))
