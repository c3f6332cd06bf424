"""Curves of a run: losses, validation F1 and, for SSL runs, the pseudo-label statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fervid.errors import DataError
from fervid.labels import CLASS_NAMES
from fervid.runtime.io import atomic_path


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise DataError(path, "not a JSON line", line=number) from None
    return records


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``training.png`` (or ``out``) for a run folder; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run_dir)
    epochs = read_jsonl(run / "metrics.jsonl")
    steps = read_jsonl(run / "steps.jsonl")
    if not epochs and not steps:
        raise DataError(
            run, "no metrics.jsonl or steps.jsonl here: not a run folder, or nothing logged yet"
        )
    panels = 2 + (4 if steps else 0)
    columns = 2
    figure, axes = plt.subplots(
        (panels + 1) // columns, columns, figsize=(12, 3.2 * ((panels + 1) // columns))
    )
    axes = axes.ravel()

    x = [r["epoch"] for r in epochs]
    axes[0].plot(x, [r["loss"] for r in epochs], marker="o", label="train loss")
    axes[0].set_title("training loss per epoch")
    axes[0].set_xlabel("epoch")
    validated = [r for r in epochs if "val_macro_f1" in r]
    axes[1].plot(
        [r["epoch"] for r in validated],
        [r["val_macro_f1"] for r in validated],
        marker="o",
        color="black",
        label="macro F1",
    )
    for name in CLASS_NAMES:
        axes[1].plot(
            [r["epoch"] for r in validated],
            [r["val_per_class_f1"][name] or 0 for r in validated],
            alpha=0.5,
            label=name,
        )
    axes[1].set_title("validation F1")
    axes[1].set_xlabel("epoch")
    axes[1].legend(fontsize=7, ncol=3)

    if steps:
        s = [r["step"] for r in steps]
        axes[2].plot(s, [r["mask_rate"] for r in steps], label="mask rate")
        accuracy = [r["pseudo_accuracy"] for r in steps]
        if any(a is not None for a in accuracy):
            axes[2].plot(
                s,
                [np.nan if a is None else a for a in accuracy],
                label="pseudo-label accuracy (kept)",
            )
        axes[2].set_title("pseudo-labels")
        axes[2].set_ylim(0, 1)
        axes[2].legend(fontsize=8)
        for panel, key, title in (
            (3, "pseudo_histogram", "pseudo-label class share (kept)"),
            (4, "thresholds", "per-class threshold"),
            (5, "p_hat", "p_hat (DebiasPL prior)"),
        ):
            values = np.array([r[key] for r in steps])
            for k, name in enumerate(CLASS_NAMES):
                axes[panel].plot(s, values[:, k], label=name)
            axes[panel].set_title(title)
            axes[panel].set_xlabel("step")
            axes[panel].legend(fontsize=7, ncol=4)
    for axis in axes[panels:]:
        axis.set_visible(False)
    return save_figure(figure, str(run), Path(out) if out else run / "training.png")


def save_figure(figure, title: str, out: Path) -> Path:
    """Title, lay out and write ``figure`` as a PNG (atomically); close it; return ``out``."""
    import matplotlib.pyplot as plt

    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(out) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
    return out
