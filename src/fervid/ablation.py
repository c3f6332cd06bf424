"""Ablations over training seeds and data draws, as Markdown tables.

Variants of stage 1: supervised only, +SSL (fixed threshold), +dynamic thresholds (DTM),
+dynamic thresholds + DebiasPL, and ``recipe`` (the recipe as it is). Each (variant, data draw,
seed) is one ordinary run in ``<out>/<variant>/[data<S>/]seed<k>`` laid out like the demo's run
(``stage1/``, and with ``temporal`` also ``features/`` and ``stage2/``); a finished run leaves
``result.json`` and is skipped, an interrupted one resumes, so a killed ablation picks up where
it stopped. With data seeds, draw S of the synthetic dataset is generated once, into
``<out>/data/seed<S>``, and shared by every variant and seed.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

from fervid.config import load_config
from fervid.errors import DataError
from fervid.labels import CLASS_NAMES
from fervid.plots import read_jsonl, save_figure
from fervid.runtime.io import atomic_write_text

log = logging.getLogger("fervid")

VARIANTS: dict[str, list[str]] = {
    "recipe": [],
    "supervised": ["ssl.enabled=false"],
    "ssl_fixed": ["ssl.enabled=true", "ssl.threshold=fixed", "ssl.debias_lambda=0"],
    "ssl_flex": ["ssl.enabled=true", "ssl.threshold=flex", "ssl.debias_lambda=0"],
    "ssl_flex_debias": ["ssl.enabled=true", "ssl.threshold=flex", "ssl.debias_lambda=0.5"],
    "ssl_free_debias": ["ssl.enabled=true", "ssl.threshold=free", "ssl.debias_lambda=0.5"],
    # FlexMatch's warm-up counting only the samples drawn so far (fervid/stage1/thresholds.py)
    "ssl_flex_drawn": [
        "ssl.enabled=true",
        "ssl.threshold=flex",
        "ssl.flex_unused=drawn",
        "ssl.debias_lambda=0",
    ],
    "ssl_flex_debias_drawn": [
        "ssl.enabled=true",
        "ssl.threshold=flex",
        "ssl.flex_unused=drawn",
        "ssl.debias_lambda=0.5",
    ],
    # FlexMatch without its warm-up (beta = sigma / max sigma), as its code's thresh_warmup=False
    "ssl_flex_debias_no_warmup": [
        "ssl.enabled=true",
        "ssl.threshold=flex",
        "ssl.flex_warmup=false",
        "ssl.debias_lambda=0.5",
    ],
}
DEFAULT_VARIANTS = ["supervised", "ssl_fixed", "ssl_flex", "ssl_flex_debias"]
SYSTEMS = ("frame model", "moving average", "temporal encoder")


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
    from fervid import api

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
            *api.two_stage_overrides(run),
            *overrides,
            *draw,
            *VARIANTS[variant],
            f"train.seed={seed}",
        ],
    )
    if data_seed is not None:
        api.synth(config.data.root, config, progress=progress)  # reused once written
    started = time.perf_counter()
    row: dict = {"variant": variant, "data_seed": data_seed, "seed": seed}
    if temporal:
        result = api.train_two_stages(config, run, progress)
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
        frame = api.train(
            config, stage1, resume=(stage1 / "checkpoints" / "last.pt").exists(), progress=progress
        )
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


def spread(values: list[float]) -> str:
    values = np.asarray(values, float)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.4f} ± {std:.4f}"


def by_draw(runs: list[dict], value) -> dict:
    """Mean of ``value(run)`` over training seeds, per data draw."""
    draws: dict = {}
    for run in runs:
        draws.setdefault(run.get("data_seed"), []).append(value(run))
    return {draw: float(np.mean(values)) for draw, values in draws.items()}


def worst_draw(runs: list[dict], value) -> str:
    means = by_draw(runs, value)
    if len(means) < 2:
        return "-"
    draw = min(means, key=means.get)
    return f"{means[draw]:.3f} (draw {draw})"


def ablation_table(results: dict[str, list[dict]]) -> str:
    """Markdown, one line per variant, every spread over all its runs (data draws x training
    seeds): stage-1 macro F1 mean ± std and its worst draw, or with stage 2 the three systems
    and the number of draws where the Temporal Encoder beats both baselines; SSL mask rate and
    pseudo-label accuracy (last quarter of training); the mean per-class F1 of stage 1. The
    stage-2 columns appear when every run has them (runs of an earlier ``--temporal`` ablation
    in the same folder are reused by one without)."""
    temporal = all("systems" in run for runs in results.values() for run in runs)
    if temporal:
        head = ["frame model", "moving average", "Temporal Encoder", "worst draw (TE)", "TE best"]
    else:
        head = ["macro F1 (mean ± std)", "worst draw"]
    head = ["variant", "draws x seeds", *head, "mask rate", "pseudo-label acc.", *CLASS_NAMES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for variant, runs in results.items():
        draws = len({run.get("data_seed") for run in runs})
        cells = [variant, f"{draws} x {len(runs) // draws}"]
        if temporal:
            cells += [spread([run["systems"][name] for run in runs]) for name in SYSTEMS]
            cells.append(worst_draw(runs, lambda run: run["systems"]["temporal encoder"]))
            cells.append(temporal_wins(runs))
        else:
            cells += [
                spread([run["macro_f1"] for run in runs]),
                worst_draw(runs, lambda run: run["macro_f1"]),
            ]
        cells += [ssl_cell(runs, "mask_rate"), ssl_cell(runs, "pseudo_accuracy")]
        for name in CLASS_NAMES:
            values = [run["per_class_f1"][name] for run in runs]
            values = [np.nan if v is None else v for v in values]
            cells.append("n/a" if np.all(np.isnan(values)) else f"{np.nanmean(values):.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def temporal_wins(runs: list[dict]) -> str:
    """Draws on which the Temporal Encoder (mean over seeds) beats the frame model and the
    moving average (each a mean over the same seeds)."""
    means = {name: by_draw(runs, lambda run, n=name: run["systems"][n]) for name in SYSTEMS}
    draws = list(means["temporal encoder"])
    wins = sum(
        means["temporal encoder"][d] > max(means["frame model"][d], means["moving average"][d])
        for d in draws
    )
    return f"{wins}/{len(draws)}"


def ssl_cell(runs: list[dict], key: str) -> str:
    values = [run["ssl"][key] for run in runs if run.get("ssl") and run["ssl"][key] is not None]
    return f"{np.mean(values):.2f}" if values else "-"


def paired_table(results: dict[str, list[dict]], baseline: str = "supervised") -> str:
    """Markdown: each variant minus ``baseline`` on the same (data draw, training seed), stage
    1's macro F1: the mean difference ± its std, its standard error (std / sqrt(pairs)), and
    how many pairs are positive. A variant gains beyond the spread when its mean is above
    twice its standard error."""
    base = {pair_of(run): run["macro_f1"] for run in results[baseline]}
    lines = [
        f"| variant - {baseline} | pairs | mean ± std | standard error | positive |",
        "|---|---|---|---|---|",
    ]
    for variant, runs in results.items():
        paired = [run for run in runs if pair_of(run) in base]
        if variant == baseline or not paired:
            continue
        differences = np.array([run["macro_f1"] - base[pair_of(run)] for run in paired])
        std = differences.std(ddof=1) if len(differences) > 1 else 0.0
        error = std / np.sqrt(len(differences))
        positive = f"{int((differences > 0).sum())}/{len(differences)}"
        mean = f"{differences.mean():+.4f} ± {std:.4f}"
        lines.append(f"| {variant} | {len(differences)} | {mean} | {error:.4f} | {positive} |")
    return "\n".join(lines) + "\n"


def pair_of(run: dict) -> tuple:
    """(data draw, training seed): what two variants' runs share when they are paired."""
    return run.get("data_seed"), run["seed"]


