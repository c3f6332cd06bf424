"""The synthetic dataset: Aff-Wild2 layout, splits, determinism, scene videos, landmarks."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from fervid.data.synth import (
    ARCFACE_TEMPLATE,
    FacePlacement,
    SynthConfig,
    generate,
    make_identity,
    placement_matrix,
    render_aligned_face,
    render_scene_frame,
    tiny_config,
)
from fervid.data.synth.expressions import AU, NUM_AUS, event_pattern, prototype_similarity
from fervid.data.synth.plan import make_plan
from fervid.data.synth.timeline import Event, envelope
from fervid.errors import ConfigError, DataError
from fervid.labels import ABAW_HEADER
from tests.helpers import REPO

TRAIN = Path("EXPR_Recognition_Challenge/Train_Set")
VALIDATION = Path("EXPR_Recognition_Challenge/Validation_Set")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "tiny"
    summary = generate(out, tiny_config(workers=1), progress=False)
    return out, summary


def read_labels(path: Path) -> list[int]:
    lines = path.read_text().splitlines()
    assert lines[0] == ABAW_HEADER
    return [int(line) for line in lines[1:]]


def annotation_files(root: Path) -> list[Path]:
    return sorted((root / TRAIN).glob("*.txt")) + sorted((root / VALIDATION).glob("*.txt"))


def file_hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "synth.json"
    }


@pytest.mark.slow
def test_annotations_and_crops_follow_the_affwild2_layout(tiny):
    root, _ = tiny
    files = annotation_files(root)
    assert len(files) >= 4
    for path in files:
        labels = read_labels(path)
        assert set(labels) <= set(range(-1, 8))
        folder = root / "cropped_aligned" / path.stem
        names = sorted(p.name for p in folder.iterdir())
        assert names and all(re.fullmatch(r"\d{5}\.jpg", name) for name in names)
        frames = [int(name[:5]) for name in names]
        assert min(frames) >= 1 and max(frames) <= len(labels)
        for name in names[:: max(1, len(names) // 3)]:
            with Image.open(folder / name) as image:
                assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (112, 112))


def test_missing_images_and_unannotated_runs(tiny):
    root, summary = tiny
    missing_annotated = 0
    for path in annotation_files(root):
        labels = np.array(read_labels(path))
        folder = root / "cropped_aligned" / path.stem
        has_image = np.array(
            [(folder / f"{i:05d}.jpg").exists() for i in range(1, len(labels) + 1)]
        )
        missing_annotated += int((~has_image & (labels >= 0)).sum())
        unannotated = labels < 0
        # A run of -1 at one end and one strictly inside every labelled video.
        assert unannotated[0] or unannotated[-1]
        inside = unannotated.copy()
        inside[: np.argmax(~unannotated)] = False
        inside[len(labels) - np.argmax(~unannotated[::-1]) :] = False
        assert inside.any(), path.name
    assert missing_annotated > 0
    reported = sum(
        summary["splits"][s]["annotated_frames_without_image"] for s in ("train", "validation")
    )
    assert reported == missing_annotated


def test_two_person_videos_have_left_and_right_folders(tiny):
    root, _ = tiny
    folders = {p.name for p in (root / "cropped_aligned").iterdir()}
    lefts = {name[: -len("_left")] for name in folders if name.endswith("_left")}
    assert lefts, "the tiny preset must contain a two-person video"
    for base in lefts:
        assert f"{base}_right" in folders and base not in folders
        split = TRAIN if (root / TRAIN / f"{base}_left.txt").exists() else VALIDATION
        left, right = (
            read_labels(root / split / f"{base}_left.txt"),
            read_labels(root / split / f"{base}_right.txt"),
        )
        assert len(left) == len(right) and left != right


def test_splits_share_no_identity_and_every_class_is_present():
    videos, _ = make_plan(SynthConfig())
    people = {
        split: {t.identity for v in videos if v.split == split for t in v.tracks}
        for split in ("train", "validation", "unlabelled")
    }
    assert not people["train"] & people["validation"]
    assert not (people["train"] | people["validation"]) & people["unlabelled"]
    for video in videos:
        if len(video.tracks) == 2:
            assert video.tracks[0].identity != video.tracks[1].identity
    for split in ("train", "validation"):
        labels = np.concatenate([t.labels for v in videos if v.split == split for t in v.tracks])
        counts = np.bincount(labels[labels >= 0], minlength=8) / (labels >= 0).sum()
        assert (counts > 0).all(), split
        assert set(np.argsort(counts)[-3:]) >= {0, 7}  # Neutral and Other dominate
        assert counts[[1, 2, 3]].max() < 0.08  # Anger, Disgust, Fear are rare


def test_unlabelled_pool_has_images_and_truth_only_outside_the_labelled_layout(tiny):
    root, summary = tiny
    pool = sorted(p.name for p in (root / "unlabelled" / "cropped_aligned").iterdir())
    truth = sorted(p.stem for p in (root / "unlabelled" / "truth").glob("*.txt"))
    assert pool and pool == truth == summary["splits"]["unlabelled"]["folders"]
    labelled = {p.stem for p in annotation_files(root)}
    assert not labelled & set(pool)
    for name in truth:
        assert set(read_labels(root / "unlabelled" / "truth" / f"{name}.txt")) <= set(range(8))


def test_summary_counts_match_the_annotation_files(tiny):
    root, summary = tiny
    saved = json.loads((root / "synth.json").read_text())
    assert saved["config"] == tiny_config(workers=1).identity_key()
    for split, folder in (("train", TRAIN), ("validation", VALIDATION)):
        labels = np.concatenate([read_labels(p) for p in sorted((root / folder).glob("*.txt"))])
        counts = list(summary["splits"][split]["class_counts"].values())
        assert counts == np.bincount(labels[labels >= 0], minlength=8).tolist()


@pytest.mark.slow
def test_same_seed_gives_identical_files_for_any_worker_count(tiny, tmp_path):
    root, _ = tiny
    generate(tmp_path / "two_workers", tiny_config(workers=2), progress=False)
    assert file_hashes(tmp_path / "two_workers") == file_hashes(root)
    generate(tmp_path / "other_seed", tiny_config(seed=1, workers=2), progress=False)
    other = file_hashes(tmp_path / "other_seed")
    reference = file_hashes(root)
    shared = set(other) & set(reference)
    assert sum(other[k] != reference[k] for k in shared) > len(shared) // 2


@pytest.mark.slow
def test_complete_dataset_is_reused_and_incomplete_one_regenerated(tmp_path):
    config = tiny_config(
        train_videos=1,
        validation_videos=1,
        unlabelled_videos=1,
        scene_videos=0,
        frames_min=20,
        frames_max=20,
    )
    out = tmp_path / "data"
    first = generate(out, config, progress=False)
    assert "reused" not in first
    stamp = (out / "synth.json").stat().st_mtime_ns
    again = generate(out, config, progress=False)
    assert again["reused"] is True and (out / "synth.json").stat().st_mtime_ns == stamp
    # As if a run had been killed before the end: the marker is there, synth.json is not.
    (out / "synth.json").unlink()
    (out / ".synth-in-progress").touch()
    assert "reused" not in generate(out, config, progress=False)
    assert not (out / ".synth-in-progress").exists()
    changed = generate(out, SynthConfig(**{**config.__dict__, "seed": 5}), progress=False)
    assert "reused" not in changed
    assert json.loads((out / "synth.json").read_text())["config"]["seed"] == 5


def test_impossible_configs_are_refused_before_anything_is_written(tmp_path):
    for bad in ({"frames_max": 5}, {"class_frequencies": [1.0, 0.5]}, {"blur_fraction": 2.0}):
        with pytest.raises(ConfigError, match="synth"):
            generate(tmp_path / "out", tiny_config(**bad), progress=False)
    assert not (tmp_path / "out").exists()


def test_refuses_a_folder_that_is_not_a_synthetic_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(DataError):
        generate(tmp_path, tiny_config(), progress=False)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_scene_video_decodes_to_declared_frames_with_boxes_inside(tiny):
    root, summary = tiny
    (scene,) = summary["scenes"]
    with av.open(str(root / scene["video"])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(frames) == scene["frames"]
    assert frames[0].shape == (scene["height"], scene["width"], 3)
    with open(root / scene["truth"]) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == scene["frames"] * scene["faces"]
    assert sorted({int(r["frame"]) for r in rows}) == list(range(1, scene["frames"] + 1))
    for row in rows:
        x0, y0, x1, y1 = (float(row[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 0 <= x0 < x1 <= scene["width"] and 0 <= y0 < y1 <= scene["height"]
        for part in ("eye_l", "eye_r", "nose", "mouth_l", "mouth_r"):
            assert x0 <= float(row[f"{part}_x"]) <= x1 and y0 <= float(row[f"{part}_y"]) <= y1
        assert -1 <= int(row["label"]) <= 7


def test_aligned_frontal_face_has_landmarks_on_the_template():
    for seed in range(5):
        person = make_identity(seed)
        image, landmarks = render_aligned_face(person)
        assert image.shape == (112, 112, 3)
        assert np.abs(landmarks - ARCFACE_TEMPLATE).max() < 3.0
        # The landmark is where the eye is drawn: the pupil is darker than the cheek below it.
        for x, y in landmarks[:2]:
            pupil = image[int(round(y)), int(round(x))].mean()
            cheek = image[int(round(y)) + 14, int(round(x))].mean()
            assert pupil < cheek - 30


def test_scene_frame_places_landmarks_by_position_scale_and_rotation():
    person = make_identity(3)
    placement = FacePlacement(person, center=(200.0, 130.0), scale=1.4, rotation=25.0)
    image, (face,) = render_scene_frame((400, 300), [placement])
    assert image.shape == (300, 400, 3)
    matrix = placement_matrix((200.0, 130.0), 1.4, 25.0)
    expected = person.landmarks @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(face.landmarks, expected, atol=1e-3)
    # Counter-clockwise rotation: the image-right eye is higher than the image-left one.
    assert face.landmarks[1, 1] < face.landmarks[0, 1] - 20
    assert (face.box[:2] <= face.landmarks.min(0)).all() and (
        face.box[2:] >= face.landmarks.max(0)
    ).all()


def test_action_units_move_the_face_as_facs_describes():
    person = make_identity(1)
    neutral = render_aligned_face(person)[1]
    smile = np.zeros(NUM_AUS, dtype=np.float32)
    smile[AU["lip_corner_pull"]] = 1.0
    frown = np.zeros(NUM_AUS, dtype=np.float32)
    frown[AU["lip_corner_depress"]] = 1.0
    from fervid.data.synth.faces import face_shapes

    corners = {
        name: face_shapes(person, aus).landmarks[3:, 1].mean()
        for name, aus in (("smile", smile), ("frown", frown), ("neutral", None))
    }
    assert corners["smile"] < corners["neutral"] - 3 < corners["frown"] - 6
    assert neutral.shape == (5, 2)
    rng = np.random.default_rng(0)
    assert all(prototype_similarity(event_pattern(7, rng)) < 0.5 for _ in range(50))
    assert prototype_similarity(event_pattern(4, rng)) > 0.8


def test_event_ramps_are_weak_but_labelled_with_the_event_class():
    event = Event(label=4, start=0, onset=10, apex=5, offset=10, peak=0.9)
    intensity = envelope(event)
    assert len(intensity) == 25 and intensity.max() == pytest.approx(0.9)
    assert intensity[0] < 0.1 and intensity[-1] < 0.1


def test_every_knob_is_documented():
    docs = (REPO / "docs" / "synthetic.md").read_text()
    missing = [name for name in SynthConfig().__dict__ if f"`{name}`" not in docs]
    assert not missing
