"""Typed config values: a nested dict (YAML, overrides) -> dataclasses, every value checked
against its annotation before anything runs.

Bounds and choices are written into the annotation, so the dataclass says what it accepts::

    batch_size: PositiveInt = 64               # an int >= 1
    momentum: Fraction = 0.9                   # a float in [0, 1]
    name: Literal["adamw", "sgd"] = "adamw"    # one of these

A value outside gives a :class:`ConfigError` naming the key, e.g. ``train.batch_size: must be
>= 1, got -3``. This module imports nothing of fervid but its errors, so every layer (the
synthetic dataset's config too) can annotate with it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

from fervid.errors import ConfigError


@dataclass(frozen=True)
class Bounds:
    """``low <= value <= high`` (either end may be open or absent), checked by from_dict."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def check(self, value: Any, path: str) -> None:
        if value is None:
            return
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (
            value >= self.high if self.high_open else value > self.high
        )
        if below or above:
            raise ConfigError(f"{path}: must be {self.describe()}, got {value!r}")

    def describe(self) -> str:
        low = None if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        high = None if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        return " and ".join(part for part in (low, high) if part)


NONE_WORD = "none_word"
"""Field metadata: the word that stands for None where values are text (the command line's
``--max-side full``; fervid/cli/dataclass_flags.py)."""


@dataclass(frozen=True)
class DeviceName:
    """A device name: ``auto``, ``cpu``, or an accelerator, optionally with an index (``cuda``,
    ``cuda:1``); ``train.device`` and predict's ``--device``."""

    accelerators: tuple[str, ...] = ("cuda", "mps", "xpu")

    def check(self, value: str, path: str) -> None:
        kind, colon, index = value.partition(":")
        known = kind in ("auto", "cpu") and not colon
        if not known and not (kind in self.accelerators and (not colon or index.isdigit())):
            raise ConfigError(f"{path}: must be {self.describe()}, got {value!r}")

    def describe(self) -> str:
        *others, last = self.accelerators
        return (
            f"auto, cpu, {', '.join(others)} or {last}, with :N to pick one of several, as cuda:1"
        )


PositiveInt = Annotated[int, Bounds(1)]
NonNegativeInt = Annotated[int, Bounds(0)]
Positive = Annotated[float, Bounds(0, low_open=True)]
NonNegative = Annotated[float, Bounds(0)]
Fraction = Annotated[float, Bounds(0, 1)]
"""A share or a probability: 0 to 1."""
Momentum = Annotated[float, Bounds(0, 1, high_open=True)]
"""An EMA momentum: 0 to 1, 1 excluded (an average with momentum 1 never moves)."""


def from_dict(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a (partial) nested dict, checking keys and types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {values!r}")
    hints = get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(_unknown_key_message(path, key, names))
        kwargs[key] = _coerce(hints[key], value, path)
    return cls(**kwargs)


def check_value(annotation: Any, value: Any, path: str) -> Any:
    """``value`` converted to ``annotation`` and checked against its bounds and choices, as
    :func:`from_dict` does for each value (a :class:`ConfigError` naming ``path``)."""
    return _coerce(annotation, value, path)


def check_fields(config: Any, where: str) -> None:
    """Check a dataclass built in Python (not by :func:`from_dict`) against its annotations, as
    from_dict would: a :class:`ConfigError` naming the first wrong key under ``where``."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    from_dict(type(config), values, where)


def _unknown_key_message(path: str, key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(names)}"
    return f"unknown config key {path!r}{hint}"


def _coerce(annotation: Any, value: Any, path: str) -> Any:
    origin = get_origin(annotation)
    if origin is Annotated:  # a type with its bounds: coerce to the type, then check them
        base, *constraints = get_args(annotation)
        value = _coerce(base, value, path)
        for constraint in constraints:
            if hasattr(constraint, "check"):  # Bounds, or another rule with check(value, path)
                constraint.check(value, path)
        return value
    if origin is Literal:
        choices = get_args(annotation)
        if value not in choices:
            raise ConfigError(
                f"{path}: must be one of {', '.join(map(str, choices))}, got {value!r}"
            )
        return value
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value or {}, path)
    if origin in (typing.Union, types.UnionType):
        options = get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, path)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{path}: invalid value {value!r}")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [part for part in value.split(",") if part] if value.strip() else []
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item_type, *rest) = get_args(annotation) or (Any,)
        items = [_coerce(item_type, item, f"{path}[{i}]") for i, item in enumerate(value)]
        return items if origin is list else tuple(items)
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "true",
            "yes",
            "1",
            "on",
            "false",
            "no",
            "0",
            "off",
        ):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        try:
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            return int(number)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected an integer, got {value!r}") from None
    if annotation is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    if annotation is str:
        if isinstance(value, dict | list):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return str(value)
    return value
