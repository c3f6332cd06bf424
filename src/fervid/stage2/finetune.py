"""Stage 2 with a fine-tuned encoder: the frame encoder learns together with the Temporal Encoder.

With ``temporal.finetune_encoder`` each training window is read as face crops instead of stored
features: the crops of the window's frames go through the frame encoder (with gradients), and
its features take the place of the stored ones. The encoder starts from ``temporal.frame_model``
and learns at ``encoder_lr_scale`` times the Temporal Encoder's rate; its own head keeps a
per-frame loss (``frame_loss``) so the frame model stays usable on its own. Normalisation layers
keep their stage-1 statistics (a batch of windows holds few videos, so batch statistics would be
those of a handful of faces).

Because the features change while training, validation re-extracts the validation split with the
current encoder, which is written next to the temporal model as ``encoder.safetensors``: a frame
model file like stage 1's, which ``fervid features``, ``fervid evaluate`` and ``fervid export``
take.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from fervid.config import Config
from fervid.data.frames import CorruptImageCounter, FrameBatch, FrameDataset, collate_frames
from fervid.data.table import FrameTable
from fervid.errors import ConfigError, DataError
from fervid.models.frame import FrameModel, load_frame_model
from fervid.models.temporal import WindowBatch, Windows
from fervid.runtime.checkpoint import load_weights, save_weights
from fervid.runtime.dist import barrier, is_main, main_first, world_size
from fervid.stage2.extract import extract_features, split_frames
from fervid.stage2.store import FeatureStore, frame_model_path, same_frames

ENCODER_FILE = "encoder.safetensors"


class FeaturesAndLogits(nn.Module):
    """The frame encoder as one module whose forward gives both its features and its head's
    logits (what DistributedDataParallel needs: one forward per step)."""

    def __init__(self, encoder: FrameModel):
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vectors = self.encoder.features(images)
        return vectors, self.encoder.head(vectors)


class EncoderFinetuning:
    """The encoder being fine-tuned, the crops of the training windows, and validation stores
    re-extracted with the current encoder."""

    def __init__(self, config: Config, train_store: FeatureStore, device: torch.device):
        cfg = config.temporal
        if not cfg.frame_model:
            raise ConfigError(
                "temporal.finetune_encoder needs temporal.frame_model: the stage-1 run (or frame "
                "model file) to start the encoder from"
            )
        self.config = config
        self.device = device
        self.source = frame_model_path(cfg.frame_model)
        self.source_meta = load_weights(self.source)[1]
        self.encoder = load_frame_model(self.source)
        if not config.train.channels_last:
            self.encoder = self.encoder.to(memory_format=torch.contiguous_format)
            self.encoder.memory_format = torch.contiguous_format
        self.encoder.to(device)
        self.trained = FeaturesAndLogits(self.encoder)
        if world_size() > 1:
            self.trained = DistributedDataParallel(self.trained)
        self.table = crops_table(config, "train", train_store)
        self.dataset = FrameDataset(self.table, self.encoder.input_size)
        self.corrupt = CorruptImageCounter()

    def train(self) -> None:
        """Training mode, except normalisation layers, which keep their stage-1 statistics."""
        self.encoder.train()
        for module in self.encoder.modules():
            if isinstance(module, nn.modules.batchnorm._NormBase):
                module.eval()

    def epoch_crops(self, windows: Windows, chosen: np.ndarray, batch_size: int, steps: int):
        """The crops of each step's windows, one ``FrameBatch`` per step (each frame once, in
        row order), decoded ahead by DataLoader workers."""
        offsets = np.arange(int(windows.lengths.max()))[None, :]
        per_step = []
        for step in range(steps):
            picked = chosen[step * batch_size : (step + 1) * batch_size]
            real = offsets < windows.lengths[picked][:, None]
            rows = np.unique((windows.starts[picked][:, None] + offsets)[real])
            rows = rows[self.table.has_image[rows]]
            per_step.append(np.searchsorted(self.dataset.rows, rows))
        workers = self.config.data.workers
        return iter(
            DataLoader(
                self.dataset,
                batch_sampler=[items.tolist() for items in per_step],
                num_workers=workers,
                collate_fn=collate_frames,
                pin_memory=self.device.type == "cuda",
                prefetch_factor=4 if workers > 0 else None,
            )
        )

    def encode(
        self, batch: WindowBatch, crops: FrameBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The window features computed from ``crops`` (B, T, D, with gradients), the mask
        (frames whose crop could not be decoded join the frames with no face), and the loss of
        the encoder's own head over the annotated crops."""
        self.corrupt.add(crops.corrupt)
        rows = crops.rows.numpy()  # sorted, without the crops that could not be decoded
        if len(rows) == 0:
            zeros = torch.zeros(*batch.rows.shape, self.encoder.num_features, device=self.device)
            return zeros, torch.ones_like(batch.mask), torch.zeros((), device=self.device)
        images = self.encoder.normalize(crops.images.to(self.device, non_blocking=True))
        vectors, logits = self.trained(images)
        position = np.minimum(np.searchsorted(rows, batch.rows), len(rows) - 1)
        mask = batch.mask | torch.from_numpy(rows[position] != batch.rows)
        features = vectors[torch.from_numpy(position).to(self.device)].float()
        features = features.masked_fill(mask.to(self.device).unsqueeze(-1), 0.0)
        labels = crops.labels.to(self.device)
        annotated = labels >= 0
        if not annotated.any():
            return features, mask, logits.sum() * 0.0
        return features, mask, F.cross_entropy(logits[annotated].float(), labels[annotated])

    def save_encoder(self, run_path: Path) -> Path:
        """Write the current encoder as a frame model file in the run (process 0); every process
        returns its path once it exists."""
        path = run_path / ENCODER_FILE
        if is_main():
            meta = {
                key: value
                for key, value in self.source_meta.items()
                if key not in ("sha256", "format_version", "fervid_version", "class_names")
            }
            meta.update(kind="frame", finetuned_from=self.source_meta["sha256"])
            save_weights(path, self.encoder.state_dict(), meta)
        barrier()
        return path

    def validation_store(self, run_path: Path, progress: bool) -> FeatureStore:
        """Save the encoder and extract the validation split with it into ``features/<split>``
        of the run (replacing the store of an earlier epoch)."""
        encoder = self.save_encoder(run_path)
        split = self.config.eval.split
        out = run_path / "features" / split
        main_first(lambda: shutil.rmtree(out, ignore_errors=True))
        table = crops_table(self.config, split)
        store = extract_features(
            encoder,
            table,
            out,
            self.config.eval.batch_size,
            self.config.data.workers,
            self.device,
            progress,
        )
        self.train()
        return store


def crops_table(config: Config, split: str, store: FeatureStore | None = None) -> FrameTable:
    """The frames of ``split`` with their crops under ``data.root``; given the split's store,
    checked to be its frames, and only the frames the store could read count as having a crop."""
    table = split_frames(config.data, split)
    if store is None:
        return table
    if not same_frames(table, store.table):
        raise DataError(
            store.path,
            f"this store holds other frames than the {split} split under {config.data.root}; "
            "re-extract it from the current data",
        )
    table.has_image &= store.table.has_image
    return table
