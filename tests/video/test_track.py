"""Face tracking (fervid.video.track) and the Aff-Wild2 crops writer (fervid.video.crops)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from fervid.video.align import ARCFACE_TEMPLATE
from fervid.video.crops import write_crops
from fervid.video.decode import Frame
from fervid.video.detect import FaceDetector, build_detector
from fervid.video.faces import track_faces
from fervid.video.track import FaceTracker, colour_histograms
from tests.helpers import SHARED_DATA


def box_at(x: float, y: float, size: float = 60) -> list[float]:
    return [x, y, x + size, y + size]


def test_two_faces_moving_without_crossing_keep_their_ids_through_missed_detections():
    tracker = FaceTracker(max_missed=5)
    rng = np.random.default_rng(0)
    history = {"a": [], "b": []}
    for frame in range(60):
        a = box_at(20 + 2 * frame, 50 + 5 * np.sin(frame / 5))  # moves right
        b = box_at(300 - frame, 60 + 4 * np.cos(frame / 7))  # moves left, never reaches a
        boxes = {"a": a, "b": b}
        if frame in (10, 11, 12, 40):
            del boxes["a"]  # a missed for three frames, then one more
        if frame in (25, 26):
            del boxes["b"]
        names = list(boxes)
        rng.shuffle(names)  # detection order carries no meaning
        ids = tracker.update(np.array([boxes[n] for n in names]))
        for name, track_id in zip(names, ids, strict=True):
            history[name].append(int(track_id))
    assert len(set(history["a"])) == 1 and len(set(history["b"])) == 1
    assert history["a"][0] != history["b"][0]
    assert len(history["a"]) == 56 and len(history["b"]) == 58
    assert [t.hits for t in tracker.tracks()] == [56, 58]


def test_a_face_gone_longer_than_max_missed_comes_back_with_a_new_id():
    tracker = FaceTracker(max_missed=2)
    first = tracker.update(np.array([box_at(10, 10)]))[0]
    assert tracker.update(np.zeros((0, 15)))[0:].size == 0
    assert tracker.update(np.array([box_at(12, 10)]))[0] == first  # gap of 1 frame: same id
    for _ in range(3):
        tracker.update([])
    assert tracker.update(np.array([box_at(14, 10)]))[0] != first
    assert len(tracker.tracks()) == 2


def test_appearance_keeps_ids_when_overlapping_faces_trade_places():
    red = np.zeros((1, 3, 8, 8), np.uint8)
    red[:, 0] = 255
    blue = np.zeros((1, 3, 8, 8), np.uint8)
    blue[:, 2] = 255
    colours = colour_histograms(np.concatenate([red, blue]))
    assert colours.shape == (2, 64) and np.allclose(colours.sum(axis=1), 1)
    # frame 1: red at left, blue at right; frame 2: both moved so each now overlaps the other
    # track's old box more than its own
    before = np.array([box_at(0, 0, 100), box_at(60, 0, 100)])
    after = np.array([box_at(50, 0, 100), box_at(10, 0, 100)])
    by_box = FaceTracker(appearance_weight=0.0)
    first = by_box.update(before)
    assert by_box.update(after).tolist() == first[::-1].tolist()  # IoU alone follows position
    by_colour = FaceTracker(appearance_weight=0.7)
    first = by_colour.update(before, colours)
    assert by_colour.update(after, colours).tolist() == first.tolist()


class ScriptedDetector(FaceDetector):
    """Returns, for the n-th frame it sees, the faces ``script(n)`` lists as box corners."""

    def __init__(self, script):
        super().__init__(max_side=None, min_score=0.1)
        self.script, self.calls = script, 0

    def _detect_resized(self, images):
        found = []
        for _ in images:
            rows = [face_row(*corner, score) for corner, score in self.script(self.calls)]
            found.append(np.array(rows, np.float32).reshape(-1, 15))
            self.calls += 1
        return found


def face_row(x: float, y: float, score: float = 0.9) -> list[float]:
    landmarks = ARCFACE_TEMPLATE * 0.5 + [x, y]
    return [x, y, x + 56, y + 56, score, *landmarks.ravel()]


def make_clip(path: Path, frames: int) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for _ in range(frames):
            image = np.full((96, 160, 3), 90, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def test_track_faces_yields_every_frame_and_can_detect_on_every_other_frame():
    frames = [Frame(i, i / 25, np.full((96, 160, 3), 90, np.uint8)) for i in range(6)]
    detector = ScriptedDetector(lambda n: [((10 + 5 * n, 20), 0.9)] if n != 1 else [])
    every_frame = list(track_faces(frames, detector))
    assert [len(f.track_ids) for f in every_frame] == [1, 0, 1, 1, 1, 1]
    assert every_frame[0].crops.shape == (1, 3, 112, 112) and every_frame[1].crops.shape[0] == 0
    assert len({int(f.track_ids[0]) for f in every_frame if len(f.track_ids)}) == 1
    detector = ScriptedDetector(lambda n: [((10 + 5 * n, 20), 0.9)])
    halved = list(track_faces(frames, detector, detect_every=2))
    assert detector.calls == 3 and [f.frame.index for f in halved] == list(range(6))
    assert np.array_equal(halved[1].detections, halved[0].detections)
    assert not np.array_equal(halved[2].detections, halved[1].detections)


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_one_face_is_written_to_a_folder_named_after_the_video(tmp_path):
    clip = make_clip(tmp_path / "clip01.mp4", 12)
    # a stray detection in the 4th processed frame must not rename the main face's folder
    script = lambda n: [((10 + n, 20), 0.9)] + ([((100, 30), 0.5)] if n == 3 else [])  # noqa: E731
    summary = write_crops(clip, tmp_path / "out", ScriptedDetector(script), every=2)
    root = tmp_path / "out" / "cropped_aligned"
    assert names_in(root) == ["clip01"]
    expected = [f"{n:05d}.jpg" for n in (1, 3, 5, 7, 9, 11)]
    assert names_in(root / "clip01") == expected
    assert summary.folders == {"clip01": 6} and summary.frames == 6 and summary.dropped_tracks == 1
    assert summary.report.complete


def test_two_faces_seen_together_go_to_left_and_right_folders(tmp_path):
    clip = make_clip(tmp_path / "duo.mp4", 8)
    # the right-hand face is detected first in each frame, and misses frame 4
    script = lambda n: ([((95, 20), 0.95)] if n != 4 else []) + [((5, 25), 0.9)]  # noqa: E731
    summary = write_crops(clip, tmp_path / "out", ScriptedDetector(script), min_score=0.5)
    root = tmp_path / "out" / "cropped_aligned"
    assert names_in(root) == ["duo_left", "duo_right"]
    assert len(names_in(root / "duo_left")) == 8 and len(names_in(root / "duo_right")) == 7
    assert "00005.jpg" not in names_in(root / "duo_right")
    assert summary.folders == {"duo_left": 8, "duo_right": 7}


def test_faces_one_after_another_get_numbered_folders_and_reruns_replace_them(tmp_path):
    clip = make_clip(tmp_path / "relay.mp4", 30)
    script = lambda n: [((10, 20), 0.9)] if n < 10 else [((90, 20), 0.9)] if n >= 20 else []  # noqa: E731
    root = tmp_path / "out" / "cropped_aligned"
    (root / "relay_1").mkdir(parents=True)
    (root / "relay_1" / "99999.jpg").write_bytes(b"stale")
    write_crops(clip, tmp_path / "out", ScriptedDetector(script))
    assert names_in(root) == ["relay_1", "relay_2"]  # no staging folder left behind
    assert names_in(root / "relay_1")[-1] == "00010.jpg"
    assert names_in(root / "relay_2")[0] == "00021.jpg"


def test_a_failed_run_leaves_no_partial_folder(tmp_path):
    clip = make_clip(tmp_path / "boom.mp4", 6)

    def script(n):
        if n == 3:
            raise RuntimeError("detector crashed")
        return [((10, 20), 0.9)]

    with pytest.raises(RuntimeError):
        write_crops(clip, tmp_path / "out", ScriptedDetector(script))
    assert names_in(tmp_path / "out" / "cropped_aligned") == []


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
@pytest.mark.slow
def test_real_clip_gives_one_track_of_aligned_crops(tmp_path):
    summary = write_crops(
        SHARED_DATA / "WolfgangLanger_Pexels.mp4", tmp_path, build_detector(), every=8
    )
    assert list(summary.folders) == ["WolfgangLanger_Pexels"]
    assert summary.folders["WolfgangLanger_Pexels"] >= 0.95 * 59
    first = tmp_path / "cropped_aligned" / "WolfgangLanger_Pexels" / "00001.jpg"
    with Image.open(first) as crop:
        assert crop.size == (112, 112)
