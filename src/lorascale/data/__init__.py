"""Data: builtin datasets from packages and user files -> tokenised batches with a fixed split."""

from __future__ import annotations

import os

from ..errors import ConfigError
from ..vocabulary import Task
from .batches import IGNORE_INDEX, TokenisedData, make_loaders, split_indices, tokenise
from .builtin import BUILTIN, load_builtin
from .examples import Examples, Kind
from .files import examples_from_records, load_file

__all__ = ["load_examples", "Examples", "Kind", "BUILTIN", "tokenise", "make_loaders", "split_indices",
           "TokenisedData", "IGNORE_INDEX", "examples_from_records"]


def load_examples(data: str, task: Task | str | None = None) -> Examples:
    """A builtin dataset name or a path; checked (columns, emptiness, labels) before any model loads."""
    if data in BUILTIN:
        ex = load_builtin(data)
    elif "/" in data or "." in data or os.path.exists(data):
        ex = load_file(data, task)
    else:
        raise ConfigError("data", f"unknown dataset {data!r}; choose one of {', '.join(BUILTIN)} or pass a file path")
    if task is not None and Task(task) is not ex.kind.task:
        fix = ("use task classification" if ex.kind.task is Task.CLASSIFICATION
               else "use task lm, or a dataset with text/label columns")
        raise ConfigError("task", f"{data} is a {ex.kind.task} dataset, not {Task(task)}", fix)
    return ex
