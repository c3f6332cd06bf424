"""Stage-1 throughput on generated data, each figure against a baseline measured in the same run.

- loader: decoded + weakly augmented 112x112 crops per second through the training loader
  (DataLoader workers decoding JPEGs, batch augmentation) vs plain JPEG decoding of the same
  files with the same number of worker processes. Target: >= 70%.
- train step: images per second of the full supervised step (class-uniform draw, weak
  augmentation, forward, backward, AdamW, EMA) vs forward + backward + AdamW of the same model
  on in-memory tensors of the same shape. Target: >= 80%.
- ssl step: the SSL step (B labelled + mu*B unlabelled in two views, EMA teacher, threshold,
  DebiasPL), fed by the real unlabelled loader (strong views made in workers) vs forward +
  backward on the same number of in-memory images. Target: >= 75%.
- strong augmentation: strong views per second on one core.

Usage: python benchmarks/stage1.py [--data DIR] [--out benchmarks/out/stage1.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from fervid.config import load_config
from fervid.data.affwild2 import read_split
from fervid.data.frames import FrameDataset, collate_frames
from fervid.data.images import load_rgb
from fervid.data.samplers import ClassBalancedSampler
from fervid.data.synth import generate, tiny_config
from fervid.data.transforms import StrongAugment, weak_augment
from fervid.models.frame import FrameModel
from fervid.runtime.training import build_optimizer
from fervid.stage1.data import Stage1Data


class DecodeOnly(Dataset):
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return torch.from_numpy(load_rgb(self.paths[index]))


def rate(count: int, seconds: float) -> float:
    return count / seconds


def bench_loader(root: Path, workers: int, batch: int, limit: int) -> dict:
    table = read_split(root, "train").with_images()
    table = table.select(np.arange(min(limit, len(table))))
    paths = [table.image_path(i) for i in range(len(table))]
    decode = DataLoader(
        DecodeOnly(paths), batch_size=batch, num_workers=workers, collate_fn=lambda x: x
    )
    started = time.perf_counter()
    decoded = sum(len(b) for b in decode)
    raw = rate(decoded, time.perf_counter() - started)

    dataset = FrameDataset(table, 112)
    sampler = ClassBalancedSampler(table.label, len(table), seed=0)
    loader = DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers, collate_fn=collate_frames
    )
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    seen = 0
    for item in loader:
        weak_augment(item.images, generator)
        seen += len(item.labels)
    loaded = rate(seen, time.perf_counter() - started)
    return {
        "images": decoded,
        "workers": workers,
        "raw_decode_per_s": raw,
        "loader_per_s": loaded,
        "ratio": loaded / raw,
        "target": 0.70,
    }


def step_inputs(model: FrameModel, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    size = model.input_size
    images = torch.randn(batch, 3, size, size).contiguous(memory_format=model.memory_format)
    return images, torch.randint(0, 8, (batch,))


def training_model(config) -> FrameModel:
    """The frame model as stage 1 builds it (memory format included)."""
    model = FrameModel(config.model)
    return model.use_channels_last() if config.train.channels_last else model


def forward_backward_rate(config, batch: int, steps: int) -> float:
    model = training_model(config)
    optimizer = build_optimizer(model, config.optim)
    images, labels = step_inputs(model, batch)
    for step in range(steps + 2):
        if step == 2:
            started = time.perf_counter()
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return rate(batch * steps, time.perf_counter() - started)


def full_step_rate(config, steps: int, ssl: bool) -> tuple[float, int]:
    """Images per second through the real stage-1 step (the loop body of stage1/train.py)."""
    from timm.utils import ModelEmaV3

    from fervid.stage1.objective import PseudoLabelObjective

    data = Stage1Data(config)
    model = training_model(config)
    optimizer = build_optimizer(model, config.optim)
    ema = ModelEmaV3(model, decay=0.999, use_warmup=True)
    objective = PseudoLabelObjective(config.ssl, data.num_unlabelled) if ssl else None
    generator = torch.Generator().manual_seed(0)
    unlabelled = iter(data.unlabelled) if ssl else None
    per_step = config.train.batch_size * (1 + 2 * config.ssl.mu if ssl else 1)
    batches = iter(data.labelled)
    for step in range(steps + 2):
        if step == 2:
            started = time.perf_counter()
        batch = next(batches)
        images = model.normalize(weak_augment(batch.images, generator))
        if objective is None:
            loss = F.cross_entropy(model(images), batch.labels)
        else:
            u = next(unlabelled)
            weak = model.normalize(weak_augment(u.images, generator))
            loss = objective(
                model,
                ema.module,
                images,
                batch.labels,
                weak,
                model.normalize(u.strong),
                u.indices,
                u.truth,
            )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema.update(model)
    return rate(per_step * steps, time.perf_counter() - started), per_step


def bench_strong(count: int = 400) -> dict:
    torch.set_num_threads(1)
    augment = StrongAugment()
    image = torch.randint(0, 255, (3, 112, 112), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    for _ in range(count):
        augment(image, generator)
    per_core_112 = rate(count, time.perf_counter() - started)
    image = image[:, ::2, ::2].contiguous()
    started = time.perf_counter()
    for _ in range(count):
        augment(image, generator)
    per_core_56 = rate(count, time.perf_counter() - started)
    torch.set_num_threads(os.cpu_count() or 1)
    return {"views_per_s_per_core_112px": per_core_112, "views_per_s_per_core_56px": per_core_56}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", help="an Aff-Wild2-layout dataset (default: a small generated one)"
    )
    parser.add_argument("--out", default="benchmarks/out/stage1.json")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.data) if args.data else Path(scratch) / "synth"
        if not args.data:
            generate(root, tiny_config(frames_min=150, frames_max=250), progress=False)
        results = {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
        results["loader"] = bench_loader(root, args.workers, 64, 3000)
        print(
            f"loader: {results['loader']['loader_per_s']:.0f} img/s vs raw decode {results['loader']['raw_decode_per_s']:.0f} img/s -> {results['loader']['ratio']:.0%} (target 70%)"
        )

        common = [
            f"data.root={root}",
            f"data.workers={args.workers}",
            "train.batch_size=64",
            "ssl.mu=2",
        ]
        supervised = load_config("default", common)
        full, per_step = full_step_rate(supervised, args.steps, ssl=False)
        bare = forward_backward_rate(supervised, per_step, args.steps)
        results["train_step"] = {
            "model": supervised.model.backbone,
            "input": supervised.model.input_size,
            "batch": per_step,
            "full_step_per_s": full,
            "forward_backward_per_s": bare,
            "ratio": full / bare,
            "target": 0.80,
        }
        print(
            f"train step: {full:.0f} img/s vs forward+backward {bare:.0f} img/s -> {full / bare:.0%} (target 80%)"
        )

        ssl = load_config(
            "default", [*common, "ssl.enabled=true", "ssl.threshold=flex", "ssl.debias_lambda=0.5"]
        )
        full, per_step = full_step_rate(ssl, args.steps, ssl=True)
        bare = forward_backward_rate(ssl, per_step, args.steps)
        results["ssl_step"] = {
            "images_per_step": per_step,
            "full_step_per_s": full,
            "forward_backward_per_s": bare,
            "ratio": full / bare,
            "target": 0.75,
        }
        print(
            f"ssl step: {full:.0f} img/s vs forward+backward {bare:.0f} img/s -> {full / bare:.0%} (target 75%)"
        )

        results["strong_augment"] = bench_strong()
        print(
            f"strong augmentation: {results['strong_augment']['views_per_s_per_core_112px']:.0f} views/s per core at 112 px"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
