"""User-facing errors: each names the field and the fix. The CLI turns them into exit code 2."""

from __future__ import annotations

__all__ = ["ConfigError", "ConfigErrors"]


class ConfigError(ValueError):
    """One bad input: ``field`` is the flag/config key, ``message`` what is wrong and how to fix it."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class ConfigErrors(ValueError):
    """Several bad inputs, reported at once before anything runs."""

    def __init__(self, errors: list[ConfigError]):
        assert errors, "ConfigErrors needs at least one error"
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    @classmethod
    def raise_if_any(cls, errors: list[ConfigError]) -> None:
        if errors:
            raise cls(errors)
