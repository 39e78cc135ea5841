"""Parsing helpers for sweep specs: an error collector and the grid axes (lists and log2 ranges)."""

from __future__ import annotations

import math

from ..errors import ConfigError, ConfigErrors

__all__ = ["Collector", "log2_axis", "number_list", "take_mapping"]


class Collector:
    """Gathers every ConfigError of a spec so they are reported at once (``tune validate`` habit)."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, field: str, message: str) -> None:
        self.errors.append(ConfigError(field, message))

    def add_once(self, field: str, message: str) -> None:
        """Add unless the same field and message is already there (one bad base value, many points)."""
        if (field, message) not in self._seen:
            self._seen.add((field, message))
            self.add(field, message)

    def unknown(self, mapping: dict, allowed, where: str) -> None:
        for k in mapping:
            if k not in allowed:
                self.add(f"{where}.{k}" if where else str(k), f"unknown key; valid keys: {', '.join(allowed)}")

    def raise_if_any(self) -> None:
        ConfigErrors.raise_if_any(self.errors)


def take_mapping(data: dict, key: str, c: Collector, required: bool = True) -> dict | None:
    v = data.get(key)
    if v is None:
        if required:
            c.add(key, "missing; it holds TrainConfig keys such as model, data and steps")
        return None
    if not isinstance(v, dict):
        c.add(key, f"must be a mapping, got {type(v).__name__}")
        return None
    return v


def number_list(value, field: str, c: Collector, kind=float, positive: bool = True) -> tuple:
    """A non-empty list of distinct ints (``kind=int``) or finite floats; () after reporting an error."""
    if value is None or value == []:
        c.add(field, "empty grid: list at least one value")
        return ()
    if not isinstance(value, list):
        value = [value]
    ok = []
    for v in value:
        good = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        good = good and (kind is float or float(v).is_integer()) and (not positive or v > 0)
        if not good:
            need = ("a positive " if positive else "an ") + ("integer" if kind is int else "number")
            c.add(field, f"{v!r} is not {need}")
            return ()
        ok.append(kind(v))
    if len(set(ok)) != len(ok):
        c.add(field, f"repeats values {ok}; list each once")
        return ()
    return tuple(ok)


def log2_axis(value, field: str, c: Collector) -> tuple[float, ...]:
    """log2 exponents: a list, or ``{from: a, to: b, step: 1}`` inclusive (μA App. B.6: every integer
    exponent in the range)."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in ("from", "to", "step")]
        lo, hi, step = value.get("from"), value.get("to"), value.get("step", 1)
        nums = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi, step))
        if unknown or not nums:
            c.add(field, f"a range is {{from: A, to: B, step: S}} with numbers, got {value!r}")
            return ()
        if step <= 0 or hi < lo:
            c.add(field, f"empty grid: needs from ≤ to and step > 0, got {value!r}")
            return ()
        n = int(math.floor((hi - lo) / step + 1e-9)) + 1
        return tuple(float(lo + i * step) for i in range(n))
    return number_list(value, field, c, kind=float, positive=False)
