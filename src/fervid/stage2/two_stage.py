"""Both stages in one run folder, as the demo and every ablation run train them: stage 1 in
``run/stage1``, the frame encoder's features of the train and evaluation splits in
``run/features``, out-of-fold logits when ``temporal.cross_fit``, stage 2 in ``run/stage2``.
Each step resumes if interrupted; under torchrun every process joins each step.

The Python API (:mod:`fervid.api.training`) offers these as ``train``, ``features`` and
``train_two_stages``; they live here, below the API, so that ablations can run them too.
"""

from __future__ import annotations

import time
from pathlib import Path

from fervid.config import Config


def train_stage(
    config: Config, run_dir: str | Path, stage: int = 1, resume: bool = False, progress: bool = True
) -> dict:
    """Stage 1 (the frame model) or stage 2 (the Temporal Encoder over a feature store) in
    ``run_dir``; returns the validation metrics (stage 2: with the frame / smoothed / temporal
    comparison). Joins torchrun's process group when started by it."""
    from fervid.runtime.dist import init_from_environment, is_main

    init_from_environment()
    progress = progress and is_main()
    if stage == 2:
        from fervid.stage2.train import train_stage2

        return train_stage2(config, run_dir, resume=resume, progress=progress)
    from fervid.stage1.train import train_stage1

    return train_stage1(config, run_dir, resume=resume, progress=progress)


def extract_split(
    model: str | Path, config: Config, split: str, out: str | Path, progress: bool = True
):
    """The frame encoder's features of every frame of ``split`` into the store ``out``
    (resumable); under torchrun each process extracts a disjoint share of the videos into the
    same store (``out`` must be on a filesystem every process sees)."""
    from fervid.runtime.dist import init_from_environment, is_main
    from fervid.stage2.extract import extract_features, split_frames

    init_from_environment()
    table = split_frames(config.data, split)
    return extract_features(
        model,
        table,
        out,
        config.eval.batch_size,
        config.data.workers,
        config.train.device,
        progress and is_main(),
        flip=config.eval.flip,
    )


def two_stage_overrides(run: str | Path) -> list[str]:
    """The overrides that point stage 2 at the stage-1 run and stores of :func:`train_two_stages`
    in ``run``."""
    run = Path(run)
    return [
        f"temporal.train_store={run / 'features' / 'train'}",
        f"temporal.val_store={run / 'features' / 'validation'}",
        f"temporal.frame_model={run / 'stage1'}",
    ]


def train_two_stages(config: Config, run: str | Path, progress: bool = True) -> dict:
    """Stage 1 in ``run/stage1``, features of the train and evaluation splits in
    ``run/features``, stage 2 in ``run/stage2`` (``config`` carries :func:`two_stage_overrides`);
    each step resumes if interrupted. Returns both stages' validation metrics and seconds."""
    stage1, stage2 = Path(run) / "stage1", Path(run) / "stage2"
    clock = [time.perf_counter()]
    seconds: dict[str, float] = {}

    def lap(name: str) -> None:
        seconds[name], clock[0] = time.perf_counter() - clock[0], time.perf_counter()

    resume = (stage1 / "checkpoints" / "last.pt").exists()
    frame_metrics = train_stage(config, stage1, 1, resume, progress)
    lap("stage1")
    store = extract_split(stage1, config, "train", config.temporal.train_store, progress)
    extract_split(stage1, config, config.eval.split, config.temporal.val_store, progress)
    lap("features")
    if config.temporal.cross_fit:
        from fervid.stage2.crossfit import with_out_of_fold_logits

        config = with_out_of_fold_logits(config, store, run, progress)
        lap("cross_fit")
    resume = (stage2 / "checkpoints" / "last.pt").exists()
    metrics = train_stage(config, stage2, 2, resume, progress)
    lap("stage2")
    return {"frame_metrics": frame_metrics, "metrics": metrics, "seconds": seconds}
