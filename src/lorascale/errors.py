"""User-facing errors. Each carries the config ``field`` it is about, what is wrong (``message``) and,
where one exists, the ``fix``. Library code speaks in config field names (``batch_size``,
``grid.ranks``); only ``lorascale.commands`` turns fields into flag names and exit code 2."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

__all__ = ["ConfigError", "ConfigErrors", "ConfigWarning", "StorageMissing", "collecting"]


class ConfigError(ValueError):
    """One bad input: ``field`` is the config key, ``message`` what is wrong, ``fix`` what to do instead."""

    def __init__(self, field: str, message: str, fix: str | None = None):
        self.field = field
        self.message = message
        self.fix = fix
        super().__init__(self.text())

    def text(self, field: str | None = None) -> str:
        """``field: message; fix`` (``field`` replaced by the caller's name for it, e.g. a flag)."""
        body = self.message if not self.fix else f"{self.message}; {self.fix}"
        return f"{self.field if field is None else field}: {body}"

    def renamed(self, field: str) -> "ConfigError":
        """The same error about ``field`` (e.g. ``grid.configs[0].rank`` for a spec's ``rank``)."""
        return type(self)(field, self.message, self.fix)

    def __reduce__(self):  # picklable across worker processes with its attributes
        return (type(self), (self.field, self.message, self.fix))


class ConfigWarning(ConfigError):
    """Not an error: an answer to question, about ``field``, with the ``fix`` to try (returned or printed,
    never raised: e.g. ``tune``'s answer at the edge of what it searched)."""

    def to_dict(self) -> dict:
        return {"field": self.field, "message": self.message, "fix": self.fix}


class StorageMissing(ConfigError):
    """A read-only command was pointed at sweep storage (a file, or a study in it) that does not exist."""


class ConfigErrors(ValueError):
    """Several bad inputs, reported at once before anything runs."""

    def __init__(self, errors: list[ConfigError]):
        if not errors:
            raise ValueError("ConfigErrors needs at least one error")
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __reduce__(self):
        return (type(self), (self.errors,))

    @classmethod
    def raise_if_any(cls, errors: list[ConfigError]) -> None:
        if errors:
            raise cls(errors)


@contextmanager
def collecting(errors: list[ConfigError]) -> Iterator[None]:
    """Runs one check of several: the :class:`ConfigError` it raises (or each one of a :class:`ConfigErrors`)
    joins ``errors`` and the caller goes on to its next check, so every problem is reported at once with
    :meth:`ConfigErrors.raise_if_any`. The rest of the block is skipped, as after any exception."""
    try:
        yield
    except ConfigErrors as e:
        errors.extend(e.errors)
    except ConfigError as e:
        errors.append(e)
