"""What stage 1 reads: labelled training frames, the validation split, unlabelled faces."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from fervid.config import Config
from fervid.data import SPLIT_SOURCE
from fervid.data.frames import (
    DecodedFrames,
    FrameBatch,
    FrameDataset,
    UnlabelledViews,
    collate_frames,
    collate_unlabelled,
    decode_all,
    fits_in_memory,
)
from fervid.data.samplers import ClassBalancedSampler, UnlabelledSampler
from fervid.data.sources import hidden_label_frames, labelled_split, split_pool
from fervid.data.table import FrameTable
from fervid.data.transforms import StrongAugment
from fervid.data.unlabelled import read_unlabelled_sources
from fervid.errors import ConfigError
from fervid.evaluate import prediction_table
from fervid.labels import NUM_CLASSES
from fervid.models.frame import FrameModel
from fervid.models.inference import frame_probabilities
from fervid.runtime.dist import rank, world_size

log = logging.getLogger("fervid")


def loader_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    """The seed of a DataLoader's own generator in an epoch (``stream`` tells loaders apart)."""
    return int(np.random.SeedSequence([seed, epoch, rank, stream]).generate_state(1, np.uint64)[0])


class LabelledBatches:
    """Batches of labelled frames in the order a sampler draws them, from decoded frames held
    in memory (a gather per batch) or streamed from disk by DataLoader workers."""

    def __init__(
        self,
        source: DecodedFrames | FrameDataset,
        sampler: ClassBalancedSampler,
        batch_size: int,
        workers: int = 2,
        pin_memory: bool = False,
        generator: torch.Generator | None = None,
    ):
        self.source = source
        self.sampler = sampler
        self.batch_size = batch_size
        self.loader = None
        if isinstance(source, FrameDataset):
            self.loader = DataLoader(
                source,
                batch_size=batch_size,
                sampler=sampler,
                generator=generator,
                num_workers=workers,
                collate_fn=collate_frames,
                pin_memory=pin_memory,
                persistent_workers=workers > 0,
                prefetch_factor=4 if workers > 0 else None,
                drop_last=True,
            )

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def __iter__(self) -> Iterator[FrameBatch]:
        if self.loader is not None:
            yield from self.loader
            return
        indices = torch.from_numpy(
            self.sampler.global_indices()[self.sampler.rank :: self.sampler.world_size]
        )
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            chosen = indices[start : start + self.batch_size]
            yield FrameBatch(
                self.source.images[chosen], self.source.labels[chosen], self.source.rows[chosen], []
            )


