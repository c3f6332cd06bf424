"""Shapes: polygons and polylines in aligned-crop units, with a depth per point.

The face parts are built from these; the renderer turns the head (the depth matters there),
projects and draws them.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from fervid.data.synth.identity import CENTER_X

HEAD_CENTER_Y = 62.0
"""The head turns about (CENTER_X, HEAD_CENTER_Y, 0)."""
HEAD_DEPTH = 40.0
"""Depth of the face surface at its centre (the head's ellipsoid)."""


class Shape(NamedTuple):
    kind: str
    """``polygon`` (filled) or ``line`` (open polyline)."""
    points: np.ndarray
    """(k, 2) x, y in aligned-crop units."""
    colour: tuple[int, int, int, int]
    width: float = 0.0
    """Line width in aligned-crop units."""
    extra: float = 0.0
    """Depth above the head's ellipsoid (the nose sticks out)."""
    depth: float = np.nan
    """Fixed depth instead of the ellipsoid's (hair behind the head, the silhouette)."""


def lift(shapes: list[Shape]) -> np.ndarray:
    """All points of ``shapes`` with a depth: on the head's ellipsoid plus ``extra``, or fixed."""
    xy = np.concatenate([item.points for item in shapes])
    sizes = [len(item.points) for item in shapes]
    extra = np.repeat(np.array([item.extra for item in shapes], dtype=np.float32), sizes)
    fixed = np.repeat(np.array([item.depth for item in shapes], dtype=np.float32), sizes)
    rx, ry = 50.0, 78.0
    inside = 1.0 - ((xy[:, 0] - CENTER_X) / rx) ** 2 - ((xy[:, 1] - HEAD_CENTER_Y) / ry) ** 2
    depth = HEAD_DEPTH * np.sqrt(np.clip(inside, 0.02, 1.0)) + extra
    depth = np.where(np.isnan(fixed), depth, fixed)
    return np.concatenate([xy, depth[:, None]], axis=1).astype(np.float32)


def shape(kind, xy, colour, width=0.0, extra=0.0, z=None, surface=False) -> Shape:
    """A shape from points (a list of (x, y) or an array); ``z`` fixes the depth."""
    # The outline (surface=True) is the head's silhouette: it stays at the ellipsoid's rim.
    depth = 0.0 if surface else (np.nan if z is None else z)
    return Shape(kind, np.asarray(xy, dtype=np.float32).reshape(-1, 2), colour, width, extra, depth)


@functools.lru_cache(maxsize=64)
def unit_arc(count: int, start: float, stop: float) -> np.ndarray:
    angles = np.linspace(start, stop, count, endpoint=stop - start < 2 * np.pi - 1e-6)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def ellipse(cx: float, cy: float, rx: float, ry: float, count: int = 14, start=0.0, stop=2 * np.pi):
    """``count`` points of an ellipse (or of its arc from angle ``start`` to ``stop``)."""
    return unit_arc(count, float(start), float(stop)) * np.float32([rx, ry]) + np.float32([cx, cy])


def smooth_closed(points: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Chaikin corner cutting of a closed polygon."""
    for _ in range(rounds):
        following = np.roll(points, -1, axis=0)
        points = np.stack([0.75 * points + 0.25 * following, 0.25 * points + 0.75 * following], 1)
        points = points.reshape(-1, 2)
    return points
