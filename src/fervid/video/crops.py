"""Write a video's faces as aligned crops in the Aff-Wild2 ``cropped_aligned`` layout.

``write_crops(video, out_root, detector)`` produces::

    out_root/cropped_aligned/<video>/00001.jpg            one face track
    out_root/cropped_aligned/<video>_left/00001.jpg       two tracks seen together:
    out_root/cropped_aligned/<video>_right/00001.jpg        named by mean horizontal position
    out_root/cropped_aligned/<video>_1/00001.jpg          otherwise: numbered by first appearance
    out_root/cropped_aligned/<video>_2/00031.jpg

File names are the 1-based frame numbers of the source video, 5 digits (with ``every=N`` they
are 1, N+1, 2N+1, ...), as in Aff-Wild2; a frame where a track has no face has no file. Tracks
seen in fewer than ``min_track_frames`` processed frames (stray detections) are dropped before
naming, so one false positive does not rename the main face's folder. Everything is written to a
hidden staging folder first and moved into place at the end, replacing earlier folders of the
same names; a failure leaves no partial folder behind.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from fervid.video.align import TEMPLATE_SIZE
from fervid.video.decode import DecodeReport, read_frames
from fervid.video.detect import FaceDetector, build_detector
from fervid.video.faces import track_faces
from fervid.video.track import FaceTracker, Track

log = logging.getLogger("fervid")


@dataclass
class CropsSummary:
    """What ``write_crops`` did: crops per output folder, frames processed, frames with a face,
    and the decoding report (``report.complete`` is False for a video that broke part-way)."""

    video: Path
    folders: dict[str, int] = field(default_factory=dict)
    frames: int = 0
    frames_with_face: int = 0
    dropped_tracks: int = 0
    report: DecodeReport | None = None


def write_crops(
    video_path: str | Path,
    out_root: str | Path,
    detector: FaceDetector | None = None,
    every: int = 1,
    min_score: float | None = None,
    size: int = TEMPLATE_SIZE,
    min_track_frames: int = 5,
    tracker: FaceTracker | None = None,
    quality: int = 95,
) -> CropsSummary:
    """Detect, track and align every face of ``video_path`` (every ``every``-th frame) and write
    the crops under ``out_root/cropped_aligned`` (module docstring). ``min_score`` drops
    detections below it on top of the detector's own threshold."""
    video_path = Path(video_path)
    detector = detector if detector is not None else build_detector()
    tracker = tracker if tracker is not None else FaceTracker()
    root = Path(out_root) / "cropped_aligned"
    staging = root / f".{video_path.stem}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    summary = CropsSummary(video_path)
    reader = read_frames(video_path, every=every)
    counts: dict[int, int] = {}
    try:
        for faces in track_faces(reader, detector, tracker, min_score, size):
            summary.frames += 1
            summary.frames_with_face += bool(len(faces.track_ids))
            name = f"{faces.frame.index + 1:05d}.jpg"
            for track_id, crop in zip(faces.track_ids.tolist(), faces.crops, strict=True):
                folder = staging / str(track_id)
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(crop.transpose(1, 2, 0)).save(folder / name, quality=quality)
                counts[track_id] = counts.get(track_id, 0) + 1
        summary.report = reader.report
        names = track_folder_names(
            video_path.stem, tracker.tracks(), min(min_track_frames, summary.frames)
        )
        summary.dropped_tracks = len(counts) - len(names)
        for track_id, name in names.items():
            target = root / name
            shutil.rmtree(target, ignore_errors=True)
            (staging / str(track_id)).rename(target)
            summary.folders[name] = counts[track_id]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not reader.report.complete:
        log.warning("%s", reader.report.message)
    return summary


def track_folder_names(video: str, tracks: list[Track], min_frames: int) -> dict[int, str]:
    """Folder name per kept track id (module docstring): ``<video>`` for one track,
    ``<video>_left`` / ``_right`` for two tracks that appear together, else ``<video>_<n>``."""
    kept = sorted((t for t in tracks if t.hits >= max(1, min_frames)), key=lambda t: t.id)
    if len(kept) == 1:
        return {kept[0].id: video}
    if len(kept) == 2 and _seen_together(*kept):
        left, right = sorted(kept, key=lambda t: t.mean_centre_x)
        return {left.id: f"{video}_left", right.id: f"{video}_right"}
    return {track.id: f"{video}_{n}" for n, track in enumerate(kept, start=1)}


def _seen_together(a: Track, b: Track) -> bool:
    return a.first_frame <= b.last_frame and b.first_frame <= a.last_frame
