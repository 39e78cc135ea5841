"""User data: JSONL, CSV, plain text, a `datasets` dataset saved to disk, or a Hub dataset in the local
Hugging Face cache (its files read by ``datasets.load_dataset``, offline).

Columns decide the shape: ``text`` (+ ``label`` for classification), ``prompt``/``completion``,
chat ``messages`` (list of {role, content}; the last assistant turn is the completion), or
``query``/``positive`` (contrastive pairs).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import ConfigError
from ..vocabulary import Task
from .chat import plain_chat
from .examples import Examples, Kind

__all__ = ["load_file", "load_hub_dataset", "examples_from_records"]


def load_file(path: str | Path, task: str | None) -> Examples:
    p = Path(path)
    if not p.exists():
        raise ConfigError("data", f"{p} does not exist", "pass a builtin dataset name, a .jsonl/.csv/.txt file or a saved dataset folder")
    if p.is_dir():
        return examples_from_records(_load_saved_dataset(p), str(p), task)
    if p.suffix not in (".jsonl", ".csv", ".txt", ".md"):
        raise ConfigError("data", f"{p}: unsupported file type {p.suffix!r}", "use .jsonl, .csv, .txt or a saved dataset folder")
    try:
        if p.suffix == ".jsonl":
            records = _load_jsonl(p)
        elif p.suffix == ".csv":
            with p.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel's byte-order mark is not a column name
                records = list(csv.DictReader(f))
            _check_csv_widths(records, str(p))
        else:
            text = p.read_text(encoding="utf-8-sig")
            if not text.strip():
                raise ConfigError("data", f"{p} is empty", "pass a file with text in it")
            return Examples(p.name, Kind.TEXT, texts=[text]).check(str(p))
    except UnicodeDecodeError as e:
        raise ConfigError("data", f"{p} is not UTF-8 text (byte {e.start})", "save it as UTF-8") from None
    except OSError as e:  # unreadable: permissions, a device
        raise ConfigError("data", f"{p} cannot be read ({e.strerror})", "check its permissions") from None
    return examples_from_records(records, str(p), task)


def _check_csv_widths(records: list[dict], source: str) -> None:
    """Every CSV row has the header's number of fields: csv.DictReader files extra ones under the key None,
    so "hello, world,a" under "text,label" would read as text "hello", label " world"."""
    wide = [i for i, r in enumerate(records) if None in r]
    if wide:
        raise ConfigError("data", f"{_record_at(source, wide[0])} has more fields than the header"
                          f" ({len(wide)} row{'s' * (len(wide) > 1)} in all)",
                          'quote fields that contain commas: "hello, world",a')
    narrow = [i for i, r in enumerate(records) if None in r.values()]  # DictReader fills missing fields with None
    if narrow:
        raise ConfigError("data", f"{_record_at(source, narrow[0])} has fewer fields than the header"
                          f" ({len(narrow)} row{'s' * (len(narrow) > 1)} in all)",
                          "give every row a value for each column (an empty one as two commas: a,,b)")


def _load_jsonl(p: Path) -> list[dict]:
    records = []
    with p.open(encoding="utf-8-sig") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ConfigError("data", f"{p}:{i} is not valid JSON ({e.msg})", "write one JSON object per line") from None
    return records


SAVED_DATASET_MARKERS = ("dataset_dict.json", "state.json")  # what datasets' save_to_disk writes (DatasetDict, Dataset)


def _load_saved_dataset(p: Path) -> list[dict]:
    if not any((p / m).is_file() for m in SAVED_DATASET_MARKERS):
        raise ConfigError("data", f"{p} is a folder but not a saved dataset (it has no {' or '.join(SAVED_DATASET_MARKERS)})",
                          "pass a .jsonl/.csv/.txt file, or a folder written by datasets' save_to_disk")
    try:
        from datasets import load_from_disk
    except ImportError:
        raise ConfigError("data", f"{p} is a saved dataset", "install the `datasets` package to read it") from None
    try:
        ds = load_from_disk(str(p))
    except (FileNotFoundError, ValueError, OSError) as e:  # damaged: files listed in state.json are missing or unreadable
        raise ConfigError("data", f"{p} is a damaged saved dataset ({e})", "save it again with save_to_disk") from None
    if hasattr(ds, "keys"):  # a DatasetDict: its train split, or its only one
        names = list(ds.keys())
        if "train" not in ds and len(names) != 1:
            raise ConfigError("data", f"{p} is a saved DatasetDict with splits {', '.join(names)} and no train split",
                              "save the split to train on alone (ds['…'].save_to_disk), or name it train")
        ds = ds["train" if "train" in ds else names[0]]
    return [dict(r) for r in ds]


def load_hub_dataset(repo_id: str, task: str | None) -> Examples:
    """The ``train`` split (else the first) of a Hub dataset's cached snapshot."""
    from ..hub import cached_snapshot

    folder = cached_snapshot(repo_id, "dataset", field="data")
    try:
        from datasets import load_dataset
    except ImportError:
        raise ConfigError("data", f"{repo_id} is a Hub dataset; reading it needs the `datasets` package",
                          "pip install datasets") from None
    try:
        splits = load_dataset(str(folder))
    except ValueError as e:  # several configs and none named, or no data files the loader knows
        raise ConfigError("data", f"{repo_id}: the datasets library cannot read its cached snapshot as one dataset ({e})",
                          "load the config and split to train on yourself (datasets.load_dataset(repo, config)['train'])"
                          " and save it with save_to_disk, then pass that folder") from None
    split = splits["train"] if "train" in splits else next(iter(splits.values()))
    return examples_from_records([dict(r) for r in split], repo_id, task)


