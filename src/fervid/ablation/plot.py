"""The ablation's figure: pseudo-label statistics over training steps, per variant."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from fervid.ablation.run import run_folder
from fervid.errors import DataError
from fervid.plots import read_jsonl, save_figure


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
