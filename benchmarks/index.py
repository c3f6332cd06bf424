"""Time ``read_split`` on an Aff-Wild2-sized annotation tree.

Generates (in a temporary folder, in /dev/shm when it has room, or ``--workdir`` to keep and
reuse it) 548 videos with 2.7M label lines in all, 70 of them in Validation_Set, and an image
folder per video with an empty placeholder ``NNNNN.jpg`` for ~99% of the frames (``read_split`` only lists folders, it never
opens images). Then, each in a fresh process:

- cold: ``read_split`` with an empty cache (parse every file, list every folder, write cache),
- warm: ``read_split`` again (cache hit),
- memory: peak RSS of the cold+warm process, and tracemalloc's peak of a cold read.

``--images sample`` creates complete image folders for one video in eight and only the first and
last frame for the others: ~8x faster to generate, but the cold time then undercounts the
directory listing. The default, ``--images all``, creates ~2.7M empty files (about a minute in
/dev/shm; ~2.7 GB of RAM while it exists). A tree in RAM, or just written, is in the kernel's
directory cache, so "cold" here means "no fervid cache", not "nothing read from disk yet".

    python benchmarks/index.py [--out benchmarks/out/index.json] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fervid.labels import ABAW_HEADER


def generate(root: Path, videos: int, lines: int, validation: int, images: str, seed: int) -> dict:
    """Write the tree; return what was made."""
    rng = np.random.default_rng(seed)
    lengths = rng.uniform(0.2, 1.8, videos)
    lengths = np.maximum((lengths / lengths.sum() * lines).astype(int), 60)
    lengths[-1] += lines - lengths.sum()
    files = 0
    for number, length in enumerate(lengths):
        name = f"{number}-30-1280x720" + ("_left" if number % 40 == 1 else "")
        split = "Validation_Set" if number < validation else "Train_Set"
        labels = _labels(rng, int(length))
        folder = root / "EXPR_Recognition_Challenge" / split
        folder.mkdir(parents=True, exist_ok=True)
        text = ABAW_HEADER + "\n" + "\n".join(map(str, labels.tolist())) + "\n"
        (folder / f"{name}.txt").write_text(text)
        present = rng.random(length) > 0.01
        present[-int(rng.integers(1, 20)) :] = False  # faces lost at the end of the video
        present[0] = True
        if images == "sample" and number % 8:
            present[1 : np.flatnonzero(present)[-1]] = False
        files += _placeholders(root / "cropped_aligned" / name, np.flatnonzero(present) + 1)
    return {"videos": videos, "label_lines": int(lengths.sum()), "image_files": files}


def _labels(rng: np.random.Generator, length: int) -> np.ndarray:
    """Runs of one class (as in real videos), ~10% of them unannotated (-1)."""
    labels = np.empty(length, dtype=np.int64)
    start = 0
    while start < length:
        run = int(rng.integers(20, 400))
        labels[start : start + run] = -1 if rng.random() < 0.1 else rng.integers(0, 8)
        start += run
    return labels


def _placeholders(folder: Path, frames: np.ndarray) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    prefix, flags = f"{folder}{os.sep}", os.O_CREAT | os.O_WRONLY
    for frame in frames.tolist():
        os.close(os.open(f"{prefix}{frame:05d}.jpg", flags, 0o644))
    return len(frames)


def _scratch(files: int) -> Path:
    """A temporary folder, in RAM (/dev/shm) when it has room: creating millions of files
    there takes ~15 us each instead of 50-300 us on this project's VM disks."""
    try:
        stats = os.statvfs("/dev/shm")
        if stats.f_favail > files * 1.1 and stats.f_bavail * stats.f_frsize > files * 2048:
            return Path(tempfile.mkdtemp(prefix="fervid-index-", dir="/dev/shm"))
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="fervid-index-"))


def measure(root: str, traced: bool) -> dict:
    """Run in a child process: read both splits cold then warm (or once under tracemalloc)."""
    from fervid.data.affwild2 import read_split

    if traced:
        import tracemalloc

        tracemalloc.start()
        rows = sum(len(read_split(root, split, cache=False)) for split in ("train", "validation"))
        return {"rows": rows, "tracemalloc_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20}
    result: dict = {}
    for phase in ("cold", "warm"):
        for split in ("train", "validation"):
            start = time.perf_counter()
            table = read_split(root, split)
            result[f"{phase}_{split}_s"] = time.perf_counter() - start
            result[f"{split}_rows"] = len(table)
            result[f"{split}_without_image"] = int((~table.has_image).sum())
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _child(root: Path, cache: Path, traced: bool) -> dict:
    command = [sys.executable, __file__, "--measure", str(root)] + (["--traced"] if traced else [])
    env = dict(os.environ, FERVID_CACHE_DIR=str(cache))
    output = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/out/index.json")
    parser.add_argument("--workdir", help="keep the generated tree here and reuse it next time")
    parser.add_argument("--videos", type=int, default=548)
    parser.add_argument("--lines", type=int, default=2_700_000)
    parser.add_argument("--validation", type=int, default=70)
    parser.add_argument("--images", choices=("all", "sample"), default="all")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.traced)))
        return

    workdir = Path(args.workdir) if args.workdir else _scratch(args.lines)
    spec = {k: getattr(args, k) for k in ("videos", "lines", "validation", "images")}
    marker = workdir / "generated.json"
    try:
        if marker.exists() and json.loads(marker.read_text())["spec"] == spec:
            made = json.loads(marker.read_text())["made"]
            made["generate_s"] = None
        else:
            shutil.rmtree(workdir / "tree", ignore_errors=True)
            start = time.perf_counter()
            made = generate(workdir / "tree", **spec, seed=0)
            made["generate_s"] = time.perf_counter() - start
            marker.write_text(json.dumps({"spec": spec, "made": made}))
        print(f"tree: {made}", flush=True)
        cache = workdir / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        result = {"spec": spec, "tree": made, **_child(workdir / "tree", cache, traced=False)}
        result.update(_child(workdir / "tree", cache, traced=True))
        result["cache_mb"] = sum(f.stat().st_size for f in cache.glob("*.npz")) / 2**20
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    for key, value in result.items():
        print(f"{key:>28}: {value:.3f}" if isinstance(value, float) else f"{key:>28}: {value}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
