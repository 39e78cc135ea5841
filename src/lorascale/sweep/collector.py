"""The error collector of sweep-spec expansion: every problem of every point, reported at once."""

from __future__ import annotations

from ..errors import ConfigError, ConfigErrors

__all__ = ["Collector"]


class Collector:
    """Gathers every ConfigError of a spec so they are reported at once (``tune validate`` habit)."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, field: str, message: str, fix: str) -> None:
        self.errors.append(ConfigError(field, message, fix))

    def add_once(self, field: str, message: str, fix: str) -> None:
        """Add unless the same field and message is already there (one bad base value, many points)."""
        if (field, message) not in self._seen:
            self._seen.add((field, message))
            self.add(field, message, fix)

    def unknown(self, mapping: dict, allowed, where: str) -> None:
        for k in mapping:
            if k not in allowed:
                self.add(f"{where}.{k}" if where else str(k), "unknown key", f"valid keys: {', '.join(allowed)}")

    def raise_if_any(self) -> None:
        ConfigErrors.raise_if_any(self.errors)
