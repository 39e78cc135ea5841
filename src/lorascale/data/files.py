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
        return examples_from_records(_load_saved_dataset(p), str(p), task)
    if p.suffix not in (".jsonl", ".csv", ".txt", ".md"):
        raise ConfigError("data", f"{p}: unsupported file type {p.suffix!r}; use .jsonl, .csv, .txt or a saved dataset folder")
    try:
        if p.suffix == ".jsonl":
            records = _load_jsonl(p)
        elif p.suffix == ".csv":
            with p.open(newline="", encoding="utf-8") as f:
                records = list(csv.DictReader(f))
        else:
            text = p.read_text(encoding="utf-8")
            if not text.strip():
                raise ConfigError("data", f"{p} is empty")
            return Examples(p.name, Kind.TEXT, texts=[text]).check(str(p))
    except UnicodeDecodeError as e:
        raise ConfigError("data", f"{p} is not UTF-8 text (byte {e.start})", "save it as UTF-8") from None
    except OSError as e:  # unreadable: permissions, a device
        raise ConfigError("data", f"{p} cannot be read ({e.strerror})") from None
    return examples_from_records(records, str(p), task)


def _load_jsonl(p: Path) -> list[dict]:
    records = []
    with p.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ConfigError("data", f"{p}:{i} is not valid JSON ({e.msg})") from None
    return records


SAVED_DATASET_MARKERS = ("dataset_dict.json", "state.json")  # what datasets' save_to_disk writes (DatasetDict, Dataset)


def _load_saved_dataset(p: Path) -> list[dict]:
    if not any((p / m).is_file() for m in SAVED_DATASET_MARKERS):
        raise ConfigError("data", f"{p} is a folder but not a saved dataset (it has no {' or '.join(SAVED_DATASET_MARKERS)})",
                          "pass a .jsonl/.csv/.txt file, or a folder written by datasets' save_to_disk")
    try:
        from datasets import load_from_disk
    except ImportError:
        raise ConfigError("data", f"{p} is a saved dataset; install the `datasets` package to read it") from None
    try:
        ds = load_from_disk(str(p))
    except (FileNotFoundError, ValueError, OSError) as e:  # damaged: files listed in state.json are missing or unreadable
        raise ConfigError("data", f"{p} is a damaged saved dataset ({e})", "save it again with save_to_disk") from None
    if hasattr(ds, "keys") and "train" in ds:
        ds = ds["train"]
    return [dict(r) for r in ds]


def examples_from_records(records: list[dict], source: str, task: str | None) -> Examples:
    if not records:
        raise ConfigError("data", f"{source} holds no records")
    if not all(isinstance(r, dict) for r in records):
        raise ConfigError("data", f"{source}: every record must be an object with named fields")
    cols = set(records[0])
    if task == "classification" or (task is None and {"text", "label"} <= cols):
        _need_all(records, {"text", "label"}, source, "classification")
        raw = [r["label"] for r in records]
        empty = [i for i, y in enumerate(raw) if y is None or (isinstance(y, str) and not y.strip())]
        if empty:
            raise ConfigError("data", f"{source}: record {empty[0]} has an empty label ({len(empty)} such records); label every example")
        if all(isinstance(y, int) or (isinstance(y, str) and y.strip().lstrip("-").isdigit()) for y in raw):
            labels = [int(y) for y in raw]
            names = [str(i) for i in range(max(labels) + 1)]
            unused = sorted(set(range(len(names))) - set(labels))
            if unused and min(labels) >= 0:
                raise ConfigError("data", f"{source}: integer labels must be 0..K-1 with every class present; "
                                          f"class(es) {unused} never occur — renumber the labels or use string labels")
        else:
            names = sorted({str(y) for y in raw})
            labels = [names.index(str(y)) for y in raw]
        return Examples(source, Kind.LABELED, texts=[str(r["text"]) for r in records], labels=labels, label_names=names).check(source)
    if "messages" in cols:
        _need_all(records, {"messages"}, source, "chat records")
        prompts, completions = [], []
        for i, r in enumerate(records):
            msgs = _chat_messages(r["messages"], source, i)
            if msgs[-1]["role"] != "assistant":
                raise ConfigError("data", f"{source}: record {i} must end with an assistant message")
            prompts.append("\n".join(f"{m['role']}: {m['content']}" for m in msgs[:-1]) + "\nassistant: ")
            completions.append(str(msgs[-1]["content"]))
        return Examples(source, Kind.PAIR, prompts=prompts, completions=completions).check(source)
    if {"prompt", "completion"} & cols:
        _need_all(records, {"prompt", "completion"}, source, "prompt/completion")
        return Examples(source, Kind.PAIR, prompts=[str(r["prompt"]) for r in records],
                        completions=[str(r["completion"]) for r in records]).check(source)
    _need_all(records, {"text"}, source, "language modelling")
    return Examples(source, Kind.TEXT, texts=[str(r["text"]) for r in records]).check(source)


CHAT_SHAPE = 'e.g. {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}'


def _chat_messages(msgs, source: str, i: int) -> list[dict]:
    """Record ``i``'s ``messages``: a non-empty list of {role, content} objects, or a ConfigError saying which part is not."""
    if not isinstance(msgs, list) or not msgs:
        got = "an empty list" if isinstance(msgs, list) else f"{type(msgs).__name__} {str(msgs)[:40]!r}"
        raise ConfigError("data", f"{source}: record {i}: messages must be a non-empty list of messages, got {got}", CHAT_SHAPE)
    for j, m in enumerate(msgs):
        missing = [k for k in ("role", "content") if not isinstance(m, dict) or m.get(k) is None]
        if missing:
            what = f"lacks {' and '.join(missing)}" if isinstance(m, dict) else f"is {type(m).__name__} {str(m)[:40]!r}, not an object"
            raise ConfigError("data", f"{source}: record {i}: message {j} {what}", CHAT_SHAPE)
    return msgs


def _need_all(records: list[dict], required: set, source: str, what: str) -> None:
    """Every record carries the columns (CSV readers and JSONL writers drop fields per row)."""
    for i, r in enumerate(records):
        missing = sorted(c for c in required if c not in r or r[c] is None)
        if missing:
            where = "" if i == 0 else f" (record {i})"
            raise ConfigError(
                "data", f"{source} lacks column(s) {', '.join(missing)}{where} needed for {what}; "
                f"found columns: {', '.join(sorted(r))}"
            )
