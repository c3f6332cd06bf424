"""Time the video front end of ``fervid predict`` on one clip: decoding, face detection (per
backend and detection size), alignment, and the three together.

Every figure is frames per second of wall time and per CPU second (``process_time``, all
threads): on a shared machine the wall figure moves with the load (recorded as ``loadavg``), the
CPU figure much less. Detection runs on frames decoded beforehand, one frame per call unless
``batch`` says otherwise; ``faces_found`` is the fraction of frames with at least one face.

    python benchmarks/detect.py [--video PATH] [--frames N] [--out benchmarks/out/detect.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fervid.runtime.io import atomic_write_text
from fervid.video.align import align_faces, alignment_matrices
from fervid.video.decode import probe, read_frames
from fervid.video.detect import build_detector, landmarks_of
from fervid.video.faces import track_faces

DEFAULT_VIDEO = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "WolfgangLanger_Pexels.mp4"
)
DETECTION_RUNS = [  # backend, max_side (None: full size), options
    ("retinaface", None, {}),
    ("retinaface", 480, {}),
    ("retinaface", 320, {}),
    ("retinaface", 320, {"batch": 8}),
    ("retinaface", 320, {"threads": 2}),
    ("retinaface", 256, {}),
    ("yunet", None, {}),
    ("yunet", 480, {}),
    ("yunet", 320, {}),
    ("yunet", 256, {}),
]


def timed(frames: int, work: Callable[[], object]) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "frames": frames,
        "fps_wall": round(frames / wall, 1),
        "fps_per_cpu_second": round(frames / cpu, 1),
        "_result": result,
    }


def bench_decode(video: Path, limit: int) -> dict:
    def decode():
        for frame in read_frames(video):
            if frame.index + 1 >= limit:
                break

    return timed(min(limit, probe(video).frames), decode)


def bench_detection(frames: list[np.ndarray], name: str, max_side, options: dict) -> dict:
    options = dict(options)
    batch = options.pop("batch", 1)
    detector = build_detector(name, max_side=max_side, **options)
    detector.detect(frames[:batch])  # warm-up: session start, anchors

    def detect():
        found = []
        for start in range(0, len(frames), batch):
            found += detector.detect(frames[start : start + batch])
        return found

    record = timed(len(frames), detect)
    found = record.pop("_result")
    record.update(
        backend=name,
        max_side=max_side or max(frames[0].shape[:2]),
        batch=batch,
        threads=options.get("threads", 1),
        faces_found=round(float(np.mean([len(f) > 0 for f in found])), 4),
    )
    return record


def bench_align(frames: list[np.ndarray], landmarks: list[np.ndarray]) -> dict:
    pairs = [(f, lm) for f, lm in zip(frames, landmarks, strict=True) if len(lm)]
    pil = timed(len(pairs), lambda: [align_faces(f, lm) for f, lm in pairs])
    torch_record = timed(len(pairs), lambda: [align_with_torch(f, lm) for f, lm in pairs])
    for record in (pil, torch_record):
        record.pop("_result")
    return {"pil": pil, "torch_grid_sample": torch_record}


def align_with_torch(frame: np.ndarray, landmarks: np.ndarray, size: int = 112) -> torch.Tensor:
    """The alternative to PIL that was measured: affine_grid + grid_sample on the whole frame."""
    height, width = frame.shape[:2]
    crop_to_frame = np.linalg.inv(_homogeneous(alignment_matrices(landmarks, size)))
    # pixel centres -> grid_sample's [-1, 1] coordinates (align_corners=False)
    to_normalised = np.array(
        [[2 / width, 0, 1 / width - 1], [0, 2 / height, 1 / height - 1], [0, 0, 1]]
    )
    from_normalised = np.array(
        [[size / 2, 0, size / 2 - 0.5], [0, size / 2, size / 2 - 0.5], [0, 0, 1]]
    )
    theta = torch.tensor(
        (to_normalised @ crop_to_frame @ from_normalised)[:, :2], dtype=torch.float32
    )
    image = torch.from_numpy(frame).permute(2, 0, 1)[None].float().expand(len(theta), -1, -1, -1)
    grid = F.affine_grid(theta, [len(theta), 3, size, size], align_corners=False)
    crops = F.grid_sample(image, grid, mode="bilinear", align_corners=False)
    return crops.round().clamp(0, 255).to(torch.uint8)


def bench_pipeline(video: Path, limit: int, detect_every: int) -> dict:
    reader = (frame for _, frame in zip(range(limit), read_frames(video)))
    faces = track_faces(reader, build_detector(), detect_every=detect_every)
    record = timed(min(limit, probe(video).frames), lambda: sum(1 for _ in faces))
    record.pop("_result")
    record["what"] = "decode + retinaface@320 + track + align, one Python thread"
    record["detect_every"] = detect_every
    return record


def _homogeneous(matrices: np.ndarray) -> np.ndarray:
    bottom = np.tile([[[0.0, 0.0, 1.0]]], (len(matrices), 1, 1))
    return np.concatenate([matrices, bottom], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=10**9, help="use at most this many frames")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/detect.json"))
    args = parser.parse_args()

    info = probe(args.video)
    results = {
        "video": args.video.name,
        "size": [info.width, info.height],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }
    decode = bench_decode(args.video, args.frames)
    decode.pop("_result")
    results["decode"] = decode
    print(f"decode: {decode['fps_wall']} fps ({decode['fps_per_cpu_second']} per CPU s)")

    frames = [f.image for _, f in zip(range(args.frames), read_frames(args.video))]
    results["detect"] = []
    for name, max_side, options in DETECTION_RUNS:
        record = bench_detection(frames, name, max_side, options)
        results["detect"].append(record)
        print(
            f"detect {name:10s} side {record['max_side']:4d} batch {record['batch']} "
            f"threads {record['threads']}: {record['fps_wall']:6.1f} fps "
            f"({record['fps_per_cpu_second']:6.1f} per CPU s), faces in "
            f"{100 * record['faces_found']:.1f}% of frames"
        )

    detector = build_detector()
    landmarks = [landmarks_of(found) for found in detector.detect(frames)]
    results["align"] = bench_align(frames, landmarks)
    for method, record in results["align"].items():
        print(
            f"align {method}: {record['fps_wall']} faces/s ({record['fps_per_cpu_second']} per CPU s)"
        )

    results["pipeline"] = [bench_pipeline(args.video, args.frames, every) for every in (1, 2)]
    for record in results["pipeline"]:
        print(
            f"pipeline, detect_every={record['detect_every']}: {record['fps_wall']} fps "
            f"({record['fps_per_cpu_second']} per CPU s)"
        )
    results["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
