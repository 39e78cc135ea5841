"""Flags derived from settings models, and the one place fields become flag names.

Every ``--flag`` of a settings-backed command comes from a field of a :mod:`lorascale.schema` model:
its name (``batch_size`` → ``--batch-size``), its help text and default. Values arrive as strings and
are validated by the model, so a bad value is reported with every other problem at once.
"""

from __future__ import annotations

import argparse
import re
from types import UnionType
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ..errors import ConfigError
from ..schema import leaf_fields

__all__ = ["add_settings_args", "given", "flag_for", "flags_in_text", "describe", "FLAG_NAMES", "SHORT"]

FLAG_NAMES = {"out_dir": "--out"}  # fields whose flag is not --field-name
SHORT = {"rank": "-r", "model": "-m"}


def flag_name(field: str) -> str:
    return FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


def add_settings_args(p: argparse.ArgumentParser, model: type[BaseModel], *, title: str | None = None,
                      only: tuple[str, ...] | None = None, exclude: tuple[str, ...] = (),
                      defaults: dict | None = None) -> None:
    """One flag per leaf setting of ``model`` (``only``/``exclude`` pick them). Unset flags are absent
    from the namespace, so the model's defaults (or a config file) apply."""
    group = p.add_argument_group(title) if title else p
    defaults = defaults or {}
    for name, (_, info) in leaf_fields(model).items():
        if (only is not None and name not in only) or name in exclude:
            continue
        default = defaults.get(name, info.default)
        shown = "" if default in (None, PydanticUndefined) else f" (default {show_default(default)})"
        if _may_unset(info.annotation):
            shown += f"; {UNSET} unsets it"
        names = [flag_name(name)] + ([SHORT[name]] if name in SHORT else [])
        kw = dict(dest=name, default=argparse.SUPPRESS, help=((info.description or "") + shown).replace("%", "%%"))
        if _is_bool(info.annotation):
            action = group.add_argument(*names, action=argparse.BooleanOptionalAction, **kw)
        elif _is_sequence(info.annotation):
            action = group.add_argument(*names, nargs="+", metavar=name.upper(), **kw)
        else:
            action = group.add_argument(*names, metavar=_metavar(info.annotation, name), **kw)
        action.setting = info  # the field behind the flag: its type and constraints (tests derive bad values from it)


UNSET = "none"  # a flag's value that unsets an optional setting (one a --config file set, say)


def given(args: argparse.Namespace, model: type[BaseModel]) -> dict:
    """The leaf settings of ``model`` given on the command line; ``none`` given to a setting that may be
    unset is None (``--lr none``: the rule's rate, whatever the config file says)."""
    out = {}
    for name, (_, info) in leaf_fields(model).items():
        if name in vars(args):
            value = getattr(args, name)
            if _may_unset(info.annotation) and value in (UNSET, [UNSET]):
                value = None
            elif _takes_one_pattern(info.annotation) and isinstance(value, list) and len(value) == 1 and _REGEX.search(value[0]):
                value = value[0]  # `--targets '.*\.(q_proj|v_proj)'`: one regular expression, as PEFT reads a string
            out[name] = value
    return out


_REGEX = re.compile(r"[*+?()\[\]{}|^$\\]")  # a value with these is a pattern, not a name (a name's dots are not enough)


def _takes_one_pattern(annotation) -> bool:
    """A list setting that also takes one string, a regular expression (``targets``)."""
    return _is_sequence(annotation) and any(map(_is_text, get_args(annotation)))


def _may_unset(annotation) -> bool:
    """An optional setting whose values cannot be the word none: not a switch, not a name or path (`--out
    none` is a folder called none). A list setting may be unset even where one string is also allowed
    (``targets``: names, or a regex): on the command line it is always a list of names."""
    values = [a for a in get_args(annotation) if a is not type(None)]
    text_only = any(map(_is_text, values)) and not _is_sequence(annotation)
    return type(None) in get_args(annotation) and not _is_bool(annotation) and not text_only


def _is_text(a) -> bool:
    if get_origin(a) is Annotated:  # StrictStr: Annotated[str, Strict()]
        a = get_args(a)[0]
    return isinstance(a, type) and issubclass(a, str) and not hasattr(a, "__members__")  # an enum's values are not none


