"""Run a frame model over every image of a FrameTable, in table order."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from fervid.data.frames import CorruptImageCounter, DecodedFrames, FrameDataset, collate_frames
from fervid.data.table import FrameTable
from fervid.models.frame import FrameModel
from fervid.runtime.dist import all_reduce_sum_, rank, world_size


@torch.no_grad()
def frame_probabilities(
    model: FrameModel,
    table: FrameTable,
    device: torch.device,
    batch_size: int = 256,
    workers: int = 2,
    decoded: DecodedFrames | None = None,
    progress: bool = True,
    flip: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities for every row of ``table`` and a mask of rows that got one
    (rows without an image, or whose image cannot be decoded, get zeros and ``False``).
    In a multi-process run each process predicts its share and all get the whole result.
    ``flip``: horizontal-flip test-time augmentation (``FrameModel.embed``)."""
    was_training = model.training
    model.eval()
    probs = np.zeros((len(table), model.head.out_features), dtype=np.float32)
    known = np.zeros(len(table), dtype=bool)
    if decoded is not None:
        mine = torch.arange(rank(), len(decoded.rows), world_size())  # this process's share
        batches = (
            (decoded.images[mine[s : s + batch_size]], decoded.rows[mine[s : s + batch_size]], [])
            for s in range(0, len(mine), batch_size)
        )
        total = -(-len(mine) // batch_size)
    else:
        loader = DataLoader(
            FrameDataset(table, model.input_size, shard=(rank(), world_size())),
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=collate_frames,
        )
        batches = ((b.images, b.rows, b.corrupt) for b in loader)
        total = len(loader)
    counter = CorruptImageCounter()
    for images, rows, corrupt in tqdm(
        batches, total=total, desc="predict", leave=False, disable=not progress
    ):
        counter.add(corrupt)
        if len(rows) == 0:
            continue
        logits = model.head(model.embed(model.normalize(images.to(device)), flip))
        probs[rows.numpy()] = logits.float().softmax(dim=1).cpu().numpy()
        known[rows.numpy()] = True
    model.train(was_training)
    if world_size() > 1:  # every process predicted a disjoint share of rows: add them up
        probs = all_reduce_sum_(torch.from_numpy(probs)).numpy()
        known = all_reduce_sum_(torch.from_numpy(known.astype(np.int32))).numpy() > 0
    return probs, known
