"""Running an ablation: every (variant, data draw, training seed) as one ordinary run, resumable,
and the rows its tables are made of (:mod:`fervid.ablation.tables`)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from fervid.ablation.tables import ablation_table, paired_table, per_draw_table
from fervid.config import load_config
from fervid.runtime.io import atomic_write_text

log = logging.getLogger("fervid")

VARIANTS: dict[str, list[str]] = {
    "recipe": [],
    "supervised": ["ssl.enabled=false"],
    "ssl_fixed": ["ssl.enabled=true", "ssl.threshold=fixed", "ssl.debias_lambda=0"],
    # FlexMatch as published, warm-up included, whatever the recipe says
    "ssl_flex": [
        "ssl.enabled=true",
        "ssl.threshold=flex",
        "ssl.flex_warmup=true",
        "ssl.debias_lambda=0",
    ],
    "ssl_flex_debias": [
        "ssl.enabled=true",
        "ssl.threshold=flex",
        "ssl.flex_warmup=true",
        "ssl.debias_lambda=0.5",
    ],
    "ssl_free_debias": ["ssl.enabled=true", "ssl.threshold=free", "ssl.debias_lambda=0.5"],
    # FlexMatch's warm-up counting only the samples drawn so far (fervid/stage1/thresholds.py)
    "ssl_flex_drawn": [
        "ssl.enabled=true",
        "ssl.threshold=flex",
        "ssl.flex_warmup=true",
        "ssl.flex_unused=drawn",
        "ssl.debias_lambda=0",
    ],
    "ssl_flex_debias_drawn": [
        "ssl.enabled=true",
        "ssl.threshold=flex",
        "ssl.flex_warmup=true",
        "ssl.flex_unused=drawn",
        "ssl.debias_lambda=0.5",
    ],
    # FlexMatch without its warm-up (beta = sigma / max sigma), as its code's thresh_warmup=False
    "ssl_flex_no_warmup": [
        "ssl.enabled=true",
        "ssl.threshold=flex",
        "ssl.flex_warmup=false",
        "ssl.debias_lambda=0",
    ],
    "ssl_flex_debias_no_warmup": [
        "ssl.enabled=true",
        "ssl.threshold=flex",
        "ssl.flex_warmup=false",
        "ssl.debias_lambda=0.5",
    ],
}
DEFAULT_VARIANTS = ["supervised", "ssl_fixed", "ssl_flex", "ssl_flex_debias"]


def run_ablation(
    recipe: str,
    out: str | Path,
    seeds: list[int],
    variants: list[str] | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
    data_seeds: list[int] | None = None,
    temporal: bool = False,
) -> str:
    """Train every variant with every seed on every data draw (``data_seeds``; None = the
    config's ``data.root``), with stage 2 too when ``temporal``; write ``results.md`` and
    ``results.json`` (every run's row) and return the Markdown."""
    out = Path(out)
    variants = variants or DEFAULT_VARIANTS
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    results: dict[str, list[dict]] = {}
    for variant in variants:
        for data_seed in data_seeds or [None]:
            for seed in seeds:
                row = run_one(
                    recipe, out, variant, data_seed, seed, overrides or [], temporal, progress
                )
                results.setdefault(variant, []).append(row)
    table = ablation_table(results)
    if "supervised" in results and len(results) > 1:
        table += "\n" + paired_table(results)
    if data_seeds and len(data_seeds) > 1:
        table += "\n" + per_draw_table(results)
    atomic_write_text(out / "results.md", table)
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    return table


def run_folder(out: Path, variant: str, data_seed: int | None, seed: int) -> Path:
    draw = out / variant if data_seed is None else out / variant / f"data{data_seed}"
    return draw / f"seed{seed}"


def run_one(
    recipe: str,
    out: Path,
    variant: str,
    data_seed: int | None,
    seed: int,
    overrides: list[str],
    temporal: bool,
    progress: bool,
) -> dict:
    """One run's row: stage-1 macro and per-class F1, its SSL statistics and, with
    ``temporal``, the three systems' macro F1. Read back when the run has finished."""
    from fervid.data.synth import generate
    from fervid.stage2.two_stage import train_stage, train_two_stages, two_stage_overrides

    run = run_folder(out, variant, data_seed, seed)
    done = run / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    draw = []
    if data_seed is not None:
        draw = [f"data.root={out / 'data' / f'seed{data_seed}'}", f"synth.seed={data_seed}"]
    config = load_config(
        recipe,
        [
            *two_stage_overrides(run),
            *overrides,
            *draw,
            *VARIANTS[variant],
            f"train.seed={seed}",
        ],
    )
    if data_seed is not None:
        generate(config.data.root, config.synth, progress=progress)  # reused once written
    started = time.perf_counter()
    row: dict = {"variant": variant, "data_seed": data_seed, "seed": seed}
    if temporal:
        result = train_two_stages(config, run, progress)
        frame = result["frame_metrics"]
        comparison = result["metrics"]["comparison"]
        table = comparison["table"]
        row["systems"] = {
            "frame model": table["frame model"]["macro_f1"],
            "moving average": next(v for k, v in table.items() if k.startswith("moving"))[
                "macro_f1"
            ],
            "temporal encoder": table["temporal encoder"]["macro_f1"],
        }
        row["smoothing_window"] = comparison["smoothing_window"]
    else:
        stage1 = run / "stage1"
        resume = (stage1 / "checkpoints" / "last.pt").exists()
        frame = train_stage(config, stage1, 1, resume, progress)
    row["macro_f1"] = frame["macro_f1"]
    row["per_class_f1"] = frame["per_class_f1"]
    row["ssl"] = ssl_summary(run / "stage1" / "steps.jsonl")
    row["seconds"] = round(time.perf_counter() - started, 1)
    log.info("%s draw %s seed %d: %.0f s", variant, data_seed, seed, row["seconds"])
    atomic_write_text(done, json.dumps(row, indent=1))
    return row


def ssl_summary(steps_file: Path) -> dict | None:
    """Mask rate and pseudo-label accuracy over the last quarter of the logged steps, and the
    last thresholds, p_hat and pseudo-label histogram; None for a run without SSL."""
    if not steps_file.exists():
        return None
    entries = [json.loads(line) for line in steps_file.read_text().splitlines() if line.strip()]
    if not entries:
        return None
    tail = entries[-max(1, len(entries) // 4) :]

    def mean(key: str) -> float | None:
        values = [e[key] for e in tail if e.get(key) is not None]
        return float(np.mean(values)) if values else None

    last = entries[-1]
    return {
        "mask_rate": mean("mask_rate"),
        "pseudo_accuracy": mean("pseudo_accuracy"),
        "pseudo_accuracy_all": mean("pseudo_accuracy_all"),
        "thresholds": last.get("thresholds"),
        "p_hat": last.get("p_hat"),
        "pseudo_histogram": last.get("pseudo_histogram"),
    }