class Stage1Data:
    """Builds the labelled batches (class-uniform), the unlabelled batches (``mu`` x batch,
    image + strong view) and the validation split. Decoded crops stay in memory when they fit
    in ``data.cache_limit_gb``; otherwise DataLoader workers stream them from disk.

    Every random draw depends on (seed, epoch, rank) only, never on when a DataLoader iterator
    is made (persistent workers make theirs once per process: in the first epoch of a run, or
    of a resumed run): the samplers draw from their own seeds, each unlabelled item carries the
    seed of its strong view, and each DataLoader takes its workers' base seed from its own
    generator, reseeded by :meth:`set_epoch`, instead of from torch's global RNG, whose draws
    (dropout) must not shift with the iterator's creation (issue 17)."""

    def __init__(self, config: Config, progress: bool = True):
        self.config = config
        data, train, size = config.data, config.train, config.model.input_size
        budget = data.cache_limit_gb if data.cache_images else 0.0

        train_table = labelled_split(data, "train").with_images()
        self.validation = labelled_split(data, config.eval.split)
        in_memory = fits_in_memory(train_table, size, budget)
        if in_memory:
            source = decode_all(
                train_table, size, data.workers, desc="decode train", progress=progress
            )
            labels = source.labels.numpy()
            budget -= source.images.numel() / 2**30
        else:
            source = FrameDataset(train_table, size)
            labels = train_table.label[source.rows]
        self.sampler = ClassBalancedSampler(
            labels,
            train.steps_per_epoch * train.accumulate * train.batch_size,
            seed=train.seed,
            rank=rank(),
            world_size=world_size(),
            balanced=train.class_balanced,
        )
        self.class_counts = np.bincount(labels, minlength=NUM_CLASSES)
        """Labelled training frames per class (for ``train.loss``)."""
        pin = torch.cuda.is_available() and train.device != "cpu"
        self.generators = [torch.Generator(), torch.Generator()]  # labelled, unlabelled loader
        self.labelled = LabelledBatches(
            source, self.sampler, train.batch_size, data.workers, pin, self.generators[0]
        )
        self.validation_decoded = (
            decode_all(
                self.validation, size, data.workers, desc="decode validation", progress=progress
            )
            if fits_in_memory(self.validation, size, budget)
            else None
        )
        log.info(
            "labelled: %d training frames; validation: %d annotated frames",
            len(labels),
            len(self.validation),
        )

        self.unlabelled = None
        self.num_unlabelled = 0
        if config.ssl.enabled:
            pool = unlabelled_table(config)
            views = UnlabelledViews(
                decode_all(pool, size, data.workers, desc="decode unlabelled", progress=progress)
                if fits_in_memory(pool, size, budget)
                else pool,
                size,
                StrongAugment(config.ssl.strong_ops, config.ssl.cutout),
            )
            self.num_unlabelled = len(views)
            batch = config.ssl.mu * train.batch_size
            self.unlabelled_sampler = UnlabelledSampler(
                len(views),
                train.steps_per_epoch * train.accumulate * batch,
                seed=train.seed,
                rank=rank(),
                world_size=world_size(),
            )
            self.unlabelled = DataLoader(
                views,
                batch_size=batch,
                sampler=self.unlabelled_sampler,
                generator=self.generators[1],
                num_workers=data.workers,
                collate_fn=collate_unlabelled,
                pin_memory=pin,
                persistent_workers=data.workers > 0,
                drop_last=True,
                prefetch_factor=4 if data.workers > 0 else None,
            )
            log.info("unlabelled: %d faces, %d per step", self.num_unlabelled, batch)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        for stream, generator in enumerate(self.generators):
            generator.manual_seed(loader_seed(self.config.train.seed, epoch, rank(), stream))
        self.sampler.set_epoch(epoch)
        if self.unlabelled is not None:
            self.unlabelled_sampler.set_epoch(epoch)

    def predict_validation(
        self, model: FrameModel, device: torch.device, progress: bool
    ) -> pd.DataFrame:
        probs, known = frame_probabilities(
            model,
            self.validation,
            device,
            self.config.eval.batch_size,
            self.config.data.workers,
            self.validation_decoded,
            progress,
        )
        return prediction_table(self.validation, probs, known)


def unlabelled_table(config: Config) -> FrameTable:
    """The unlabelled pool a config names: ``ssl.unlabelled`` (``split:NAME`` entries: a split's
    frames), the dataset's own pool, and the train frames whose labels ``data.labelled_fraction``
    or ``data.labels_per_class`` hide (their labels only as truth)."""
    splits = [s[len(SPLIT_SOURCE) :] for s in config.ssl.unlabelled if s.startswith(SPLIT_SOURCE)]
    specs = [s for s in config.ssl.unlabelled if not s.startswith(SPLIT_SOURCE)]
    pool = Path(config.data.root) / "unlabelled"
    if config.ssl.dataset_pool and pool.is_dir():
        specs.append(str(pool))
    # split:train already holds every train frame, the hidden ones among them
    hidden = None if "train" in splits else hidden_label_frames(config.data)
    if not specs and not splits and hidden is None:
        raise ConfigError(
            "ssl.enabled is true but there is no unlabelled source: set ssl.unlabelled "
            f"(folders, videos, split:NAME), provide {pool}, or hide train labels "
            "(data.labels_per_class or data.labelled_fraction)"
        )
    tables = [read_unlabelled_sources(specs)] if specs else []
    for name in dict.fromkeys(splits):
        tables.append(split_pool(config.data, name))
        log.info("unlabelled: %d frames of the %s split", len(tables[-1]), name)
        if name == config.eval.split:
            log.warning(
                "the %s frames are in the unlabelled pool: the %s score is transductive",
                name,
                name,
            )
    if hidden is not None:
        log.info("label-scarce: %d train frames join the unlabelled pool", len(hidden))
        tables.append(hidden)
    return FrameTable.concat(tables)
