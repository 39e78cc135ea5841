"""Data: builtin datasets from packages and user files -> tokenised batches with a fixed split."""

from __future__ import annotations

import os

from ..errors import ConfigError
from ..hub import is_hub_id
from ..vocabulary import Task
from .batches import IGNORE_INDEX, TokenisedData, make_loaders, split_indices, tokenise
from .builtin import BUILTIN, builtin_names, load_builtin
from .examples import Examples, Kind
from .files import examples_from_records, load_file, load_hub_dataset

__all__ = ["load_examples", "Examples", "Kind", "BUILTIN", "tokenise", "make_loaders", "split_indices",
           "TokenisedData", "IGNORE_INDEX", "examples_from_records", "builtin_names", "task_data", "check_data_name"]


def load_examples(data: str, task: Task | str | None = None) -> Examples:
    """A builtin dataset name, a path, or a Hub dataset ID in the local Hugging Face cache; checked
    (columns, emptiness, labels) before any model loads."""
    from ..rlvr.problems import is_problem_set

    if task is not None and Task(task) is Task.RLVR:  # only commands without an rlvr path get here (tune, headline)
        raise ConfigError("task", "task rlvr trains on generated problems, not text examples, and only through"
                          " `lorascale train` and `lorascale sweep`", "train it with `task` rlvr through train or a sweep spec,"
                          " or use task lm, classification or contrastive here")
    if is_problem_set(data):
        raise ConfigError("task", f"{data} is a set of problems for RL with verifiable rewards",
                          "train it with `task` rlvr through train or a sweep spec (GRPO); lm, classification"
                          " and contrastive train on text")
    if data in BUILTIN:
        ex = load_builtin(data)
    elif is_hub_id(data):
        ex = load_hub_dataset(data, task)
    elif _path_like(data):
        ex = load_file(data, task)
    else:
        raise _unknown(data)
    if task is not None and Task(task) is not ex.kind.task:
        fix = f"use task {ex.kind.task}, or a dataset with {task_data(Task(task))}"
        raise ConfigError("task", f"{data} is a {ex.kind.task} dataset, not {Task(task)}", fix)
    return ex


def check_data_name(data: str) -> None:
    """Whether ``data`` names something :func:`load_examples` or the rlvr task looks for, checked without
    reading it: a builtin dataset, a problem set, an existing path, or a Hub ID (its cache is checked when
    it loads). Raises :func:`load_examples`' error for an unknown name or a missing path. For commands that
    report a bad ``--data`` together with their settings' errors, before those are fixed."""
    from ..rlvr.problems import is_problem_set

    if data in BUILTIN or is_problem_set(data) or is_hub_id(data) or os.path.exists(data):
        return
    if _path_like(data):
        load_file(data, None)  # raises its "does not exist"
    raise _unknown(data)


def _path_like(data: str) -> bool:
    return "/" in data or "." in data or os.path.exists(data)


def _unknown(data: str) -> ConfigError:
    from ..rlvr.problems import PROBLEM_SETS

    named = [f"{n} ({b.task})" for n, b in BUILTIN.items()] + [f"{n} ({Task.RLVR})" for n in PROBLEM_SETS]
    return ConfigError("data", f"unknown dataset {data!r}", f"choose one of {', '.join(named)}, pass a file path,"
                       " or a Hub dataset ID (org/name) in the local Hugging Face cache")


TASK_DATA = {
    Task.LM: "text, prompt/completion or messages columns",
    Task.CLASSIFICATION: "text/label columns",
    Task.CONTRASTIVE: "query/positive columns",
}


def task_data(task: Task) -> str:
    """What data ``task`` trains on: the columns a file needs, and the builtin sets that fit."""
    names = builtin_names(task)
    return TASK_DATA[task] + (f" (builtin: {', '.join(names)})" if names else "")
