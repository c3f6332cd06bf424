"""Stream the frames of videos and images as RGB uint8 arrays, one at a time.

``read_frames(path)`` returns a ``FrameReader``: iterate it for ``Frame`` objects (0-based index,
timestamp in seconds, (H, W, 3) uint8 RGB image). Memory stays flat however long the video is;
FFmpeg decodes with its own threads (``thread_type="AUTO"``). Images are one-frame inputs.

A file that cannot be opened at all (missing, empty, not a video or image, an mp4 whose index is
cut off) raises ``DataError`` naming it. A video that breaks part-way (truncated, corrupt packet)
yields every frame decoded before the break and then ends; ``reader.report`` says where and why,
so the caller decides whether to warn or fail::

    reader = read_frames("clip.mp4", every=2)
    for frame in reader:
        ...
    if not reader.report.complete:
        log.warning(reader.report.message)

Besides files, an input may be a stream (:class:`StreamSource`): ``-`` (standard input, e.g. a
pipe), a URL FFmpeg opens (``http://``, ``rtsp://``, ...) or a camera (``/dev/video0``,
opened with v4l2). Streams are read once, front to back.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from fervid.data.images import load_rgb
from fervid.errors import DataError

log = logging.getLogger("fervid")

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``index`` counts decoded frames from 0 (subsampling keeps the source
    index), ``time`` is the presentation time in seconds, ``image`` is (H, W, 3) uint8 RGB."""

    index: int
    time: float
    image: np.ndarray


@dataclass(frozen=True)
class MediaInfo:
    """What ``probe`` learns without decoding. ``frames`` is the container's count, or an
    estimate from duration x fps when the container has none (mkv, webm); 1 for images."""

    path: Path
    kind: str  # "video" or "image"
    width: int
    height: int
    fps: float
    frames: int
    codec: str


@dataclass
class DecodeReport:
    """How decoding of one input ended. ``stopped_at`` is the index of the first frame that could
    not be decoded (None when the input decoded to its end)."""

    path: Path
    frames_decoded: int = 0
    frames_expected: int = 0
    stopped_at: int | None = None
    reason: str = ""
    fps: float = 0.0
    """Frames per second of a video (0 for an image)."""

    @property
    def complete(self) -> bool:
        return self.stopped_at is None

    @property
    def message(self) -> str:
        if self.complete:
            return f"{self.path}: decoded {self.frames_decoded} frames"
        return f"{self.path}: stopped at frame {self.stopped_at}: {self.reason}"


@dataclass(frozen=True)
class StreamSource:
    """A live or streamed input: ``-`` (standard input), a URL (``scheme://...``) or a camera
    device (``/dev/videoN``). ``name`` and ``stem`` name its outputs like a file's would."""

    url: str

    @property
    def name(self) -> str:
        if self.url == "-":
            return "stdin"
        return self.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "stream"

    @property
    def stem(self) -> str:
        return Path(self.name).stem or "stream"

    @property
    def is_camera(self) -> bool:
        return self.url.startswith("/dev/video")

    def __str__(self) -> str:
        return self.url

    def open(self):
        """An av container reading the stream."""
        if self.url == "-":  # FFmpeg reads fd 0 itself: no Python file lock a stop could leave held
            return av.open("pipe:0", metadata_errors="ignore")
        return av.open(self.url, format="v4l2" if self.is_camera else None, timeout=30)


def as_source(item: str | Path | StreamSource) -> Path | StreamSource:
    """A file path, or a :class:`StreamSource` for ``-``, URLs and camera devices."""
    if isinstance(item, StreamSource | Path):
        return item
    text = str(item)
    if text == "-" or "://" in text or text.startswith("/dev/video"):
        return StreamSource(text)
    return Path(text)


def media_kind(path: Path) -> str:
    """``"image"`` or ``"video"`` by suffix; unknown suffixes are sniffed (image header first)."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    try:
        with Image.open(path):
            return "image"
    except (UnidentifiedImageError, OSError):
        return "video"


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files (and streams) as given, folders replaced by the videos and images inside them
    (recursively, sorted, hidden files skipped). DataError for a missing path or a folder with
    no media."""
    found: list[Path | StreamSource] = []
    for path in map(as_source, paths):
        if isinstance(path, StreamSource):
            found.append(path)
        elif path.is_dir():
            inside = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and p.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES
            )
            if not inside:
                raise DataError(path, "folder contains no videos or images")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            raise DataError(path, "no such file or folder")
    return found


