"""Write an annotated mp4: each frame with its faces' boxes and labels drawn on it.

Streaming: frames are encoded as they come (PyAV, libx264, yuv420p), so memory stays flat. The
file appears atomically when the writer is closed without error::

    with AnnotatedVideoWriter("out.mp4", fps=info.fps) as writer:
        for frame in read_frames(video):
            writer.write(frame.image, [FaceLabel(box, "happiness", 0.93, track_id=1)])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fervid.runtime.io import atomic_path

PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
)


@dataclass(frozen=True)
class FaceLabel:
    """What to draw for one face: its box (x0, y0, x1, y1), class name and probability; the
    track id (if any) picks the colour and prefixes the text."""

    box: Sequence[float]
    label: str
    probability: float | None = None
    track_id: int | None = None

    @property
    def text(self) -> str:
        text = self.label if self.probability is None else f"{self.label} {self.probability:.2f}"
        return text if self.track_id is None else f"#{self.track_id} {text}"


def draw_faces(image: np.ndarray, faces: Sequence[FaceLabel]) -> np.ndarray:
    """A copy of the (H, W, 3) uint8 RGB ``image`` with boxes and labels drawn."""
    canvas = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(canvas)
    height, width = image.shape[:2]
    line = max(2, round(min(height, width) / 200))
    font = _font(max(12, round(min(height, width) / 30)))
    for number, face in enumerate(faces):
        colour = PALETTE[(face.track_id if face.track_id is not None else number) % len(PALETTE)]
        x0, y0, x1, y1 = (float(v) for v in face.box[:4])
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        left, top, right, bottom = draw.textbbox((0, 0), face.text, font=font)
        text_width, text_height = right - left, bottom - top
        text_y = max(0.0, y0 - text_height - 2 * line)  # above the box, or inside its top
        label_box = (x0, text_y, x0 + text_width + 2 * line, text_y + text_height + 2 * line)
        draw.rectangle(label_box, fill=colour)
        draw.text(
            (x0 + line - left, text_y + line - top), face.text, fill=(255, 255, 255), font=font
        )
    return np.asarray(canvas)


class AnnotatedVideoWriter:
    """An mp4 (H.264, yuv420p) written frame by frame. Frame size is taken from the first frame
    (odd sizes are cropped by one pixel: yuv420p needs even sides). ``crf``: x264 quality
    (lower is better, 23 is x264's default)."""

    def __init__(self, path: str | Path, fps: float, crf: int = 23, preset: str = "veryfast"):
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self.options = {"crf": str(crf), "preset": preset}
        self._atomic = None
        self._container = None
        self._stream = None
        self.frames = 0

    def __enter__(self) -> AnnotatedVideoWriter:
        self._atomic = atomic_path(self.path)
        temporary = self._atomic.__enter__()
        self._container = av.open(str(temporary), mode="w", format="mp4")
        return self

    def write(self, image: np.ndarray, faces: Sequence[FaceLabel] = ()) -> None:
        """Draw ``faces`` on ``image`` (RGB uint8) and encode it as the next frame."""
        if self._container is None:
            raise RuntimeError("use AnnotatedVideoWriter as a context manager")
        if self._stream is None:
            self._stream = self._container.add_stream(
                "libx264", rate=self.fps, options=self.options
            )
            self._stream.width = image.shape[1] // 2 * 2
            self._stream.height = image.shape[0] // 2 * 2
            self._stream.pix_fmt = "yuv420p"
        drawn = draw_faces(image, faces) if faces else image
        drawn = np.ascontiguousarray(drawn[: self._stream.height, : self._stream.width])
        frame = av.VideoFrame.from_ndarray(drawn, format="rgb24")
        frame.pts = self.frames
        frame.time_base = 1 / self.fps
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if self._stream is not None and kind is None:
                self._container.mux(self._stream.encode(None))
            self._container.close()
        finally:
            self._atomic.__exit__(kind, error, traceback)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        return ImageFont.load_default()
