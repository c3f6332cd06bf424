"""Stage-1 SSL throughput on one GPU for the two GPU recipes (ResNet-50 and ViT-S/16 at 112x112).

For each recipe (configs/affwild2_resnet50.yaml, configs/affwild2_vits16.yaml; hub weights off,
data pointed at a generated dataset) it times, in one run:

- forward+backward: the model work an SSL step cannot avoid, on in-memory normalised tensors:
  forward + backward of B labelled and mu*B strong views, a no-grad forward of mu*B weak views
  (the teacher's), the optimizer step; same precision and memory format. The baseline.
- ssl step, in-memory data: the real stage-1 step (fervid.stage1.train.Stage1Step: weak
  augmentation on the GPU, EMA teacher on the weak view, FlexMatch thresholds, DebiasPL, AdamW
  or SGD, EMA update) on uint8 batches already on the GPU. What the step itself costs.
- ssl step, real loader: the same step fed by the training loader (fervid.stage1.data)
  on generated JPEG crops: decoded frames held in memory (``data.cache_images=true``) and
  streamed from disk by DataLoader workers (``false``, the recipes' setting for Aff-Wild2
  scale). Strong views are made by the workers in both.

It prints views per second (B + 2*mu*B images through the model per step), peak GPU
memory and the ratio of each full step to forward+backward alone, and writes them as JSON.

Usage: python benchmarks/gpu.py [--steps 30] [--workers 14] [--out benchmarks/out/gpu.json]
Runs on CPU too (--device cpu --batch 8, for a smoke test); the figures mean something on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from itertools import cycle
from pathlib import Path

import torch
import torch.nn.functional as F

from fervid.config import load_config
from fervid.data.frames import FrameBatch, UnlabelledBatch
from fervid.data.synth import generate, tiny_config
from fervid.runtime.training import autocast
from fervid.stage1.data import Stage1Data
from fervid.stage1.train import Stage1Step

RECIPES = ("affwild2_resnet50", "affwild2_vits16")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def timed(step, batches, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per step over ``steps`` calls of ``step(batch)`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step(next(batches))
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step(next(batches))
    synchronize(device)
    return (time.perf_counter() - started) / steps


def forward_backward(config, steps: int, warmup: int, device) -> float:
    """Seconds per step of the model work an SSL step cannot avoid, on in-memory tensors:
    forward + backward of the B labelled and mu*B strong views, a no-grad forward of the mu*B
    weak views (the teacher's), and the optimizer step."""
    step = Stage1Step(config, 0, device)
    size, batch = config.model.input_size, config.train.batch_size
    unlabelled = config.ssl.mu * batch

    def tensor(n):
        images = torch.randn(n, 3, size, size, device=device)
        return images.contiguous(memory_format=step.memory_format)

    student, weak = tensor(batch + unlabelled), tensor(unlabelled)
    labels = torch.randint(0, 8, (batch + unlabelled,), device=device)

    def run(_):
        with autocast(config.train.precision, device):
            with torch.no_grad():
                step.trained(weak)
            loss = F.cross_entropy(step.trained(student).float(), labels)
        loss.backward()
        step.optimizer.step()
        step.optimizer.zero_grad(set_to_none=True)

    step.model.train()
    return timed(run, cycle([None]), steps, warmup, device)


def in_memory_batches(config, device, count: int = 4):
    """uint8 labelled and unlabelled batches already on the device (random pixels)."""
    size, batch = config.model.input_size, config.train.batch_size
    unlabelled = config.ssl.mu * batch

    def pixels(n):
        return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, device=device)

    made = []
    for _ in range(count):
        labelled = FrameBatch(
            pixels(batch),
            torch.randint(0, 8, (batch,), device=device),
            torch.arange(batch),
            [],
        )
        pool = UnlabelledBatch(
            pixels(unlabelled),
            pixels(unlabelled),
            torch.full((unlabelled,), -1),
            torch.randint(0, 10_000, (unlabelled,)),
            [],
        )
        made.append((labelled, pool))
    return cycle(made)


