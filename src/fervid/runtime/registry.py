"""One registry mechanism: named constructors for swappable parts (threshold policies,
detectors, positional encodings, model-file kinds). Frame backbones come from timm's own
registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from fervid.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to constructors. ``@REGISTRY.register("name")`` adds one, ``build`` calls it."""

    def __init__(self, kind: str):
        self.kind = kind
        self._constructors: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def add(constructor: Callable[..., T]) -> Callable[..., T]:
            if name in self._constructors:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._constructors[name] = constructor
            return constructor

        return add

    def unregister(self, name: str) -> None:
        """Forget ``name`` (a plugin's, or a test's)."""
        self._constructors.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._constructors)

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._constructors[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def build(self, name: str, *args, **kwargs) -> T:
        return self.get(name)(*args, **kwargs)

    def __contains__(self, name: str) -> bool:
        return name in self._constructors
