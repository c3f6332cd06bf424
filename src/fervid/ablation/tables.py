"""The ablation's Markdown tables: each variant's spread over data draws x training seeds,
paired differences against supervised-only, and the per-draw means."""

from __future__ import annotations

import numpy as np

from fervid.labels import CLASS_NAMES

SYSTEMS = ("frame model", "moving average", "temporal encoder")
"""The three systems a run with stage 2 scores (the ``systems`` of its row)."""


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
