"""Stage 2 costs: feature extraction throughput and memory, temporal inference cost, and memory
while evaluating a 300k-frame split. Frame encoder: the demo recipe's (fervid_cnn at 64x64, channels-last as inference runs it),
random weights (speed does not depend on them).

1. extraction: ``--videos`` folders of ``--frames-per-video`` real 112x112 JPEGs go through
   ``extract_features`` (DataLoader workers decode, the main process encodes, rows go to the
   memory-mapped store). Its frames/s is compared, in the same process, with the encoder's
   forward rate on in-memory tensors (target >= 85%), with decoding alone (the DataLoader and no
   encoder), and with extraction from crops already in memory (the store writer without JPEG
   decoding). It runs twice, in fresh processes, on a quarter of the videos and on all of
   them: peak memory must not grow with the number of videos.
2. temporal inference: seconds per frame of ``predict_windows`` (default TemporalConfig,
   overlapping windows, stride T/2) over random features vs the encoder's forward per frame,
   with 1 torch thread and with the default count (target < 10%).
3. evaluation memory: a store of ``--eval-frames`` random features (float16, written in chunks)
   and ``smoothing.compare`` over it (frame model, moving average with the window chosen from
   the default list, temporal encoder), in a fresh process: peak memory vs the store's size.

Memory is read from /proc: "owned" = anonymous memory of the process and its DataLoader workers
(``Pss_Anon``: pages shared after a fork counted once), sampled every 0.25 s, before the work
and at its peak; ``VmHWM`` = peak resident set of the main process, which also counts shared
libraries and the pages of the memory-mapped store the kernel keeps mapped (page cache:
reclaimable, not owned).

    python benchmarks/temporal.py [--out benchmarks/out/temporal.json] [--eval-frames 300000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fervid.config import TemporalConfig, load_config
from fervid.data.affwild2 import read_video_frames
from fervid.data.frames import FrameDataset, collate_frames, load_crop
from fervid.data.table import FrameTable
from fervid.models.frame import FrameModel
from fervid.models.temporal import TemporalEncoder, predict_windows
from fervid.stage2.compare import compare, format_comparison
from fervid.stage2.extract import extract_features, extraction_threads
from fervid.stage2.store import write_store

BATCH = load_config("demo").eval.batch_size  # extraction's default batch
ENCODER = {"sha256": "0" * 64, "backbone": "random", "input_size": 64, "source": "benchmark"}


# ----------------------------------------------------------------------------------------------
# Measuring


def proc_kib(pid: int | str, field: str, name: str = "status") -> int:
    """A ``field: N kB`` line of /proc/PID/status (or smaps_rollup); 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def owned_kib(pid: int) -> int:
    """Anonymous memory of ``pid`` and its children (DataLoader workers), each page shared
    after a fork counted once (proportional set size)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return sum(proc_kib(p, "Pss_Anon", "smaps_rollup") for p in [pid, *kids])


class MemorySampler:
    """Baseline and peak of :func:`owned_kib` for this process, sampled in a thread."""

    def __init__(self, every_s: float = 0.25):
        self.every_s = every_s
        self.baseline_kib = self.peak_kib = owned_kib(os.getpid())
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(owned_kib(os.getpid()))
            self.peak_kib = max(self.peak_kib, self.samples[-1])
            time.sleep(self.every_s)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> dict:
        half = len(self.samples) // 2
        return {
            "owned_before_mib": self.baseline_kib / 1024,
            "owned_peak_mib": self.peak_kib / 1024,
            "owned_growth_mib": (self.peak_kib - self.baseline_kib) / 1024,
            "owned_peak_first_half_mib": max(self.samples[:half] or [0]) / 1024,
            "owned_peak_second_half_mib": max(self.samples[half:] or [0]) / 1024,
            "vm_hwm_mib": proc_kib("self", "VmHWM") / 1024,
        }


def encoder_forward_rate(model: FrameModel, images: torch.Tensor, seconds: float = 6.0) -> float:
    """Frames/s of ``features`` + ``head`` on in-memory uint8 crops at the input size, in
    batches of extraction's default size."""
    batch = images[:BATCH]
    with torch.inference_mode():
        model.head(model.features(model.normalize(batch)))
        frames, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            model.head(model.features(model.normalize(batch)))
            frames += len(batch)
    return frames / (time.perf_counter() - started)