def probe(path: str | Path) -> MediaInfo:
    """Size, frame rate and (estimated) frame count of a video or image, without decoding."""
    path = _check_file(path)
    if media_kind(path) == "image":
        try:
            with Image.open(path) as image:  # reads the header only
                width, height = image.size
        except (UnidentifiedImageError, OSError):
            height, width = load_rgb(path).shape[:2]  # raises the DataError that explains it
        return MediaInfo(path, "image", width, height, 0.0, 1, "image")
    with _open_video(path) as container:
        stream = container.streams.video[0]
        fps = _fps(stream)
        frames = stream.frames
        if not frames:
            duration = _duration_seconds(container, stream)
            frames = round(duration * fps) if duration and fps else 0
        context = stream.codec_context
        return MediaInfo(path, "video", context.width, context.height, fps, frames, context.name)


def read_frames(path: str | Path, every: int = 1, threads: int = 0) -> FrameReader:
    """Frames of one video or image, keeping every ``every``-th frame (indices 0, every, ...).
    ``threads`` is FFmpeg's decoding thread count (0: as many as it likes)."""
    return FrameReader(path, every=every, threads=threads)


class FrameReader:
    """Iterable over the ``Frame`` objects of one input; see the module docstring. Opening the
    file (and any DataError) happens when iteration starts. Skipped frames are decoded (inter
    frames need them) but never converted to RGB."""

    def __init__(self, path: str | Path | StreamSource, every: int = 1, threads: int = 0):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.path = as_source(path)
        self.every = every
        self.threads = threads
        self.report = DecodeReport(self.path)

    def __iter__(self) -> Iterator[Frame]:
        if isinstance(self.path, StreamSource):
            self.report = DecodeReport(self.path)
            yield from self._video_frames(self.path)
            return
        path = _check_file(self.path)
        self.report = DecodeReport(path)
        if media_kind(path) == "image":
            image = load_rgb(path)
            self.report.frames_decoded = self.report.frames_expected = 1
            yield Frame(0, 0.0, image)
            return
        yield from self._video_frames(path)

    def _video_frames(self, path: Path) -> Iterator[Frame]:
        report = self.report
        with _open_video(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.thread_count = self.threads
            fps = _fps(stream) or 25.0
            report.fps = fps
            index = 0
            for frame in self._decoded(container, stream):
                if index % self.every == 0:
                    time = frame.time if frame.time is not None else index / fps
                    yield Frame(index, float(time), frame.to_ndarray(format="rgb24"))
                index += 1
                report.frames_decoded = index
            # mp4 counts the packets its edit list discards (codec priming) among its frames
            announced = stream.frames - self._discarded if stream.frames else 0
            report.frames_expected = max(announced, index)
            if report.reason:
                report.stopped_at = index
            elif index == 0:
                report.stopped_at, report.reason = 0, "no frame could be decoded"
            elif index < announced:
                report.stopped_at = index
                report.reason = f"file ends early (truncated?): {announced} frames announced"

    def _decoded(self, container, stream) -> Iterator[av.VideoFrame]:
        """Decoded frames in presentation order. The first demuxing or decoding error ends the
        stream (frames still buffered in the decoder are flushed out first); its reason goes to
        the report."""
        self._discarded = 0
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
                self._discarded += bool(packet.is_discard)
                frames = packet.decode()
            except StopIteration:
                return
            except (av.error.FFmpegError, ValueError) as error:
                self.report.reason = _reason(error)
                break
            yield from frames
        with contextlib.suppress(av.error.FFmpegError, ValueError):
            yield from stream.codec_context.decode(None)


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such file")
    if not path.is_file():
        raise DataError(path, "not a file")
    if path.stat().st_size == 0:
        raise DataError(path, "empty file (0 bytes)")
    return path


def _open_video(path: Path | StreamSource):
    try:
        if isinstance(path, StreamSource):
            container = path.open()
        else:
            container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as error:
        raise DataError(
            path, f"not a readable video or image (truncated or corrupt?): {_reason(error)}"
        ) from error
    if not container.streams.video:
        container.close()
        raise DataError(path, "no video stream (audio-only or not a video)")
    return container


def _fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _duration_seconds(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * Fraction(stream.time_base))
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return f"{type(error).__name__}: {text}"
