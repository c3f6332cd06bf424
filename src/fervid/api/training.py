"""Training in the Python API: stage 1, features, stage 2, the demo (all of it on the
synthetic dataset), ablations and training plots (``fervid train | features | demo | ablate |
plot``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from fervid.api.data import synth
from fervid.api.model_files import export
from fervid.config import Config, load_config
from fervid.data import SPLIT_SOURCE
from fervid.stage2.two_stage import (
    extract_split,
    train_stage,
    train_two_stages,
    two_stage_overrides,
)

__all__ = ["ablate", "demo", "features", "plot", "train", "train_two_stages", "two_stage_overrides"]


def train(
    config: Config, run_dir: str | Path, resume: bool = False, progress: bool = True, stage: int = 1
) -> dict:
    """Stage 1 (the frame model) or stage 2 (the Temporal Encoder over a feature store) in
    ``run_dir`` (``resume``: from its last checkpoint); returns the validation metrics (stage 2:
    with the frame / smoothed / temporal comparison). Under torchrun every process joins."""
    return train_stage(config, run_dir, stage, resume, progress)


def features(model: str | Path, config: Config, split: str, out: str | Path, progress: bool = True):
    """Frame-encoder features of every frame of a split into a memory-mapped store (resumable:
    rerun to finish a killed extraction). Under torchrun, each process extracts a disjoint share
    of the videos into the same store (``out`` must be on a filesystem every process sees)."""
    return extract_split(model, config, split, out, progress)


def demo(
    out: str | Path = "fervid-demo",
    overrides: list[str] | None = None,
    progress: bool = True,
    baseline: bool = False,
) -> dict:
    """The whole method on the synthetic dataset: generate it if absent, stage 1 (the demo recipe:
    the paper's semi-supervised stage 1 on 40 labelled frames per class), features, stage 2,
    evaluation of frame model / moving average / Temporal Encoder, and a packaged model for
    ``fervid predict``. With ``baseline`` (and SSL on), stage 1 once more without unlabelled
    faces (``ssl.enabled=false``: the same labelled frames and budget) in
    ``run/stage1_supervised``, its metrics as ``supervised_metrics``. Each step resumes if
    interrupted."""
    out = Path(out)
    run = out / "run"
    recipe_overrides = [f"data.root={out / 'data'}", *two_stage_overrides(run), *(overrides or [])]
    config = load_config("demo", recipe_overrides)
    started = time.perf_counter()
    summary = synth(config.data.root, config, progress=progress)
    seconds = {"synth": time.perf_counter() - started}
    result = train_two_stages(config, run, progress)
    seconds.update(result["seconds"])
    supervised = None
    if baseline and config.ssl.enabled:
        started = time.perf_counter()
        supervised_config = load_config("demo", [*recipe_overrides, "ssl.enabled=false"])
        supervised_run = run / "stage1_supervised"
        resume = (supervised_run / "checkpoints" / "last.pt").exists()
        supervised = train_stage(supervised_config, supervised_run, 1, resume, progress)
        seconds["stage1_supervised"] = time.perf_counter() - started
    frame = None if config.temporal.finetune_encoder else run / "stage1"
    model = export(frame, run / "fervid_demo_model.safetensors", run / "stage2")
    seconds["total"] = sum(seconds.values())
    return {
        "data": str(config.data.root),
        "run": str(run),
        "model": str(model),
        "synth_summary": summary,
        "stage1": stage1_summary(config),
        "frame_metrics": result["frame_metrics"],
        "supervised_metrics": supervised,
        "metrics": result["metrics"],
        "seconds": seconds,
    }


def stage1_summary(config: Config) -> str:
    """What stage 1 of ``config`` trains on, in a few words: labels and SSL variant."""
    data, ssl = config.data, config.ssl
    if data.labels_per_class:
        labels = (
            f"{data.labels_per_class} labelled frames per class, the other train frames unlabelled"
        )
    elif data.labelled_fraction < 1:
        labels = f"{data.labelled_fraction:g} of the train videos labelled, the rest unlabelled"
    else:
        labels = "every train frame labelled"
    if not ssl.enabled:
        return f"supervised only, {labels}"
    thresholds = {
        "fixed": f"a fixed threshold {ssl.tau:g} (FixMatch)",
        "flex": "FlexMatch's per-class thresholds"
        + ("" if ssl.flex_warmup else " without their warm-up"),
        "free": "FreeMatch's self-adaptive thresholds",
    }[ssl.threshold]
    debias = f" + DebiasPL (lambda {ssl.debias_lambda:g})" if ssl.debias_lambda else ""
    pool_splits = [
        s.removeprefix(SPLIT_SOURCE) for s in ssl.unlabelled if s.startswith(SPLIT_SOURCE)
    ]
    scored = [name for name in pool_splits if name != "train"]
    transductive = (
        f"; the {' and '.join(scored)} frames in the pool (transductive)" if scored else ""
    )
    return f"semi-supervised, {thresholds}{debias}; {labels}{transductive}"


def ablate(
    out: str | Path,
    recipe: str = "demo",
    overrides: list[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    variants: list[str] | None = None,
    data_seeds: list[int] | None = None,
    temporal: bool = False,
    progress: bool = True,
) -> str:
    """Stage 1 of ``recipe`` (with ``overrides``) once per variant (:data:`fervid.ablation.VARIANTS`;
    None: supervised, SSL, +DTM, +DebiasPL), training seed and data draw (``data_seeds``: draws
    of the synthetic dataset, each generated once under ``out/data``; None: ``data.root``), with
    stage 2 too when ``temporal``. Each run resumes or is skipped when done. Writes
    ``out/results.md`` and ``results.json`` and returns the Markdown tables. The recipe and
    overrides are checked before anything runs."""
    from fervid.ablation import run_ablation

    load_config(recipe, overrides)  # a bad recipe or override fails now, not in the first run
    return run_ablation(
        recipe,
        out,
        list(seeds),
        variants,
        overrides,
        progress=progress,
        data_seeds=data_seeds,
        temporal=temporal,
    )


def plot(run: str | Path, out: str | Path | None = None) -> Path:
    """The training curves of a run folder (loss, F1, pseudo-label statistics; default
    ``<run>/training.png``), or of every variant of a folder ``fervid ablate`` wrote (mask rate,
    pseudo-label accuracy; default ``<folder>/ablation.png``). Returns the PNG's path."""
    if (Path(run) / "results.json").is_file():  # a folder written by `fervid ablate`
        from fervid.ablation import plot_ablation

        return plot_ablation(Path(run), out)
    from fervid.plots import plot_run

    return plot_run(run, out)
