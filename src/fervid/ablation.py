"""Stage-1 ablation: supervised only, +SSL (fixed threshold), +dynamic thresholds (DTM),
+dynamic thresholds + DebiasPL, over several seeds, as a Markdown table.

Each (variant, seed) is one ordinary run in ``<out>/<variant>/seed<k>``; finished runs are
skipped, so a killed ablation picks up where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from fervid.config import load_config
from fervid.labels import CLASS_NAMES
from fervid.runtime.io import atomic_write_text

log = logging.getLogger("fervid")

VARIANTS: dict[str, list[str]] = {
    "supervised": ["ssl.enabled=false"],
    "ssl_fixed": ["ssl.enabled=true", "ssl.threshold=fixed", "ssl.debias_lambda=0"],
    "ssl_flex": ["ssl.enabled=true", "ssl.threshold=flex", "ssl.debias_lambda=0"],
    "ssl_flex_debias": ["ssl.enabled=true", "ssl.threshold=flex", "ssl.debias_lambda=0.5"],
    "ssl_free_debias": ["ssl.enabled=true", "ssl.threshold=free", "ssl.debias_lambda=0.5"],
}
DEFAULT_VARIANTS = ["supervised", "ssl_fixed", "ssl_flex", "ssl_flex_debias"]


def run_ablation(
    recipe: str,
    out: str | Path,
    seeds: list[int],
    variants: list[str] | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
) -> str:
    """Train every variant with every seed; write ``results.md`` and ``results.json``."""
    from fervid.api import train

    out = Path(out)
    variants = variants or DEFAULT_VARIANTS
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    results: dict[str, list[dict]] = {}
    for variant in variants:
        for seed in seeds:
            run = out / variant / f"seed{seed}"
            metrics_file = run / "eval" / "validation" / "metrics.json"
            if not metrics_file.exists():
                config = load_config(
                    recipe, [*(overrides or []), *VARIANTS[variant], f"train.seed={seed}"]
                )
                started = time.perf_counter()
                train(
                    config,
                    run,
                    resume=(run / "checkpoints" / "last.pt").exists(),
                    progress=progress,
                )
                log.info("%s seed %d: %.0f s", variant, seed, time.perf_counter() - started)
            results.setdefault(variant, []).append(json.loads(metrics_file.read_text()))
    table = ablation_table(results)
    atomic_write_text(out / "results.md", table)
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    return table


def ablation_table(results: dict[str, list[dict]]) -> str:
    """Markdown: macro F1 mean +- std over seeds, then the mean per-class F1."""
    header = "| variant | seeds | macro F1 (mean ± std) | " + " | ".join(CLASS_NAMES) + " |"
    lines = [header, "|" + "---|" * (3 + len(CLASS_NAMES))]
    for variant, runs in results.items():
        f1 = np.array([r["macro_f1"] for r in runs])
        per_class = [
            np.nanmean(
                [r["per_class_f1"][c] if r["per_class_f1"][c] is not None else np.nan for r in runs]
            )
            for c in CLASS_NAMES
        ]
        cells = " | ".join(f"{v:.3f}" for v in per_class)
        lines.append(
            f"| {variant} | {len(runs)} | {f1.mean():.4f} ± {f1.std(ddof=1) if len(f1) > 1 else 0:.4f} | {cells} |"
        )
    return "\n".join(lines) + "\n"