# ----------------------------------------------------------------------------------------------
# 1. Extraction (run in a fresh process per size)


def write_jpegs(root: Path, videos: int, frames: int, seed: int = 0) -> None:
    """Face-sized 112x112 JPEGs: a smooth random image per video plus per-frame noise."""
    rng = np.random.default_rng(seed)
    for video in range(videos):
        folder = root / "cropped_aligned" / f"video{video:03d}"
        if folder.is_dir() and len(os.listdir(folder)) == frames:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        base = np.asarray(
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize(
                (112, 112), Image.BICUBIC
            ),
            dtype=np.float32,
        )
        for frame in range(1, frames + 1):
            pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{frame:05d}.jpg", quality=90)


def loader_rate(table: FrameTable, workers: int) -> float:
    """Frames/s of decoding alone: the DataLoader extraction uses, with no encoder."""
    loader = DataLoader(
        FrameDataset(table, 64), batch_size=BATCH, num_workers=workers, collate_fn=collate_frames
    )
    started = time.perf_counter()
    frames = sum(len(batch.rows) for batch in loader)
    return frames / (time.perf_counter() - started)


class CropsInMemory(FrameDataset):
    """The crops of a table decoded once, served from memory: extraction without JPEG decoding,
    to time the store writer itself."""

    def __init__(self, table: FrameTable, size: int):
        super().__init__(table, size)
        self.crops = [
            torch.from_numpy(load_crop(table.image_path(int(r)), size)) for r in self.rows
        ]

    def __getitem__(self, index: int):
        row = int(self.rows[index])
        return self.crops[index], int(self.table.label[row]), row


def extraction_run(root: Path, videos: int, workers: int, out: Path) -> dict:
    """Forward rate (before and after), decoding rate, then extraction, in this process, with
    the torch thread count extraction uses."""
    torch.manual_seed(0)
    model = FrameModel(load_config("demo").model).use_channels_last().eval()
    table = read_video_frames(root, [f"video{v:03d}" for v in range(videos)])
    rows = range(min(256, len(table)))
    sample = torch.stack([torch.from_numpy(load_crop(table.image_path(r), 64)) for r in rows])
    default_threads = torch.get_num_threads()
    forward_default = encoder_forward_rate(model, sample)
    threads = extraction_threads(torch.device("cpu"), workers)
    torch.set_num_threads(threads)
    forward_before = encoder_forward_rate(model, sample)
    decode = loader_rate(table, workers)
    with MemorySampler() as memory:
        started = time.perf_counter()
        extract_features(model, table, out, batch_size=BATCH, workers=workers, progress=False)
        seconds = time.perf_counter() - started
    in_memory = CropsInMemory(table, model.input_size)
    started = time.perf_counter()
    extract_features(
        model, table, out.with_name(out.name + "-mem"), BATCH, 0, dataset=in_memory, progress=False
    )
    writer = len(table) / (time.perf_counter() - started)
    forward = (forward_before + encoder_forward_rate(model, sample)) / 2
    extraction = len(table) / seconds
    shared_cpu_bound = 1 / (1 / forward + 1 / decode)  # both stages on the same cores
    return {
        "videos": videos,
        "frames": len(table),
        "workers": workers,
        "torch_threads": threads,
        "encoder_forward_frames_per_s": forward,
        f"encoder_forward_frames_per_s_{default_threads}_threads": forward_default,
        "decode_only_frames_per_s": decode,
        "extraction_frames_per_s": extraction,
        "extraction_vs_forward": extraction / forward,
        "extraction_vs_slower_stage": extraction / min(forward, decode),
        "shared_cpu_bound_frames_per_s": shared_cpu_bound,
        "extraction_vs_shared_cpu_bound": extraction / shared_cpu_bound,
        "writer_from_memory_frames_per_s": writer,
        "writer_from_memory_vs_forward": writer / forward,
        **memory.report(),
    }


