"""Time the generation of the synthetic dataset.

Generates the default demo dataset (or ``--preset tiny``) into a temporary folder (or ``--dir``,
kept afterwards) and prints images per second and the total time. The load average before and
after is recorded too: on a shared machine other processes slow the run down.

    python benchmarks/synth_speed.py [--preset default|tiny] [--workers N] [--out benchmarks/out/synth_speed.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

from fervid.data.synth import SynthConfig, generate, tiny_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("default", "tiny"), default="default")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dir", help="generate here and keep the dataset (default: a temporary folder)"
    )
    parser.add_argument("--out", help="also write the results as JSON to this file")
    args = parser.parse_args()

    base = SynthConfig() if args.preset == "default" else tiny_config()
    config = dataclasses.replace(base, seed=args.seed, workers=args.workers)
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="fervid-synth-"))
    load_before = os.getloadavg()
    start = time.perf_counter()
    summary = generate(folder, config, progress=False)
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    if not args.dir:
        shutil.rmtree(folder)
    if summary.get("reused"):
        print(
            f"{folder} already held this dataset; nothing was generated (remove it to time a run)"
        )
        return
    splits = summary["splits"]
    result = {
        "preset": args.preset,
        "workers": args.workers,
        "images": summary["images"],
        "crops": {name: split["images"] for name, split in splits.items()},
        "scene_frames": sum(scene["frames"] for scene in summary["scenes"]),
        "seconds": round(seconds, 2),
        "images_per_second": round(summary["images"] / seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(
        f"{result['images']} images ({result['scene_frames']} scene frames) in {seconds:.1f} s: "
        f"{result['images_per_second']:.0f} images/s with {args.workers} workers, "
        f"{cpu:.0f} CPU-seconds, load average {load_before[0]:.1f} -> {load_after[0]:.1f}"
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
