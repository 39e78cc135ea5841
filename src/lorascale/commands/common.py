"""Helpers shared by commands: a request from its flags with every problem at once, JSON and tables."""

from __future__ import annotations

from ..errors import ConfigError, ConfigErrors, collecting
from ..outputs import json_text as dumps
from ..rules import with_unread
from ..schema import leaf_fields
from ..train.config import unread_knob_errors
from .flags import given


def with_name_errors(errors: list[ConfigError], values: dict) -> list[ConfigError]:
    """``errors`` (a settings model's) plus the problems of the ``model`` and ``data`` names among
    ``values``, checked without loading anything: a misspelt --data is reported with a bad --rank, not
    after it is fixed (those names are otherwise resolved only once the settings validate)."""
    from ..data import check_data_name
    from ..models import check_model

    fields = {e.field for e in errors}
    out = list(errors)
    for key, check in (("model", check_model), ("data", check_data_name)):
        if key in fields:  # already refused as written
            continue
        value = values.get(key)
        names = [value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else []
        for name in (n for n in names if isinstance(n, str)):  # coord-check takes several models
            with collecting(out):
                check(name)
    return out


def request_with_names(cls, args):
    """``cls`` (a settings model) from the flags ``args`` gives it; when they fail to validate, the error
    list also carries the ``model`` and ``data`` names' problems (:func:`with_name_errors`). A scaling rule's
    knob given with a rule that ignores it is an error either way (:func:`~lorascale.train.config.unread_knob_errors`;
    ``cls.knobs_also_read(values)`` names knobs the request reads beyond the rule), and the only one about that
    knob: its one fix is to drop it."""
    values = given(args, cls)
    unread = []
    if "rule" in leaf_fields(cls):
        also = cls.knobs_also_read(values) if hasattr(cls, "knobs_also_read") else ()
        unread = unread_knob_errors(values, also_read=also)
    try:
        req = cls(**values)
    except ConfigErrors as e:
        errors = with_name_errors(e.errors, values)
        if "rule" in {x.field for x in errors}:  # a refused rule: its knobs cannot be judged
            unread = []
        raise ConfigErrors(with_unread(errors, unread)) from None
    ConfigErrors.raise_if_any(unread)
    return req


def print_json(obj) -> None:
    print(dumps(obj))


def table(rows: list[list], headers: list[str]) -> str:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells[1:]])


__all__ = ["request_with_names", "with_name_errors", "print_json", "dumps", "table", "ConfigError"]
