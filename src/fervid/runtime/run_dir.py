"""A run directory: resolved config, provenance, metrics log, checkpoints, outputs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fervid import __version__
from fervid.config import save_config
from fervid.runtime.dist import is_main


def git_commit() -> str | None:
    """The commit of the source tree fervid runs from, when it is a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


@dataclass
class RunDir:
    path: Path

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    @property
    def metrics_log(self) -> Path:
        return self.path / "metrics.jsonl"

    def start(self, config: Any, kind: str) -> None:
        """Record the resolved config and provenance (version, commit, command, time).
        Like every write of a run, only the main process does it."""
        if not is_main():
            return
        self.path.mkdir(parents=True, exist_ok=True)
        save_config(config, self.path / "config.yaml")
        info = {
            "kind": kind,
            "fervid_version": __version__,
            "git_commit": git_commit(),
            "command": sys.argv,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with open(self.path / "run.json", "a") as handle:  # one line per (re)start
            handle.write(json.dumps(info) + "\n")

    def log(self, record: dict[str, Any], name: str = "metrics") -> None:
        """Append one JSON line to ``<name>.jsonl`` (metrics: per epoch; steps: per N steps)."""
        if not is_main():
            return
        with open(self.path / f"{name}.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def log_lines(self) -> dict[str, int]:
        """Lines in each log, saved with a checkpoint so a resume can drop later ones."""
        counts = {}
        for path in self.path.glob("*.jsonl"):
            with open(path) as handle:
                counts[path.stem] = sum(1 for _ in handle)
        return counts

    def truncate_logs(self, keep: dict[str, int]) -> None:
        """Drop log lines written after the checkpoint being resumed (a killed epoch)."""
        if not is_main():
            return
        for path in self.path.glob("*.jsonl"):
            lines = path.read_text().splitlines()[: keep.get(path.stem, 0)]
            path.write_text("".join(line + "\n" for line in lines))
