"""Ablations over training seeds and data draws, as Markdown tables.

Variants of stage 1: supervised only, +SSL (fixed threshold), +dynamic thresholds (DTM),
+dynamic thresholds + DebiasPL, and ``recipe`` (the recipe as it is). Each (variant, data draw,
seed) is one ordinary run in ``<out>/<variant>/[data<S>/]seed<k>`` laid out like the demo's run
(``stage1/``, and with ``temporal`` also ``features/`` and ``stage2/``); a finished run leaves
``result.json`` and is skipped, an interrupted one resumes, so a killed ablation picks up where
it stopped. With data seeds, draw S of the synthetic dataset is generated once, into
``<out>/data/seed<S>``, and shared by every variant and seed.
"""

from fervid.ablation.plot import plot_ablation
from fervid.ablation.run import DEFAULT_VARIANTS, VARIANTS, run_ablation, ssl_summary

__all__ = ["DEFAULT_VARIANTS", "VARIANTS", "plot_ablation", "run_ablation", "ssl_summary"]
