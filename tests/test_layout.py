"""The package's layout (docs/architecture.md): imports flow one way, downward, and files stay
short. Every ``import`` counts, those inside functions too; only ``if TYPE_CHECKING:`` blocks
(type hints) and the package root's lazy ``fervid.Predictor`` are exempt."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

from tests.helpers import REPO

SRC = REPO / "src" / "fervid"

LAYERS = [
    # lowest first; a module may import from its own layer and the layers below it
    [
        "fervid.labels",
        "fervid.errors",
        "fervid.schema",
        "fervid.runtime.io",
        "fervid.runtime.typed",
    ],
    ["fervid.data"],
    ["fervid.config", "fervid.runtime"],
    ["fervid.models", "fervid.video", "fervid.zoo", "fervid.evaluate", "fervid.plots"],
    ["fervid.stage1", "fervid.stage2", "fervid.predict"],
    ["fervid.api", "fervid.cli", "fervid.ablation", "fervid.__main__"],
]
WARN_LINES = 350
"""A file past this many lines is a hint to split it by what it does (a warning, not a failure)."""
MAX_LINES = 500
"""The hard limit: no source file is longer."""


def module_name(path: Path) -> str:
    parts = ["fervid", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> tuple[int, str]:
    """(layer, group) of a fervid module: the longest group name it falls under."""
    best = None
    for level, groups in enumerate(LAYERS):
        for group in groups:
            if (module == group or module.startswith(group + ".")) and (
                best is None or len(group) > len(best[1])
            ):
                best = (level, group)
    assert best is not None, f"{module} is in no layer of tests/test_layout.py"
    return best


def fervid_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every fervid module ``path`` imports, outside TYPE_CHECKING blocks."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for child in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "fervid":  # `from fervid import schema`, `__version__`
                found += [(node.lineno, f"fervid.{a.name}") for a in node.names]
            elif node.module.startswith("fervid."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("fervid.")]
    return found


MODULES = sorted(p for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC)


def test_every_module_is_in_a_layer():
    for path in MODULES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_flow_downward(path):
    importer = module_name(path)
    level, group = layer_of(importer)
    upward = []
    for line, imported in fervid_imports(path):
        if imported == "fervid.__version__":
            continue  # a constant of the package root
        target_level, target_group = layer_of(imported)
        if target_level > level:
            upward.append(f"line {line}: {imported} ({target_group}, above {group})")
    assert not upward, f"{importer} imports upward:\n" + "\n".join(upward)


def test_groups_of_one_layer_do_not_import_each_other_in_a_cycle():
    edges: dict[str, set[str]] = {}
    for path in MODULES:
        level, group = layer_of(module_name(path))
        for _, imported in fervid_imports(path):
            if imported == "fervid.__version__":
                continue
            target_level, target = layer_of(imported)
            if target_level == level and target != group:
                edges.setdefault(group, set()).add(target)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(group for group in edges if reaches(group, group, {group}))
    assert not cycles, f"groups in an import cycle: {cycles} ({edges})"


def test_no_source_file_is_over_the_line_limit():
    lengths = {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}
    long = {name: n for name, n in lengths.items() if n > WARN_LINES}
    if long:
        warnings.warn(
            f"files over {WARN_LINES} lines (split them by what they do): {long}", stacklevel=1
        )
    too_long = {name: n for name, n in long.items() if n > MAX_LINES}
    assert not too_long, f"files over {MAX_LINES} lines: {too_long}"
