"""The ablation's tables worked out by hand: paired differences against supervised-only."""

from __future__ import annotations

import pytest

from fervid.ablation.tables import paired_table


def run(variant: str, draw: int, seed: int, f1: float) -> dict:
    return {"variant": variant, "data_seed": draw, "seed": seed, "macro_f1": f1}


def test_paired_differences_are_taken_on_the_same_draw_and_seed():
    results = {
        "supervised": [run("supervised", 1, 0, 0.40), run("supervised", 2, 0, 0.50)],
        # listed in another order; a run with no supervised partner (draw 3) is left out
        "ssl_fixed": [
            run("ssl_fixed", 2, 0, 0.56),
            run("ssl_fixed", 1, 0, 0.50),
            run("ssl_fixed", 3, 0, 0.90),
        ],
        "ssl_flex": [run("ssl_flex", 1, 0, 0.38), run("ssl_flex", 2, 0, 0.54)],
    }
    lines = paired_table(results).splitlines()
    assert lines[0].startswith("| variant - supervised | pairs | mean ± std | standard error |")
    fixed = [cell.strip() for cell in lines[2].split("|")[1:-1]]
    # differences 0.06 and 0.10: mean 0.08, std (ddof 1) 0.02828, standard error 0.02
    assert fixed == ["ssl_fixed", "2", "+0.0800 ± 0.0283", "0.0200", "2/2"]
    flex = [cell.strip() for cell in lines[3].split("|")[1:-1]]
    # differences -0.02 and 0.04: mean 0.01, std 0.04243, standard error 0.03
    assert flex == ["ssl_flex", "2", "+0.0100 ± 0.0424", "0.0300", "1/2"]
    assert len(lines) == 4


def test_a_variant_without_any_partner_gets_no_row():
    results = {"supervised": [run("supervised", 1, 0, 0.4)], "ssl_fixed": [run("x", 1, 1, 0.5)]}
    assert len(paired_table(results).splitlines()) == 2


@pytest.mark.parametrize("f1", [0.3, 0.4])
def test_a_single_pair_has_no_spread(f1):
    results = {"supervised": [run("supervised", 1, 0, 0.4)], "ssl_fixed": [run("x", 1, 0, f1)]}
    cells = [c.strip() for c in paired_table(results).splitlines()[2].split("|")[1:-1]]
    assert cells[2].endswith("± 0.0000") and cells[4] == ("0/1" if f1 <= 0.4 else "1/1")
