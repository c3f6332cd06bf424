"""Live input: latency from a frame's arrival to its row on stdout, and frames dropped.

The clip is fed to ``fervid predict - --live`` at its own frame rate, as a camera or a stream
would deliver it: this script re-muxes it to MPEG-TS on a pipe, each packet sent at its
timestamp (``--pace FILE`` does only that, for tests and for piping into other commands). The
model is the demo architecture (fervid_cnn + Temporal Encoder, untrained weights: speed does not
depend on them). Reported: rows, frames dropped to keep up, latency (each row's ``latency_s``:
frame decoded -> row written) median / p95 / max, and the clip's real-time frame rate beside
the rate rows came out at.

Usage: python benchmarks/live.py [--video PATH] [--out benchmarks/out/live.json]
       python benchmarks/live.py --pace VIDEO | fervid predict - --live ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve()
DEFAULT_VIDEO = HERE.parents[2] / "shared" / "data" / "WolfgangLanger_Pexels.mp4"


def pace(video: Path) -> None:
    """Re-mux ``video``'s video stream to MPEG-TS on stdout, each packet at its timestamp."""
    source = av.open(str(video))
    target = av.open(sys.stdout.buffer, "w", format="mpegts")
    stream = target.add_stream_from_template(source.streams.video[0])
    started = time.monotonic()
    for packet in source.demux(source.streams.video[0]):
        if packet.dts is None:
            continue
        delay = started + float(packet.dts * packet.time_base) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        packet.stream = stream
        target.mux(packet)
        sys.stdout.buffer.flush()
    target.close()


def measure(video: Path) -> dict:
    sys.path.insert(0, str(HERE.parent))
    from predict import default_architecture_model

    with tempfile.TemporaryDirectory(prefix="fervid-live-") as scratch:
        model = default_architecture_model(Path(scratch))
        pacer = subprocess.Popen(
            [sys.executable, str(HERE), "--pace", str(video)], stdout=subprocess.PIPE
        )
        command = [sys.executable, "-m", "fervid", "-q", "predict", "-", "--live"]
        command += ["--model", str(model), "--out", str(Path(scratch) / "out")]
        started = time.monotonic()
        result = subprocess.run(command, stdin=pacer.stdout, capture_output=True, text=True)
        seconds = time.monotonic() - started
        pacer.wait()
        if result.returncode != 0:
            sys.exit(result.stderr[-2000:])
        summary = json.loads((Path(scratch) / "out" / "stdin.json").read_text())
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    latency = np.array([row["latency_s"] for row in rows], dtype=np.float64)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
    return {
        "video": str(video),
        "video_fps": fps,
        "frames": summary["frames_decoded"],
        "rows": len(rows),
        "dropped_frames": summary["dropped_frames"],
        "latency_s": {
            "median": float(np.median(latency)),
            "p95": float(np.percentile(latency, 95)),
            "max": float(latency.max()),
        },
        "rows_per_second": len(rows) / seconds,
        "process_seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pace", type=Path, help="only re-mux this video to stdout, paced")
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--out", type=Path, default=HERE.parent / "out" / "live.json")
    args = parser.parse_args()
    if args.pace:
        try:
            pace(args.pace)
        except (BrokenPipeError, av.error.FFmpegError):  # the reader went away: stop quietly
            sys.stderr.close()
        return
    result = measure(args.video)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    latency = result["latency_s"]
    print(
        f"{result['frames']} frames at {result['video_fps']:.2f} fps, fed in real time: "
        f"{result['rows']} rows, {result['dropped_frames']} frames dropped; latency frame in -> "
        f"row out: median {1000 * latency['median']:.0f} ms, p95 {1000 * latency['p95']:.0f} "
        f"ms, max {1000 * latency['max']:.0f} ms"
    )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