def flag_for(parser: argparse.ArgumentParser | None, field: str) -> str | None:
    """The flag that sets ``field`` in ``parser`` (``batch_size`` → ``--batch-size``; a switch's positive
    form, ``--save-model`` not ``--no-save-model``), or a positional's metavar, if one does."""
    action = _action(parser, field)
    if action is None:
        return None
    if not action.option_strings:
        return action.metavar or field.upper()
    return _positive_flag(action)


def _positive_flag(action: argparse.Action) -> str:
    positive = [o for o in action.option_strings if not o.startswith("--no-")] or action.option_strings
    return max(positive, key=len)


def _action(parser: argparse.ArgumentParser | None, field: str) -> argparse.Action | None:
    if parser is None:
        return None
    for action in parser._actions:  # argparse has no public lookup by dest; _actions is its documented table
        if action.dest == field:
            return action
    return None


def _option_in_text(parser: argparse.ArgumentParser | None, field: str) -> str | None:
    """The flag to print for a setting named in a fix's text: an option of this command only (not
    ``help``, a positional or anything else argparse keeps a ``dest`` for)."""
    action = _action(parser, field)
    if action is None or not action.option_strings or isinstance(action, argparse._HelpAction):
        return None
    return _positive_flag(action)


def describe(error: ConfigError, parser: argparse.ArgumentParser | None, from_file: bool = False) -> str:
    """``--batch-size: must be > 0, got 0`` (with the YAML key too when a config file is in play).

    A message or fix that names another setting in backquotes (``extend that study on purpose
    (`extend_study`)``) gets that setting's flag in its place, where this command has one.
    """
    error = type(error)(error.field, flags_in_text(error.message, parser),
                        flags_in_text(error.fix, parser) if error.fix else error.fix)
    parts = [flag_for(parser, f) for f in error.field.split("/")]  # "steps/epochs": a choice between two settings
    flag = "/".join(parts) if None not in parts else None
    if flag is None:  # a key with no flag: one of the file's (the --config file, a sweep's SPEC.yaml)
        source = flag_for(parser, "config") if from_file else flag_for(parser, "spec")
        return error.text(f"{source} key {error.field}" if source else None)
    return error.text(f"{flag} ({error.field})" if from_file else flag)


def flags_in_text(text: str, parser: argparse.ArgumentParser | None) -> str:
    """``text`` (library prose: an error, a note, a warning) with each backquoted setting (`` `metric` ``)
    replaced by this command's flag for it (``--metric``), where it has one; anything else left as written."""
    return _FIELD_IN_TEXT.sub(lambda m: _option_in_text(parser, m[1]) or m[0], text)


_FIELD_IN_TEXT = re.compile(r"`([a-z_][a-z0-9_.]*)`")  # a setting named in library prose


def show_default(v) -> str:
    if isinstance(v, (tuple, list)):  # as it is typed on the command line: 4 16 64; nothing is "none"
        return " ".join(show_default(x) for x in v) or "none"
    if hasattr(v, "value"):
        return str(v.value)
    if isinstance(v, BaseModel):
        return "see below"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _is_bool(annotation) -> bool:
    return annotation is bool or bool in get_args(annotation) and type(None) in get_args(annotation) and len(get_args(annotation)) == 2


def _is_sequence(annotation) -> bool:
    for a in (annotation, *get_args(annotation)):
        if get_origin(a) in (tuple, list):
            return True
    return False


def _metavar(annotation, name: str) -> str:
    union = get_origin(annotation) in (Union, UnionType)
    args = [a for a in (get_args(annotation) if union else (annotation, *get_args(annotation))) if a is not type(None)]
    for a in args:
        if isinstance(a, type) and hasattr(a, "__members__"):  # an enum: show its choices
            return "{" + ",".join(m.value for m in a) + "}"
        if get_origin(a) is not None and str(get_origin(a)).endswith("Literal"):
            words = ",".join(map(str, get_args(a)))
            # a Literal beside another type (int | "auto"): the value's name, or the words
            return f"{name.upper()}|{words.replace(',', '|')}" if union and len(args) > 1 else "{" + words + "}"
    return name.upper()