# ----------------------------------------------------------------------------------------------
# 2. Temporal inference cost


def temporal_cost(frames: int, threads: int) -> dict:
    """Seconds per frame of whole-video temporal inference (default TemporalConfig) and of the
    frame encoder's forward pass, measured alternately in this process with ``threads``."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    encoder = FrameModel(load_config("demo").model).use_channels_last().eval()
    crops = torch.randint(0, 256, (256, 3, 64, 64), dtype=torch.uint8)
    rng = np.random.default_rng(0)
    features = rng.normal(size=(frames, encoder.num_features)).astype(np.float16)
    edges = np.arange(0, frames + 1, 2000)  # videos of 2000 frames
    slices = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    config = TemporalConfig()
    model = TemporalEncoder(features.shape[1], config).eval()
    predict_windows(model, features, np.ones(frames, bool), slices[:1])  # warm up
    forward = encoder_forward_rate(encoder, crops, seconds=4)
    started = time.perf_counter()
    predict_windows(model, features, np.ones(frames, bool), slices, batch_size=64)
    per_frame = (time.perf_counter() - started) / edges[-1]
    forward = (forward + encoder_forward_rate(encoder, crops, seconds=4)) / 2
    return {
        "frames": int(edges[-1]),
        "torch_threads": threads,
        "config": {
            k: getattr(config, k)
            for k in ("window", "eval_stride", "width", "layers", "heads", "ffn_width")
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "temporal_ms_per_frame": per_frame * 1e3,
        "encoder_ms_per_frame": 1e3 / forward,
        "temporal_vs_encoder": per_frame * forward,
    }


# ----------------------------------------------------------------------------------------------
# 3. Evaluation memory (run in a fresh process)


class RandomFeatures:
    """Sliceable stand-in for a (rows, width) array: random rows, generated per slice."""

    def __init__(self, rows: int, width: int, seed: int = 0):
        self.shape = (rows, width)
        self.seed = seed

    def __getitem__(self, rows: slice) -> np.ndarray:
        rng = np.random.default_rng([self.seed, rows.start])
        return rng.normal(size=(rows.stop - rows.start, self.shape[1])).astype(np.float16)


def synthetic_split(frames: int, seed: int = 0) -> FrameTable:
    """Videos of ~5000 frames (like Aff-Wild2), labels in runs, 1% of frames with no face."""
    rng = np.random.default_rng(seed)
    lengths = np.full(max(frames // 5000, 1), frames // max(frames // 5000, 1))
    lengths[-1] += frames - lengths.sum()
    labels = np.repeat(rng.integers(0, 8, frames // 50 + 1), 50)[:frames]
    return FrameTable(
        videos=[f"video{v:03d}" for v in range(len(lengths))],
        patterns=["{}"] * len(lengths),
        video=np.repeat(np.arange(len(lengths)), lengths),
        frame=np.concatenate([np.arange(1, n + 1) for n in lengths]),
        label=labels,
        has_image=rng.random(frames) > 0.01,
    )


def evaluation_run(store: Path, frames: int) -> dict:
    if not (store / "store.json").exists():
        table = synthetic_split(frames)
        logits = np.random.default_rng(1).normal(size=(frames, 8)).astype(np.float32)
        write_store(store, table, ENCODER, RandomFeatures(frames, 1280), logits)
    torch.manual_seed(0)
    model = TemporalEncoder(1280, TemporalConfig()).eval()
    with MemorySampler() as memory:
        started = time.perf_counter()
        result = compare(store, model, batch_size=64)
        seconds = time.perf_counter() - started
    print(format_comparison(result), file=sys.stderr)
    return {
        "frames": frames,
        "store_features_mib": (store / "features.npy").stat().st_size / 2**20,
        "seconds": seconds,
        **memory.report(),
        "smoothing_window": result.attrs["smoothing_window"],
    }


# ----------------------------------------------------------------------------------------------


def in_fresh_process(*args: str) -> dict:
    command = [sys.executable, __file__, "--child", *args]
    output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/out/temporal.json")
    parser.add_argument("--workdir", help="keep the generated JPEGs and stores here")
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--frames-per-video", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--temporal-frames", type=int, default=20_000)
    parser.add_argument("--eval-frames", type=int, default=300_000)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "extract":
            root, videos, workers, out = rest
            result = extraction_run(Path(root), int(videos), int(workers), Path(out))
        else:
            store, frames = rest
            result = evaluation_run(Path(store), int(frames))
        print(json.dumps(result))
        return

    load_at_start = os.getloadavg()[0]  # other processes on the machine skew the rates
    work = Path(args.workdir or tempfile.mkdtemp(prefix="fervid-temporal-"))
    write_jpegs(work / "jpegs", args.videos, args.frames_per_video)
    extraction = []
    for videos in (max(args.videos // 4, 1), args.videos):
        out = work / f"store-{videos}"
        for old in (out, out.with_name(out.name + "-mem")):
            shutil.rmtree(old, ignore_errors=True)
        extraction.append(
            in_fresh_process(
                "extract", str(work / "jpegs"), str(videos), str(args.workers), str(out)
            )
        )
        run = extraction[-1]
        print(
            f"extraction, {run['videos']} videos ({run['frames']} frames), {run['workers']} workers, "
            f"{run['torch_threads']} torch threads: {run['extraction_frames_per_s']:.0f} frames/s; "
            f"forward alone {run['encoder_forward_frames_per_s']:.0f} "
            f"({100 * run['extraction_vs_forward']:.0f}%), decoding alone "
            f"{run['decode_only_frames_per_s']:.0f} ({100 * run['extraction_vs_slower_stage']:.0f}% "
            f"of the slower stage, {100 * run['extraction_vs_shared_cpu_bound']:.0f}% of both "
            f"sharing the CPUs); from crops in memory {run['writer_from_memory_frames_per_s']:.0f} "
            f"({100 * run['writer_from_memory_vs_forward']:.0f}% of forward); owned memory {run['owned_before_mib']:.0f} MiB before, peak "
            f"{run['owned_peak_mib']:.0f} MiB (first half of the run "
            f"{run['owned_peak_first_half_mib']:.0f}, second half "
            f"{run['owned_peak_second_half_mib']:.0f}); VmHWM {run['vm_hwm_mib']:.0f} MiB"
        )
    temporal = []
    for threads in sorted({1, torch.get_num_threads()}):
        temporal.append(temporal_cost(args.temporal_frames, threads))
        cost = temporal[-1]
        print(
            f"temporal inference ({threads} torch threads): {cost['temporal_ms_per_frame']:.3f} "
            f"ms/frame vs encoder {cost['encoder_ms_per_frame']:.3f} ms/frame "
            f"({100 * cost['temporal_vs_encoder']:.1f}%)"
        )
    evaluation = in_fresh_process("evaluate", str(work / "eval-store"), str(args.eval_frames))
    print(
        f"evaluation of {evaluation['frames']} frames ({evaluation['store_features_mib']:.0f} MiB of "
        f"features): {evaluation['seconds']:.0f} s; owned memory {evaluation['owned_before_mib']:.0f} MiB "
        f"before, peak {evaluation['owned_peak_mib']:.0f} MiB; VmHWM {evaluation['vm_hwm_mib']:.0f} MiB"
    )
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1min_at_start_and_end": [load_at_start, os.getloadavg()[0]],
        },
        "extraction": extraction,
        "temporal_inference": temporal,
        "evaluation": evaluation,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
