"""Writing the dataset: the Aff-Wild2 layout, worker processes, the summary in ``synth.json``.

``synth.json`` is written last, atomically: a folder without it (or with the in-progress marker)
is never taken for a complete dataset, and the next run regenerates it.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from fervid.data.synth.config import SynthConfig
from fervid.data.synth.identity import CROP_SIZE
from fervid.data.synth.nuisance import (
    CropFinisher,
    background_texture,
    occluder_shapes,
    sample_nuisance,
)
from fervid.data.synth.plan import ScenePlan, VideoPlan, check_config, make_plan, person
from fervid.data.synth.render import render_aligned_face
from fervid.data.synth.scenes import render_scene
from fervid.data.synth.timeline import au_trace
from fervid.errors import DataError
from fervid.labels import ABAW_HEADER, CLASS_NAMES
from fervid.runtime.io import atomic_write_text

GENERATOR_VERSION = 1
"""Bumped whenever the same config would produce different files."""
SUMMARY_FILE = "synth.json"
IN_PROGRESS = ".synth-in-progress"
OUTPUTS = ("cropped_aligned", "EXPR_Recognition_Challenge", "unlabelled", "scenes")
ANNOTATION_DIRS = {"train": "Train_Set", "validation": "Validation_Set"}
MARGIN = 24
"""Extra background around a crop, so that the crop window can wander over it."""


def crop_root(out: Path, split: str) -> Path:
    return (
        out / "unlabelled" / "cropped_aligned" if split == "unlabelled" else out / "cropped_aligned"
    )


def annotation_path(out: Path, split: str, folder: str) -> Path:
    if split == "unlabelled":
        return out / "unlabelled" / "truth" / f"{folder}.txt"
    return out / "EXPR_Recognition_Challenge" / ANNOTATION_DIRS[split] / f"{folder}.txt"


def load_summary(out_dir: str | Path, config: SynthConfig | None = None) -> dict[str, Any] | None:
    """The summary of a complete dataset in ``out_dir`` (made with ``config``, when given)."""
    out = Path(out_dir)
    path = out / SUMMARY_FILE
    if not path.is_file() or (out / IN_PROGRESS).exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if saved.get("generator") != GENERATOR_VERSION:
        return None
    if config is not None and saved.get("config") != json.loads(json.dumps(config.identity_key())):
        return None
    return saved.get("summary")


def generate(out_dir: str | Path, config: SynthConfig, progress: bool = True) -> dict[str, Any]:
    """Write the synthetic dataset of ``config`` into ``out_dir`` and return its summary.

    If ``out_dir`` already holds a complete dataset of the same config (and generator version),
    nothing is written and the saved summary is returned with ``"reused": True``.
    """
    out = Path(out_dir)
    check_config(config)
    saved = load_summary(out, config)
    if saved is not None:
        return {**saved, "reused": True}
    _prepare(out)
    start = time.perf_counter()
    videos, scenes = make_plan(config)
    jobs: list[tuple[SynthConfig, str, VideoPlan | ScenePlan]] = [
        (config, str(out), v) for v in videos
    ]
    jobs += [(config, str(out), s) for s in scenes]
    # Longest jobs first so that the workers finish together; the output does not depend on it.
    jobs.sort(key=lambda job: -_cost(job[2]))
    total = sum(_cost(job[2]) for job in jobs)
    with tqdm(total=total, unit="frame", desc="synth", disable=not progress) as bar:
        if config.workers <= 1:
            for job in jobs:
                bar.update(_run_job(job))
        else:
            context = multiprocessing.get_context()
            with context.Pool(config.workers) as pool:
                for frames in pool.imap_unordered(_run_job, jobs):
                    bar.update(frames)
    _write_annotations(out, videos)
    summary = _summary(config, videos, scenes, time.perf_counter() - start)
    record = {"generator": GENERATOR_VERSION, "config": config.identity_key(), "summary": summary}
    atomic_write_text(out / SUMMARY_FILE, json.dumps(record, indent=2) + "\n")
    (out / IN_PROGRESS).unlink()
    return summary


def _prepare(out: Path) -> None:
    """Clear the outputs of an older or interrupted run; refuse folders that are not ours."""
    if out.exists() and any(out.iterdir()):
        ours = (out / SUMMARY_FILE).exists() or (out / IN_PROGRESS).exists()
        if not ours:
            raise DataError(
                out,
                "exists and is not empty, and holds no synthetic dataset; choose an empty or new folder",
            )
        (out / IN_PROGRESS).touch()
        (out / SUMMARY_FILE).unlink(missing_ok=True)
        for name in OUTPUTS:
            if (out / name).exists():
                shutil.rmtree(out / name)
    out.mkdir(parents=True, exist_ok=True)
    (out / IN_PROGRESS).touch()


def _cost(plan: VideoPlan | ScenePlan) -> int:
    if isinstance(plan, ScenePlan):
        return plan.frames
    return sum(int(track.has_image.sum()) for track in plan.tracks)


def _run_job(job: tuple[SynthConfig, str, VideoPlan | ScenePlan]) -> int:
    config, out, plan = job
    if isinstance(plan, ScenePlan):
        return render_scene(config, Path(out), plan)
    return render_video(config, Path(out), plan)


def render_video(config: SynthConfig, out: Path, video: VideoPlan) -> int:
    """Write the aligned crops of every track of ``video``; returns the number of images."""
    size, scale = CROP_SIZE, config.supersample
    texture = background_texture(
        np.random.default_rng([config.seed, 2, video.index, 99]), size + MARGIN, size + MARGIN
    )
    background = Image.fromarray(texture).resize(
        ((size + MARGIN) * scale, (size + MARGIN) * scale), Image.Resampling.NEAREST
    )
    written = 0
    for track in video.tracks:
        face = person(config, track.identity)
        aus = au_trace(config, track.events, track.frames, face.gain, face.resting, track.seed)
        nuisance = sample_nuisance(
            config, np.random.default_rng(track.seed + [2]), track.frames, face.skin
        )
        finish = CropFinisher(nuisance, np.random.default_rng(track.seed + [3]), size)
        folder = crop_root(out, video.split) / track.folder
        folder.mkdir(parents=True, exist_ok=True)
        for frame in np.flatnonzero(track.has_image):
            dy, dx = nuisance.background_shift[frame]
            yaw, pitch, roll = nuisance.pose[frame]
            crop, _ = render_aligned_face(
                face,
                aus[frame],
                yaw=float(yaw),
                pitch=float(pitch),
                roll=float(roll),
                gaze=tuple(nuisance.gaze[frame]),
                jitter=tuple(float(v) for v in nuisance.jitter[frame]),
                background=background.crop(
                    (dx * scale, dy * scale, (dx + size) * scale, (dy + size) * scale)
                ),
                supersample=config.supersample,
                extra_shapes=occluder_shapes(
                    int(nuisance.occluder[frame]),
                    nuisance.occluder_place[frame],
                    nuisance.occluder_colour[frame],
                ),
            )
            image = finish(crop, frame)
            image.save(folder / f"{frame + 1:05d}.jpg", quality=int(nuisance.quality[frame]))
            written += 1
    return written


def _write_annotations(out: Path, videos: list[VideoPlan]) -> None:
    for video in videos:
        for track in video.tracks:
            labels = track.truth if video.split == "unlabelled" else track.labels
            text = ABAW_HEADER + "\n" + "\n".join(str(int(v)) for v in labels) + "\n"
            atomic_write_text(annotation_path(out, video.split, track.folder), text)


def _summary(
    config: SynthConfig, videos: list[VideoPlan], scenes: list[ScenePlan], seconds: float
) -> dict[str, Any]:
    splits: dict[str, Any] = {}
    for split in ("train", "validation", "unlabelled"):
        tracks = [t for v in videos if v.split == split for t in v.tracks]
        labels = np.concatenate([t.truth if split == "unlabelled" else t.labels for t in tracks])
        counts = np.bincount(labels[labels >= 0], minlength=len(CLASS_NAMES))
        images = int(sum(t.has_image.sum() for t in tracks))
        annotated_missing = sum(int((~t.has_image & (t.labels >= 0)).sum()) for t in tracks)
        splits[split] = {
            "videos": sum(v.split == split for v in videos),
            "folders": sorted(t.folder for t in tracks),
            "identities": len({t.identity for t in tracks}),
            "frames": int(len(labels)),
            "images": images,
            "frames_without_image": int(len(labels)) - images,
            "annotated_frames_without_image": annotated_missing if split != "unlabelled" else 0,
            "unannotated_frames": int((labels < 0).sum()),
            "class_counts": {name: int(c) for name, c in zip(CLASS_NAMES, counts, strict=True)},
        }
    scene_entries = [
        {
            "name": s.name,
            "video": f"scenes/{s.name}.mp4",
            "truth": f"scenes/{s.name}.csv",
            "frames": s.frames,
            "fps": s.fps,
            "width": s.width,
            "height": s.height,
            "faces": len(s.identities),
        }
        for s in scenes
    ]
    images = sum(splits[s]["images"] for s in splits) + sum(s.frames for s in scenes)
    return {
        "splits": splits,
        "scenes": scene_entries,
        "images": images,
        "seconds": round(seconds, 2),
        "images_per_second": round(images / max(seconds, 1e-9), 1),
        "workers": config.workers,
    }