def per_draw_table(results: dict[str, list[dict]]) -> str:
    """Markdown: per variant and data draw, means over training seeds: stage 1's macro F1, or
    with stage 2 "frame model / moving average / Temporal Encoder"."""
    draws = sorted({run["data_seed"] for runs in results.values() for run in runs})
    lines = [
        "| variant | " + " | ".join(f"draw {d}" for d in draws) + " |",
        "|" + "---|" * (1 + len(draws)),
    ]
    for variant, runs in results.items():
        if all("systems" in run for run in runs):
            means = [by_draw(runs, lambda run, n=name: run["systems"][n]) for name in SYSTEMS]
        else:
            means = [by_draw(runs, lambda run: run["macro_f1"])]
        cells = [" / ".join(f"{m[d]:.3f}" for m in means) if d in means[0] else "-" for d in draws]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_ablation(out_dir: Path, out: str | Path | None = None) -> Path:
    """``ablation.png``: per variant, mask rate, accuracy of the kept pseudo-labels and of all
    pseudo-labels over training steps, the mean over its runs (data draws x seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        results = json.loads((out_dir / "results.json").read_text())
    except json.JSONDecodeError:
        raise DataError(out_dir / "results.json", "not JSON") from None
    keys = (
        ("mask_rate", "mask rate"),
        ("pseudo_accuracy", "accuracy of kept pseudo-labels"),
        ("pseudo_accuracy_all", "accuracy of all pseudo-labels"),
    )
    figure, axes = plt.subplots(1, len(keys), figsize=(15, 3.6))
    for variant, rows in results.items():
        runs = [
            read_jsonl(
                run_folder(out_dir, variant, row["data_seed"], row["seed"])
                / "stage1"
                / "steps.jsonl"
            )
            for row in rows
        ]
        runs = [steps for steps in runs if steps]
        if not runs:
            continue  # no SSL: nothing pseudo-labelled
        length = min(len(steps) for steps in runs)
        x = [r["step"] for r in runs[0][:length]]
        for axis, (key, title) in zip(axes, keys, strict=True):
            values = np.array(
                [[np.nan if r[key] is None else r[key] for r in steps[:length]] for steps in runs],
                dtype=float,
            )
            with warnings.catch_warnings():  # a step where no run kept a pseudo-label: NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                axis.plot(x, np.nanmean(values, axis=0), label=f"{variant} ({len(runs)} runs)")
            axis.set_title(title)
            axis.set_xlabel("step")
            axis.set_ylim(0, 1.03)  # a rate of 1.0 stays visible above the frame
    axes[0].legend(fontsize=8)
    return save_figure(
        figure, f"{out_dir}: mean over runs", Path(out) if out else out_dir / "ablation.png"
    )
