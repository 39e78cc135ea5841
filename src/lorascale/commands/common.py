"""Output helpers shared by commands (JSON, tables) and the adapter flags of `recommend`."""

from __future__ import annotations

import argparse

from ..adapters.spec import AdapterSpec
from ..errors import ConfigError, collecting
from ..outputs import json_text as dumps
from ..schema import PositiveFloat, Settings, nest, same_setting, validate
from ..train.config import TrainConfig
from .flags import add_settings_args, given


class LrFft(Settings):
    lr_fft: PositiveFloat = same_setting(TrainConfig, "lr_fft")


def add_rule_args(p: argparse.ArgumentParser) -> None:
    add_settings_args(p, AdapterSpec, title="adapter and scaling rule")


def add_lr_fft_arg(p: argparse.ArgumentParser) -> None:
    add_settings_args(p, LrFft)


def adapter_from_args(args) -> AdapterSpec:
    """The AdapterSpec the flags describe; every bad flag at once."""
    return validate(AdapterSpec, nest(AdapterSpec, given(args, AdapterSpec)))


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
    list also carries the ``model`` and ``data`` names' problems (:func:`with_name_errors`)."""
    from ..errors import ConfigErrors

    values = given(args, cls)
    try:
        return cls(**values)
    except ConfigErrors as e:
        raise ConfigErrors(with_name_errors(e.errors, values)) from None


def print_json(obj) -> None:
    print(dumps(obj))


def table(rows: list[list], headers: list[str]) -> str:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells[1:]])


__all__ = ["add_rule_args", "add_lr_fft_arg", "adapter_from_args", "LrFft", "print_json", "dumps", "table", "ConfigError"]
