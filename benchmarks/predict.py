"""fervid predict speed and memory on a CPU.

End to end on WolfgangLanger_Pexels.mp4 (640x360, 24 fps) with the architecture `fervid demo`
exports (the demo recipe's frame model + Temporal Encoder; --recipe for another), untrained
weights (speed does not depend on the weights), against the detector alone on the same frames, in the same run. Targets: >= 72
frames/s (3x real time) and >= 70% of the detector-alone rate, each round of end to end
against a detector-alone run just before it (medians of --repeats rounds are reported). Also the breakdown into decode /
detect / align / encode / temporal, and peak memory (RSS) of predict on generated 640x360 videos
of growing length (each in its own process), which should stay flat.

Usage: python benchmarks/predict.py [--video PATH] [--lengths 30,120] [--out benchmarks/out/predict.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fervid.config import load_config, to_dict
from fervid.models.frame import FrameModel
from fervid.models.temporal import TemporalEncoder
from fervid.predict import PredictOptions, Predictor
from fervid.runtime.checkpoint import save_weights
from fervid.video.align import align_faces
from fervid.video.decode import read_frames
from fervid.video.detect import build_detector

DEFAULT_VIDEO = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "WolfgangLanger_Pexels.mp4"
)


def default_architecture_model(folder: Path, recipe: str = "demo") -> Path:
    """A recipe's frame model + Temporal Encoder with untrained weights, as one model file."""
    config = load_config(recipe)
    frame = FrameModel(config.model)
    temporal = TemporalEncoder(frame.num_features, config.temporal)
    state = {f"frame.{k}": v for k, v in frame.state_dict().items()}
    state.update({f"temporal.{k}": v for k, v in temporal.state_dict().items()})
    meta = {
        "kind": "video",
        "frame": {"config": to_dict(config), "sha256": "untrained"},
        "geometry": {"crop_size": 112, "input_size": config.model.input_size},
        "trained_on_synthetic": False,
        "temporal": {"config": to_dict(config.temporal), "feature_dim": frame.num_features},
    }
    return save_weights(folder / "default_architecture", state, meta)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def detector_alone_fps(detector, frames: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
    started = time.perf_counter()
    detections = [detector.detect([image])[0] for image in frames]
    return rate(len(frames), time.perf_counter() - started), detections


def breakdown(video: Path, model_path: Path, repeats: int, device: str = "cpu") -> dict:
    """Each stage alone once, then ``repeats`` rounds of (detector alone, end to end) so that
    every end-to-end figure has a detector figure measured right next to it."""
    started = time.perf_counter()
    frames = [f.image for f in read_frames(video)]
    decode = rate(len(frames), time.perf_counter() - started)
    detector = build_detector()
    _, detections = detector_alone_fps(detector, frames)
    started = time.perf_counter()
    crops = [align_faces(image, found) for image, found in zip(frames, detections, strict=True)]
    align = rate(len(frames), time.perf_counter() - started)
    predictor = Predictor(model_path, PredictOptions(device=device))
    batch = torch.from_numpy(np.concatenate(crops)).to(predictor.device)
    started = time.perf_counter()
    features = []
    for start in range(0, len(batch), 64):
        features.append(predictor.model.frame_outputs(batch[start : start + 64])[1].cpu().numpy())
    encode = rate(len(batch), time.perf_counter() - started)
    features = np.concatenate(features).astype(np.float16)
    started = time.perf_counter()
    predictor.model.track_probabilities(features, np.ones(len(features), bool))
    temporal = rate(len(features), time.perf_counter() - started)
    detect, end_to_end = [], []
    for _ in range(repeats):
        detect.append(detector_alone_fps(detector, frames)[0])
        started = time.perf_counter()
        prediction = predictor.run(video)
        end_to_end.append(rate(prediction.summary["frames_decoded"], time.perf_counter() - started))
    ratios = [e / d for e, d in zip(end_to_end, detect, strict=True)]
    return {
        "frames": len(frames),
        "decode_fps": decode,
        "detect_fps": float(np.median(detect)),
        "align_fps": align,
        "encode_faces_per_s": encode,
        "temporal_frames_per_s": temporal,
        "end_to_end_fps": float(np.median(end_to_end)),
        "end_to_end_vs_detector": float(np.median(ratios)),
        "real_time_factor": float(np.median(end_to_end)) / 24.0,
        "rounds": {"detect_fps": detect, "end_to_end_fps": end_to_end, "ratio": ratios},
        "targets": {"end_to_end_fps": 72, "end_to_end_vs_detector": 0.7},
    }


def make_video(path: Path, seconds: int, fps: int = 24) -> Path:
    """A 640x360 h264 video: a real face clip looped (so every frame has a face)."""
    import av

    source = [f.image for f in read_frames(DEFAULT_VIDEO, every=2)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(seconds * fps):
            image = source[index % len(source)]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def peak_memory(video: Path, model: Path, every: int) -> dict:
    """Run predict in a fresh process; its peak RSS in MiB."""
    code = (
        "import resource, sys, time\n"
        "from fervid.predict import Predictor, PredictOptions\n"
        f"p = Predictor({str(model)!r}, PredictOptions(every={every}))\n"
        "t = time.perf_counter()\n"
        f"r = p.run({str(video)!r})\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, r.summary['frames_decoded'], time.perf_counter() - t)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    return {"peak_rss_mib": float(output[0]), "frames": int(output[1]), "seconds": float(output[2])}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument(
        "--lengths", default="30,120", help="seconds of generated video for the memory curve"
    )
    parser.add_argument(
        "--every", type=int, default=4, help="frame step for the memory runs (keeps them short)"
    )
    parser.add_argument("--recipe", default="demo", help="whose architecture (default: demo)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of detector alone + end to end"
    )
    parser.add_argument(
        "--device", default="cpu", help="where faces are encoded: cpu (default), cuda, auto"
    )
    parser.add_argument("--out", default="benchmarks/out/predict.json")
    args = parser.parse_args()
    if not args.video.exists():
        sys.exit(f"{args.video} not found (pass --video)")
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model = default_architecture_model(scratch, args.recipe)
        results["breakdown"] = breakdown(args.video, model, args.repeats, args.device)
        results["device"] = args.device
        b = results["breakdown"]
        rounds = ", ".join(
            f"{e:.1f} ({r:.0%} of {d:.0f})"
            for e, d, r in zip(*(b["rounds"][k] for k in ("end_to_end_fps", "detect_fps", "ratio")))
        )
        print(
            f"rounds: end to end fps (share of the detector alone): {rounds}\n"
            f"median: end to end {b['end_to_end_fps']:.1f} fps ({b['real_time_factor']:.1f}x real time, target 3x); "
            f"{b['end_to_end_vs_detector']:.0%} of the detector alone (target 70%)\n"
            f"decode {b['decode_fps']:.0f} fps, detect {b['detect_fps']:.0f} fps, align {b['align_fps']:.0f} fps, "
            f"encode {b['encode_faces_per_s']:.0f} faces/s, temporal {b['temporal_frames_per_s']:.0f} frames/s"
        )
        curve = []
        for seconds in [int(s) for s in args.lengths.split(",")]:
            video = make_video(scratch / f"long_{seconds}s.mp4", seconds)
            point = {"video_seconds": seconds, **peak_memory(video, model, args.every)}
            curve.append(point)
            print(
                f"{seconds:5d} s video: peak RSS {point['peak_rss_mib']:.0f} MiB ({point['frames']} frames decoded, every {args.every})"
            )
            video.unlink()
        results["memory_curve"] = curve
        results["own_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
