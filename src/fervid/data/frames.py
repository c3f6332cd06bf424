"""Torch datasets over a FrameTable: decoded, resized uint8 crops."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from fervid.data.images import load_rgb
from fervid.data.table import FrameTable
from fervid.errors import DataError

log = logging.getLogger("fervid")


def load_crop(path: str, size: int) -> np.ndarray:
    """An image as a (3, size, size) uint8 array; DataError if it cannot be decoded."""
    image = load_rgb(path)
    if image.shape[0] != size or image.shape[1] != size:
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
    return np.ascontiguousarray(image.transpose(2, 0, 1))


class FrameDataset(Dataset):
    """Rows of a table that have an image. Item = (uint8 image (3,S,S), label, row) or ``None``
    when the image cannot be decoded; ``collate_frames`` drops and counts those."""

    def __init__(self, table: FrameTable, size: int, shard: tuple[int, int] = (0, 1)):
        self.table = table
        self.rows = np.flatnonzero(table.has_image)[shard[0] :: shard[1]]
        self.size = size

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        row = int(self.rows[index])
        path = self.table.image_path(row)
        try:
            image = load_crop(path, self.size)
        except DataError as error:
            return ("corrupt", str(error))
        return torch.from_numpy(image), int(self.table.label[row]), row


@dataclass
class FrameBatch:
    images: torch.Tensor  # uint8 (B,3,S,S)
    labels: torch.Tensor  # int64 (B,)
    rows: torch.Tensor  # int64 (B,), table rows
    corrupt: list[str]  # messages of items that could not be decoded

    def pin_memory(self) -> FrameBatch:
        self.images = self.images.pin_memory()
        return self


def collate_frames(items) -> FrameBatch:
    good = [item for item in items if item[0] != "corrupt"]
    corrupt = [item[1] for item in items if item[0] == "corrupt"]
    if not good:
        empty = torch.zeros(0, dtype=torch.int64)
        return FrameBatch(torch.zeros(0, 3, 1, 1, dtype=torch.uint8), empty, empty, corrupt)
    images, labels, rows = zip(*good, strict=True)
    return FrameBatch(torch.stack(images), torch.tensor(labels), torch.tensor(rows), corrupt)


class CorruptImageCounter:
    """Counts images skipped because they could not be decoded; logs the first few."""

    def __init__(self, show: int = 5):
        self.count = 0
        self.show = show

    def add(self, messages: list[str]) -> None:
        for message in messages:
            if self.count < self.show:
                log.warning("skipped an unreadable image: %s", message)
            self.count += 1


@dataclass
class DecodedFrames:
    """All decodable images of a table held in memory: ``images[i]`` is table row ``rows[i]``."""

    images: torch.Tensor  # uint8 (N,3,S,S)
    labels: torch.Tensor  # int64 (N,)
    rows: torch.Tensor  # int64 (N,)
    corrupt: int


def decode_all(
    table: FrameTable,
    size: int,
    workers: int = 2,
    batch_size: int = 256,
    desc: str = "decode",
    progress: bool = True,
) -> DecodedFrames:
    """Decode every image of ``table`` once (in parallel workers) into one uint8 tensor."""
    dataset = FrameDataset(table, size)
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_frames
    )
    images = torch.empty(len(dataset), 3, size, size, dtype=torch.uint8)
    labels = torch.empty(len(dataset), dtype=torch.int64)
    rows = torch.empty(len(dataset), dtype=torch.int64)
    counter = CorruptImageCounter()
    filled = 0
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress):
        n = len(batch.labels)
        images[filled : filled + n] = batch.images
        labels[filled : filled + n] = batch.labels
        rows[filled : filled + n] = batch.rows
        filled += n
        counter.add(batch.corrupt)
    return DecodedFrames(images[:filled], labels[:filled], rows[:filled], counter.count)


def fits_in_memory(table: FrameTable, size: int, limit_gb: float) -> bool:
    return int(table.has_image.sum()) * 3 * size * size <= limit_gb * 2**30


class UnlabelledViews(Dataset):
    """Unlabelled frames for stage 1. Item ``(index, seed)`` -> (image, strong view, true label
    or -1, index): the image is read once; the strong view (RandAugment + Cutout) is made here
    in the worker with the item's own seed, the weak view later on the whole batch."""

    def __init__(self, source: FrameTable | DecodedFrames, size: int, strong):
        self.source = source
        self.size = size
        self.strong = strong
        if isinstance(source, FrameTable):
            self.rows = np.flatnonzero(source.has_image)
            self.truth = source.label[self.rows].astype(np.int64)
        else:
            self.rows = source.rows.numpy()
            self.truth = source.labels.numpy()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: tuple[int, int]):
        index, seed = item
        if isinstance(self.source, DecodedFrames):
            image = self.source.images[index]
        else:
            try:
                image = torch.from_numpy(
                    load_crop(self.source.image_path(int(self.rows[index])), self.size)
                )
            except DataError as error:
                return ("corrupt", str(error))
        strong = self.strong(image, torch.Generator().manual_seed(seed))
        return image, strong, int(self.truth[index]), index


@dataclass
class UnlabelledBatch:
    images: torch.Tensor  # uint8 (B,3,S,S), to be weakly augmented
    strong: torch.Tensor  # uint8 (B,3,S,S), strongly augmented
    truth: torch.Tensor  # int64 (B,), -1 where unknown
    indices: torch.Tensor  # int64 (B,), positions in the pool
    corrupt: list[str]


def collate_unlabelled(items) -> UnlabelledBatch:
    good = [item for item in items if item[0] != "corrupt"]
    corrupt = [item[1] for item in items if item[0] == "corrupt"]
    images, strong, truth, indices = zip(*good, strict=True)
    return UnlabelledBatch(
        torch.stack(images),
        torch.stack(strong),
        torch.tensor(truth),
        torch.tensor(indices),
        corrupt,
    )
