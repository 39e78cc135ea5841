"""User data: JSONL, CSV, plain text, or a `datasets` dataset saved to disk.

Columns decide the shape: ``text`` (+ ``label`` for classification), ``prompt``/``completion``,
or chat ``messages`` (list of {role, content}; the last assistant turn is the completion).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import ConfigError
from .examples import Examples, Kind

__all__ = ["load_file", "examples_from_records"]


def load_file(path: str | Path, task: str | None) -> Examples:
    p = Path(path)
    if not p.exists():
        raise ConfigError("data", f"{p} does not exist; pass a builtin dataset name or a .jsonl/.csv/.txt file or a saved dataset folder")
    if p.is_dir():
        records = _load_saved_dataset(p)
    elif p.suffix == ".jsonl":
        records = _load_jsonl(p)
    elif p.suffix == ".csv":
        with p.open(newline="") as f:
            records = list(csv.DictReader(f))
    elif p.suffix in (".txt", ".md"):
        text = p.read_text()
        if not text.strip():
            raise ConfigError("data", f"{p} is empty")
        return Examples(p.name, Kind.TEXT, texts=[text]).check(str(p))
    else:
        raise ConfigError("data", f"{p}: unsupported file type {p.suffix!r}; use .jsonl, .csv, .txt or a saved dataset folder")
    return examples_from_records(records, str(p), task)


def _load_jsonl(p: Path) -> list[dict]:
    records = []
    with p.open() as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ConfigError("data", f"{p}:{i} is not valid JSON ({e.msg})") from None
    return records


def _load_saved_dataset(p: Path) -> list[dict]:
    try:
        from datasets import load_from_disk
    except ImportError:
        raise ConfigError("data", f"{p} looks like a saved dataset; install the `datasets` package to read it") from None
    ds = load_from_disk(str(p))
    if hasattr(ds, "keys") and "train" in ds:
        ds = ds["train"]
    return [dict(r) for r in ds]


def examples_from_records(records: list[dict], source: str, task: str | None) -> Examples:
    if not records:
        raise ConfigError("data", f"{source} holds no records")
    cols = set(records[0])
    if task == "classification" or (task is None and {"text", "label"} <= cols):
        _need(cols, {"text", "label"}, source, "classification")
        raw = [r["label"] for r in records]
        if all(isinstance(y, int) or (isinstance(y, str) and y.lstrip("-").isdigit()) for y in raw):
            labels = [int(y) for y in raw]
            names = [str(i) for i in range(max(labels) + 1)]
        else:
            names = sorted({str(y) for y in raw})
            labels = [names.index(str(y)) for y in raw]
        return Examples(source, Kind.LABELED, texts=[str(r["text"]) for r in records], labels=labels, label_names=names).check(source)
    if "messages" in cols:
        prompts, completions = [], []
        for i, r in enumerate(records):
            msgs = r["messages"]
            if not msgs or msgs[-1].get("role") != "assistant":
                raise ConfigError("data", f"{source}: record {i} must end with an assistant message")
            prompts.append("\n".join(f"{m['role']}: {m['content']}" for m in msgs[:-1]) + "\nassistant: ")
            completions.append(str(msgs[-1]["content"]))
        return Examples(source, Kind.PAIR, prompts=prompts, completions=completions).check(source)
    if {"prompt", "completion"} & cols:
        _need(cols, {"prompt", "completion"}, source, "prompt/completion")
        return Examples(source, Kind.PAIR, prompts=[str(r["prompt"]) for r in records],
                        completions=[str(r["completion"]) for r in records]).check(source)
    _need(cols, {"text"}, source, "language modelling")
    return Examples(source, Kind.TEXT, texts=[str(r["text"]) for r in records]).check(source)


def _need(cols: set, required: set, source: str, what: str) -> None:
    missing = sorted(required - cols)
    if missing:
        raise ConfigError(
            "data", f"{source} lacks column(s) {', '.join(missing)} needed for {what}; found columns: {', '.join(sorted(cols))}"
        )