def ssl_step_time(config, batches, num_unlabelled: int, steps: int, warmup: int, device):
    step = Stage1Step(config, num_unlabelled, device)
    step.model.train()
    rng = torch.Generator().manual_seed(0)
    return timed(lambda pair: step(pair[0], pair[1], rng), batches, steps, warmup, device)


def loader_batches(config):
    data = Stage1Data(config, progress=False)
    data.set_epoch(0)
    return data, zip(data.labelled, data.unlabelled)


def bench_recipe(recipe: str, root: Path, args, device: torch.device) -> dict:
    overrides = [
        "model.pretrained=false",
        f"data.root={root}",
        "data.extra_labelled=[]",
        f"data.workers={args.workers}",
        "ssl.unlabelled=[]",
        f"train.device={device}",
        f"train.steps_per_epoch={args.steps + args.warmup + 2}",
    ]
    if args.batch:
        overrides.append(f"train.batch_size={args.batch}")
    if device.type != "cuda":
        overrides += ["train.precision=fp32", "train.channels_last=false"]
    if args.compile:
        overrides.append("train.compile=true")
    config = load_config(recipe, overrides)
    batch, mu = config.train.batch_size, config.ssl.mu
    views = batch * (1 + 2 * mu)
    result = {
        "backbone": config.model.backbone,
        "input_size": config.model.input_size,
        "batch": batch,
        "mu": mu,
        "views_per_step": views,
        "precision": config.train.precision,
        "channels_last": config.train.channels_last,
        "compile": config.train.compile,
    }

    reset_memory(device)
    seconds = forward_backward(config, args.steps, args.warmup, device)
    bare = views / seconds
    result["forward_backward"] = {"views_per_s": bare, "peak_gib": peak_memory_gib(device)}
    print(f"{recipe}: forward+backward {bare:,.0f} views/s, {views} views/step")

    reset_memory(device)
    seconds = ssl_step_time(
        config, in_memory_batches(config, device), 10_000, args.steps, args.warmup, device
    )
    result["ssl_in_memory"] = {
        "views_per_s": views / seconds,
        "ratio": views / seconds / bare,
        "peak_gib": peak_memory_gib(device),
    }
    print(
        f"  ssl step, in-memory data: {views / seconds:,.0f} views/s ({views / seconds / bare:.0%})"
    )

    for cached in () if args.compile else (True, False):  # compiling each costs minutes
        name = "ssl_loader_cached" if cached else "ssl_loader_streamed"
        loaded = load_config(recipe, [*overrides, f"data.cache_images={str(cached).lower()}"])
        started = time.perf_counter()
        data, batches = loader_batches(loaded)
        setup = time.perf_counter() - started
        reset_memory(device)
        seconds = ssl_step_time(
            loaded, batches, data.num_unlabelled, args.steps, args.warmup, device
        )
        result[name] = {
            "views_per_s": views / seconds,
            "ratio": views / seconds / bare,
            "peak_gib": peak_memory_gib(device),
            "setup_s": setup,
            "workers": args.workers,
        }
        print(
            f"  ssl step, loader ({'decoded in memory' if cached else 'JPEGs from disk'}): "
            f"{views / seconds:,.0f} views/s ({views / seconds / bare:.0%}), setup {setup:.1f} s"
        )
        del data, batches
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=0, help="labelled batch (default: recipe's)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the model (skips the loader runs)"
    )
    parser.add_argument("--data", help="an Aff-Wild2-layout dataset with an unlabelled/ pool")
    parser.add_argument("--out", default="benchmarks/out/gpu.json")
    args = parser.parse_args()
    device = torch.device(args.device)

    results = {
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "steps": args.steps,
    }
    print(f"{results['device']}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.data) if args.data else Path(scratch) / "synth"
        if not args.data:
            started = time.perf_counter()
            synth = tiny_config(
                train_identities=6,
                train_videos=6,
                unlabelled_identities=4,
                unlabelled_videos=4,
                frames_min=400,
                frames_max=500,
                scene_videos=0,
                workers=args.workers,
            )
            generate(root, synth, progress=False)
            print(f"generated {root} in {time.perf_counter() - started:.0f} s")
        for recipe in args.recipes.split(","):
            results[recipe] = bench_recipe(recipe, root, args, device)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