def examples_from_records(records: list[dict], source: str, task: str | None) -> Examples:
    if not records:
        raise ConfigError("data", f"{source} holds no records", "check the file or pick another dataset")
    if not all(isinstance(r, dict) for r in records):
        raise ConfigError("data", f"{source}: a record is not an object with named fields",
                          'write each record as an object, e.g. {"text": …}')
    cols = set().union(*records)  # every record's columns: a label on some records is not dropped silently
    if task == Task.CONTRASTIVE or (task is None and {"query", "positive"} & cols):
        _need_all(records, {"query", "positive"}, source, "contrastive pairs")
        return Examples(source, Kind.QUERY_POSITIVE, queries=[str(r["query"]) for r in records],
                        positives=[str(r["positive"]) for r in records]).check(source)
    if task == Task.CLASSIFICATION or (task is None and {"text", "label"} <= cols):
        _need_all(records, {"text", "label"}, source, "classification")
        raw = [r["label"] for r in records]
        empty = [i for i, y in enumerate(raw) if y is None or (isinstance(y, str) and not y.strip())]
        if empty:
            raise ConfigError("data", f"{source}: record {empty[0]} has an empty label ({len(empty)} such records)", "label every example")
        fractional = [i for i, y in enumerate(raw) if _non_integer_number(y)]
        if fractional:
            i = fractional[0]
            raise ConfigError("data", f"{_record_at(source, i)}: label {raw[i]!r} is a number but not an integer"
                                      f" ({len(fractional)} such labels); a class label cannot be fractional",
                              "labels must be integers 0..K-1 (write 1, not 1.0) or strings naming classes")
        if all(isinstance(y, int) or (isinstance(y, str) and y.strip().lstrip("-").isdigit()) for y in raw):
            labels = [int(y) for y in raw]
            names = [str(i) for i in range(max(labels) + 1)]
            unused = sorted(set(range(len(names))) - set(labels))
            if unused and min(labels) >= 0:
                raise ConfigError("data", f"{source}: integer labels must be 0..K-1 with every class present;"
                                          f" class(es) {unused} never occur", "renumber the labels or use string labels")
        else:
            names = sorted({str(y) for y in raw})
            labels = [names.index(str(y)) for y in raw]
        return Examples(source, Kind.LABELED, texts=[str(r["text"]) for r in records], labels=labels, label_names=names).check(source)
    if "messages" in cols:
        _need_all(records, {"messages"}, source, "chat records")
        prompts, completions, chats = [], [], []
        for i, r in enumerate(records):
            msgs = _chat_messages(r["messages"], source, i)
            if msgs[-1]["role"] != "assistant":
                raise ConfigError("data", f"{source}: record {i} does not end with an assistant message",
                                  "end each chat with the assistant reply to train on")
            chats.append([{"role": str(m["role"]), "content": _content_text(m["content"], source, i, j)}
                          for j, m in enumerate(msgs)])
            prompt, completion = plain_chat(chats[-1])  # the format without a chat template (see data.chat)
            prompts.append(prompt)
            completions.append(completion)
        return Examples(source, Kind.PAIR, prompts=prompts, completions=completions, chats=chats).check(source)
    if {"prompt", "completion"} & cols:
        _need_all(records, {"prompt", "completion"}, source, "prompt/completion")
        return Examples(source, Kind.PAIR, prompts=[str(r["prompt"]) for r in records],
                        completions=[str(r["completion"]) for r in records]).check(source)
    _need_all(records, {"text"}, source, "language modelling")
    return Examples(source, Kind.TEXT, texts=[str(r["text"]) for r in records]).check(source)


