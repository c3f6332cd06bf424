"""Raw scene videos: moving faces in a larger frame, encoded as h264 mp4, with per-frame truth.

Each scene writes ``scenes/<name>.mp4`` (libx264, yuv420p, one encoder thread so that the bytes
do not depend on the machine's core count) and ``scenes/<name>.csv`` with one row per frame and
face: ``frame`` (1-based), ``face`` (0 = leftmost), the face box, the 5 landmarks and the label.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from fervid import schema
from fervid.data.synth.config import SynthConfig
from fervid.data.synth.nuisance import background_texture
from fervid.data.synth.plan import ScenePlan, person
from fervid.data.synth.render import FacePlacement, render_scene_frame
from fervid.data.synth.timeline import au_trace, event_labels, smooth_noise
from fervid.runtime.io import atomic_path

CSV_COLUMNS = (
    schema.FRAME,
    schema.FACE,
    *schema.BOX_COLUMNS,
    *schema.LANDMARK_COLUMNS,
    schema.LABEL,
)


def face_paths(scene: ScenePlan, config: SynthConfig) -> list[dict[str, np.ndarray]]:
    """Per face, per frame: centre (n, 2), scale (n,), rotation, yaw, pitch (n,) each."""
    rng = np.random.default_rng([config.seed, 4, scene.index, 50])
    n, t = scene.frames, np.arange(scene.frames) / scene.fps
    faces = len(scene.identities)
    paths = []
    for face in range(faces):
        phase = rng.uniform(0, 2 * np.pi, 5)
        periods = rng.uniform(4.0, 9.0, 4)
        if scene.layout == "moving":
            scale = rng.uniform(1.15, 1.3) * (
                1 + 0.22 * np.sin(2 * np.pi * t / periods[2] + phase[2])
            )
            max_rotation = 15.0
        else:
            scale = np.full(n, rng.uniform(1.0, 1.15) if faces == 1 else rng.uniform(1.05, 1.25))
            max_rotation = 8.0
        rotation = max_rotation * np.sin(2 * np.pi * t / periods[3] + phase[3])
        angle = np.radians(max_rotation)
        half_w = scale.max() * (55 * np.cos(angle) + 75 * np.sin(angle)) + 8
        half_h = scale.max() * (75 * np.cos(angle) + 55 * np.sin(angle)) + 8
        left, right = face * scene.width / faces + half_w, (face + 1) * scene.width / faces - half_w
        top, bottom = half_h, scene.height - half_h
        mid_x, mid_y = (left + right) / 2, (top + bottom) / 2
        amp_x, amp_y = max(0.0, (right - left) / 2), max(0.0, (bottom - top) / 2)
        x = mid_x + amp_x * np.sin(2 * np.pi * t / periods[0] + phase[0])
        y = mid_y + amp_y * np.sin(2 * np.pi * t / periods[1] + phase[1])
        pose = smooth_noise(rng, n, 2, 2 * scene.fps) * np.array(
            [config.pose_yaw, config.pose_pitch]
        )
        paths.append(
            {
                "center": np.stack([x, y], 1),
                "scale": scale,
                "rotation": rotation,
                "yaw": np.clip(pose[:, 0], -30, 30),
                "pitch": np.clip(pose[:, 1], -20, 20),
            }
        )
    return paths


def render_scene(config: SynthConfig, out: Path, scene: ScenePlan) -> int:
    """Write the scene's mp4 and csv; returns the number of frames."""
    people = [person(config, identity) for identity in scene.identities]
    aus = [
        au_trace(
            config,
            events,
            scene.frames,
            p.gain,
            p.resting,
            [config.seed, 4, scene.index, k],
            scene.fps,
        )
        for k, (p, events) in enumerate(zip(people, scene.events, strict=True))
    ]
    labels = [event_labels(events, scene.frames) for events in scene.events]
    paths = face_paths(scene, config)
    rng = np.random.default_rng([config.seed, 4, scene.index, 60])
    background = background_texture(rng, scene.height, scene.width)
    gaze = [np.clip(0.5 * smooth_noise(rng, scene.frames, 2, scene.fps / 3), -1, 1) for _ in people]
    folder = out / "scenes"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    with atomic_path(folder / f"{scene.name}.mp4") as video_path:
        import av  # only scene videos need the encoder

        container = av.open(str(video_path), mode="w", format="mp4")
        stream = container.add_stream(
            "libx264", rate=scene.fps, options={"crf": "20", "preset": "veryfast"}
        )
        stream.width, stream.height, stream.pix_fmt = scene.width, scene.height, "yuv420p"
        stream.codec_context.thread_count = 1
        for frame in range(scene.frames):
            placements = [
                FacePlacement(
                    person=p,
                    center=tuple(path["center"][frame]),
                    scale=float(path["scale"][frame]),
                    rotation=float(path["rotation"][frame]),
                    yaw=float(path["yaw"][frame]),
                    pitch=float(path["pitch"][frame]),
                    aus=trace[frame],
                    gaze=tuple(g[frame]),
                )
                for p, path, trace, g in zip(people, paths, aus, gaze, strict=True)
            ]
            image, drawn = render_scene_frame(
                (scene.width, scene.height), placements, background, config.supersample
            )
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
            for face, truth in enumerate(drawn):
                box = np.clip(truth.box, 0, [scene.width, scene.height, scene.width, scene.height])
                values = [*box, *truth.landmarks.ravel()]
                rows.append(
                    [frame + 1, face, *(f"{v:.2f}" for v in values), int(labels[face][frame])]
                )
        for packet in stream.encode():
            container.mux(packet)
        container.close()
    with (
        atomic_path(folder / f"{scene.name}.csv") as csv_path,
        open(csv_path, "w", newline="") as handle,
    ):
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    return scene.frames
