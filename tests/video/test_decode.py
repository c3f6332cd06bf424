"""Decoding videos and images into frames (fervid.video.decode) and writing annotated videos."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from fervid.errors import DataError
from fervid.video.annotate import PALETTE, AnnotatedVideoWriter, FaceLabel, draw_faces
from fervid.video.decode import expand_inputs, probe, read_frames
from tests.helpers import SHARED_DATA

FRAMES, FPS, WIDTH, HEIGHT = 24, 25, 64, 48


def make_video(path: Path, codec: str, frames: int = FRAMES, noise: bool = False, **options):
    """A small video whose left half has brightness 10 * frame index (mod 256), so frames can be told
    apart after lossy coding. ``noise`` fills the right half with noise (bigger packets)."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if codec == "libx265":
            stream.options = {"x265-params": "log-level=error"}
        for index in range(frames):
            image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
            image[:, : WIDTH // 2] = (10 * index) % 256
            if noise:
                image[:, WIDTH // 2 :] = rng.integers(0, 256, (HEIGHT, WIDTH // 2, 3))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def left_brightness(image: np.ndarray) -> float:
    return float(image[8:-8, 4 : WIDTH // 2 - 4].mean())


FORMATS = [("mp4", "libx264"), ("mov", "libx264"), ("avi", "mpeg4"), ("mkv", "libx265")]


@pytest.mark.parametrize(("suffix", "codec"), FORMATS)
def test_each_container_and_codec_decodes_every_frame_in_order(tmp_path, suffix, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} encoder not in this PyAV build")
    path = make_video(tmp_path / f"clip.{suffix}", codec)
    info = probe(path)
    assert (info.kind, info.width, info.height, info.fps, info.frames) == (
        "video",
        WIDTH,
        HEIGHT,
        FPS,
        FRAMES,
    )
    reader = read_frames(path)
    frames = list(reader)
    assert [f.index for f in frames] == list(range(FRAMES))
    assert all(f.image.shape == (HEIGHT, WIDTH, 3) and f.image.dtype == np.uint8 for f in frames)
    assert np.allclose([f.time for f in frames], np.arange(FRAMES) / FPS, atol=1e-3)
    assert np.allclose([left_brightness(f.image) for f in frames], 10 * np.arange(FRAMES), atol=4)
    assert reader.report.complete and reader.report.frames_decoded == FRAMES


def test_every_n_keeps_source_indices_and_counts_all_decoded_frames(tmp_path):
    path = make_video(tmp_path / "clip.mp4", "libx264")
    reader = read_frames(path, every=5)
    frames = list(reader)
    assert [f.index for f in frames] == [0, 5, 10, 15, 20]
    assert np.allclose([left_brightness(f.image) for f in frames], [0, 50, 100, 150, 200], atol=4)
    assert reader.report.frames_decoded == FRAMES and reader.report.complete
    with pytest.raises(ValueError):
        read_frames(path, every=0)


def test_frames_are_streamed_not_decoded_up_front(tmp_path):
    reader = read_frames(make_video(tmp_path / "clip.mp4", "libx264"))
    first = next(iter(reader))
    assert first.index == 0
    assert reader.report.frames_decoded < FRAMES


def test_images_are_one_frame_inputs_even_without_a_known_suffix(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "face.png")
    (tmp_path / "face.png").rename(tmp_path / "face.data")
    frames = list(read_frames(tmp_path / "face.data"))
    assert len(frames) == 1 and frames[0].index == 0
    assert np.array_equal(frames[0].image, image)
    assert probe(tmp_path / "face.data").kind == "image"


def test_folders_expand_to_the_media_inside(tmp_path):
    make_video(tmp_path / "b.mp4", "libx264", frames=2)
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "sub" / "a.jpg")
    (tmp_path / "notes.txt").write_text("not media")
    (tmp_path / ".hidden.mp4").write_bytes(b"x")
    assert expand_inputs([tmp_path]) == [tmp_path / "b.mp4", tmp_path / "sub" / "a.jpg"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no videos or images"):
        expand_inputs([tmp_path / "empty"])
    with pytest.raises(DataError, match="missing.mp4"):
        expand_inputs([tmp_path / "missing.mp4"])


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.mp4", b"", "empty file"),
        ("text.mp4", b"hello, this is not a video\n" * 20, "not a readable video"),
        ("noise.avi", bytes(np.random.default_rng(2).integers(0, 256, 5000, np.uint8)), "not a"),
        ("broken.jpg", b"\xff\xd8\xff\xe0 truncated jpeg", "image"),
    ],
)
def test_bad_inputs_raise_a_data_error_naming_the_file(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    for call in (lambda: list(read_frames(path)), lambda: probe(path)):
        with pytest.raises(DataError, match=problem) as caught:
            call()
        assert caught.value.path == str(path)


def test_truncated_video_yields_what_decodes_then_reports_where_it_stopped(tmp_path):
    whole = make_video(
        tmp_path / "whole.mp4", "libx264", frames=60, noise=True, movflags="+faststart"
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    reader = read_frames(cut)
    frames = list(reader)
    assert 10 < len(frames) < 60
    assert [f.index for f in frames] == list(range(len(frames)))
    report = reader.report
    assert not report.complete and report.stopped_at == report.frames_decoded == len(frames)
    assert f"stopped at frame {len(frames)}" in report.message and str(cut) in report.message


def test_truncated_mp4_without_its_index_is_a_data_error(tmp_path):
    whole = make_video(tmp_path / "whole.mp4", "libx264", frames=60, noise=True)  # index at end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError, match="cut.mp4"):
        list(read_frames(cut))


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_real_clips_probe_and_decode_completely():
    info = probe(SHARED_DATA / "WolfgangLanger_Pexels.mp4")
    assert (info.width, info.height, info.frames, info.codec) == (640, 360, 472, "h264")
    assert info.fps == pytest.approx(23.976, abs=1e-3)
    reader = read_frames(SHARED_DATA / "WolfgangLanger_Pexels.mp4", every=8)
    assert len(list(reader)) == 59 and reader.report.frames_decoded == 472
    # its mp4 edit list discards 3 priming packets: 95 frames is complete, not truncated
    reader = read_frames(SHARED_DATA / "no_face.mp4", every=10)
    list(reader)
    assert reader.report.complete and reader.report.frames_decoded == 95


def test_annotated_video_is_streamed_to_an_mp4_with_the_boxes_drawn(tmp_path):
    out = tmp_path / "annotated.mp4"
    grey = np.full((49, 65, 3), 128, np.uint8)  # odd sides: cropped to even for yuv420p
    with AnnotatedVideoWriter(out, fps=FPS) as writer:
        for _ in range(10):
            writer.write(grey, [FaceLabel((10, 20, 50, 45), "happiness", 0.9, track_id=0)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4"]
    info = probe(out)
    assert (info.width, info.height, info.frames, info.codec) == (64, 48, 10, "h264")
    frames = list(read_frames(out))
    assert len(frames) == 10
    edge = frames[5].image[32, 9:12].astype(int).mean(axis=0)  # left edge of the box
    assert np.abs(edge - PALETTE[0]).max() < 40
    assert np.abs(frames[5].image[40, 30].astype(int) - 128).max() < 10  # inside: untouched


def test_annotated_video_writer_leaves_nothing_behind_on_error(tmp_path):
    with pytest.raises(RuntimeError), AnnotatedVideoWriter(tmp_path / "out.mp4", fps=FPS) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_draw_faces_writes_label_text_and_leaves_the_input_alone():
    image = np.zeros((120, 160, 3), np.uint8)
    drawn = draw_faces(image, [FaceLabel((40, 40, 100, 110), "sadness", 0.51)])
    assert image.max() == 0 and drawn.shape == image.shape
    assert (drawn[20:40, 40:100] == 255).all(axis=2).any()  # white label text above the box
