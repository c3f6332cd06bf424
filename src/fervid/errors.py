"""Errors that reach the user as one clear line instead of a traceback."""

from __future__ import annotations

from pathlib import Path


class FervidError(Exception):
    """Base class: the CLI prints these as ``error: <message>`` and exits non-zero."""


class ConfigError(FervidError):
    """A config file, recipe or override is wrong."""


class DataError(FervidError):
    """Input data is missing or malformed. Names the file and, when known, the line."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")
