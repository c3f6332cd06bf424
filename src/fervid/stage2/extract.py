"""Feature extraction: the frame encoder run once over every frame of a table, into a store
(:mod:`fervid.stage2.store`).

Extraction is resumable: videos are processed in batches that never mix videos, each finished
video is recorded in ``store.json`` (atomically, after its rows are flushed), and a rerun into the
same folder skips recorded videos. Batches never mixing videos also makes a resumed store
identical to an uninterrupted one. Under torchrun each process extracts a disjoint share of the
videos into the same store.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from fervid.config import DataConfig
from fervid.data.affwild2 import read_split
from fervid.data.frames import CorruptImageCounter, FrameDataset, collate_frames
from fervid.data.table import FrameTable
from fervid.models.frame import FrameModel, load_frame_model
from fervid.runtime.dist import barrier, is_main, main_first, rank, sum_over_processes, world_size
from fervid.runtime.training import pick_device
from fervid.stage2.store import (
    FeatureStore,
    encoder_identity,
    finish_store,
    frame_model_path,
    meta_done,
    open_or_create,
    save_progress,
)
from fervid.zoo.onnx_features import onnx_encoder

log = logging.getLogger("fervid")

SAVE_EVERY_S = 0.5
"""At most this often the list of done videos is rewritten (and always at the end or on error)."""


def split_frames(data: DataConfig, split: str) -> FrameTable:
    """Every frame of the split's videos on its frame axis, sorted by video and frame: one row
    per frame from 1 to the video's last frame (its annotation file's length, or its last face
    crop if that comes later), label -1 where not annotated, ``has_image`` False where there is
    no crop. Unannotated frames with a face are context for their neighbours; frames with
    neither keep the spacing, so row distances are frame distances, as in the test-set stores
    (:func:`fervid.data.frame_lists.frame_axis`)."""
    return read_split(data.root, split, annotations=data.annotations, every_frame=True)


def extract_features(
    model: str | Path | FrameModel,
    table: FrameTable,
    out_dir: str | Path,
    batch_size: int = 128,
    workers: int = 2,
    device: str | torch.device = "cpu",
    progress: bool = True,
    dataset: FrameDataset | None = None,
    flip: bool = False,
) -> FeatureStore:
    """Run the frame encoder over every frame of ``table`` that has an image and write the store
    ``out_dir``; rerun with the same arguments to finish a killed extraction.

    ``dataset``: where the crops come from, a ``FrameDataset`` of ``table`` at the model's input
    size (default: decoded from disk; a subclass may serve crops already in memory).
    ``flip``: store the mean over each face and its mirror image (``FrameModel.embed``)."""
    onnx = onnx_encoder(model)  # an ONNX model file (fervid import onnx / export --onnx)
    if isinstance(model, FrameModel) or onnx is not None:
        frame_model = model if onnx is None else onnx
    else:
        frame_model = load_frame_model(frame_model_path(model))
    encoder = encoder_identity(model) if onnx is None else onnx.identity
    if flip:
        encoder["flip_tta"] = True
    device = pick_device(device)
    frame_model.to(device).eval()
    out = Path(out_dir)
    # process 0 creates (or checks and gathers the progress of) the store; then all open it
    main_first(lambda: open_or_create(out, table, encoder, frame_model.num_features))
    meta = json.loads((out / "store.json").read_text())
    features = np.load(out / "features.npy", mmap_mode="r+")
    logits = np.load(out / "logits.npy", mmap_mode="r+")
    present = np.load(out / "present.npy", mmap_mode="r+")
    progress_file = out / ("store.json" if world_size() == 1 else f"progress-{rank()}.json")
    if world_size() > 1:
        meta = {"done": [], "extracted_by": rank()}

    dataset = dataset or FrameDataset(table, frame_model.input_size)
    plan: list[tuple[str, bool]] = []  # (video, last batch of it) per batch
    batches: list[np.ndarray] = []
    for name, rows in my_share(table, set(meta_done(out))):
        first, stop = np.searchsorted(dataset.rows, [rows.start, rows.stop])
        chunks = [np.arange(s, min(s + batch_size, stop)) for s in range(first, stop, batch_size)]
        for number, chunk in enumerate(chunks or [np.zeros(0, np.int64)]):
            plan.append((name, number == max(len(chunks) - 1, 0)))
            batches.append(chunk)
    loader = DataLoader(
        dataset,
        batch_sampler=[chunk.tolist() for chunk in batches],
        num_workers=workers,
        collate_fn=collate_frames,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
    )
    total = sum(len(chunk) for chunk in batches)
    bar = tqdm(total=total, desc="features", unit="frame", disable=not progress)
    counter = CorruptImageCounter()
    saved_at = time.monotonic()
    threads = torch.get_num_threads()
    torch.set_num_threads(extraction_threads(device, workers))
    try:
        for (name, last), batch in zip(plan, loader, strict=True):
            counter.add(batch.corrupt)
            if len(batch.rows):
                with torch.inference_mode():
                    if onnx is not None:
                        vectors, scores = onnx.encode(batch.images, flip)
                    else:
                        images = frame_model.normalize(batch.images.to(device, non_blocking=True))
                        vectors = frame_model.embed(images, flip)
                        scores = frame_model.head(vectors)
                rows = batch.rows.numpy()
                features[rows] = vectors.float().cpu().numpy()
                logits[rows] = scores.float().cpu().numpy()
                present[rows] = True
            bar.update(len(batch.rows) + len(batch.corrupt))
            if last:
                meta["done"].append(name)
                if time.monotonic() - saved_at > SAVE_EVERY_S:
                    save_progress(progress_file, meta, features, logits, present)
                    saved_at = time.monotonic()
    finally:
        torch.set_num_threads(threads)
        bar.close()
        save_progress(progress_file, meta, features, logits, present)
    corrupt = sum_over_processes(counter.count)
    if corrupt and is_main():
        log.warning(
            "%d images could not be decoded; they are stored as frames with no face", corrupt
        )
    barrier()  # every process's rows are flushed
    main_first(lambda: finish_store(out, table))
    return FeatureStore.open(out)


def my_share(table: FrameTable, done: set[str]) -> list[tuple[str, slice]]:
    """The videos of ``table`` not in ``done`` that this process extracts: with several
    processes, each takes a disjoint share, balanced by frame count (longest first, each to the
    least loaded process) and the same on every process."""
    pending = [
        (table.videos[video], rows)
        for video, rows in table.video_slices()
        if table.videos[video] not in done
    ]
    if world_size() == 1:
        return pending
    load = [0] * world_size()
    owner: dict[str, int] = {}
    for name, rows in sorted(pending, key=lambda item: (-(item[1].stop - item[1].start), item[0])):
        least = min(range(world_size()), key=lambda r: (load[r], r))
        owner[name] = least
        load[least] += rows.stop - rows.start
    return [(name, rows) for name, rows in pending if owner[name] == rank()]


def extraction_threads(device: torch.device, workers: int) -> int:
    """Torch threads while extracting: on CPU, one core is left to each DataLoader worker
    (decoding JPEGs costs about as much as a small encoder's forward pass, and OpenMP threads
    that must share a core with a worker stall each other)."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or workers == 0:
        return threads
    return max(1, min(threads, (os.cpu_count() or 1) - workers))