def _non_integer_number(y) -> bool:
    """A label written as a number that is not a whole one: 1.5, "1.5", "2e-3", even "1.0" (which a
    string label would make a class apart from "1"). "nan" and "inf" are words here, not numbers."""
    if isinstance(y, float):
        return True
    if not isinstance(y, str) or not any(ch.isdigit() for ch in y) or y.strip().lstrip("+-").isdigit():
        return False
    try:
        float(y)
    except ValueError:
        return False
    return True


def _record_at(source: str, i: int) -> str:
    """Where record ``i`` of ``source`` is: "file.csv:LINE" for CSV and JSONL files, else "source: record i"."""
    p = Path(source)
    try:
        if p.suffix == ".csv":
            with p.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                for n, _ in enumerate(reader):  # row 0 is the header; a quoted field may span lines
                    if n == i + 1:
                        return f"{source}:{reader.line_num}"
        elif p.suffix == ".jsonl":
            with p.open(encoding="utf-8-sig") as f:
                seen = -1
                for line_no, line in enumerate(f, 1):  # blank lines hold no record
                    seen += bool(line.strip())
                    if seen == i:
                        return f"{source}:{line_no}"
    except OSError:
        pass
    return f"{source}: record {i}"


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


def _content_text(content, source: str, i: int, j: int) -> str:
    """A message's content as text: a string, or a list of OpenAI-style parts whose text parts are joined by
    newlines ({"type": "text", "text": …}); any other part (an image) is refused, not trained as its repr."""
    if not isinstance(content, list):
        return str(content)
    other = [p.get("type") if isinstance(p, dict) else type(p).__name__ for p in content
             if not (isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))]
    if other:
        raise ConfigError("data", f"{source}: record {i}: message {j} has content parts that are not text"
                                  f" ({', '.join(map(str, other))})",
                          'give text only: a string, or parts like {"type": "text", "text": "…"}')
    return "\n".join(p["text"] for p in content)


def _need_all(records: list[dict], required: set, source: str, what: str) -> None:
    """Every record carries the columns (CSV readers and JSONL writers drop fields per row); every record
    that does not is counted, and the first few are named."""
    bad = []
    for i, r in enumerate(records):
        absent = sorted(c for c in required if c not in r)
        null = sorted(c for c in required if c in r and r[c] is None)
        if absent or null:
            parts = ([f"lacks {', '.join(absent)}"] if absent else []) + ([f"has {', '.join(null)} null"] if null else [])
            bad.append(f"record {i} {' and '.join(parts)}")
    if bad:
        found = sorted({str(k) for r in records for k in r if k is not None})
        raise ConfigError(
            "data", f"{source}: {len(bad)} of {len(records)} records miss column(s) needed for {what} ({', '.join(sorted(required))}):"
                    f" {'; '.join(bad[:3])}{' …' if len(bad) > 3 else ''}",
            f"found columns: {', '.join(found)}; give every record the missing ones (or rename them)"
        )
