"""Data: builtin datasets from packages and user files -> tokenised batches with a fixed split."""

from __future__ import annotations

from ..errors import ConfigError
from .batches import IGNORE_INDEX, TokenisedData, make_loaders, split_indices, tokenise
from .builtin import BUILTIN, load_builtin
from .examples import Examples, Kind
from .files import examples_from_records, load_file

__all__ = ["load_examples", "Examples", "Kind", "BUILTIN", "tokenise", "make_loaders", "split_indices",
           "TokenisedData", "IGNORE_INDEX", "examples_from_records"]


def load_examples(data: str, task: str | None = None) -> Examples:
    """A builtin dataset name or a path; checked (columns, emptiness, labels) before any model loads."""
    if data in BUILTIN:
        ex = load_builtin(data)
    elif "/" in data or "." in data:
        ex = load_file(data, task)
    else:
        raise ConfigError("data", f"unknown dataset {data!r}; choose one of {', '.join(BUILTIN)} or pass a file path")
    if task == "classification" and ex.kind is not Kind.LABELED:
        raise ConfigError("task", f"{data} is not a labelled dataset; use --task lm or a dataset with text/label columns")
    if task == "lm" and ex.kind is Kind.LABELED:
        raise ConfigError("task", f"{data} is a classification dataset; use --task classification")
    return ex
