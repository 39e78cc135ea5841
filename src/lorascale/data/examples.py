"""Raw examples before tokenisation: four shapes, validated before any model is loaded."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from ..errors import ConfigError
from ..vocabulary import Task

__all__ = ["Kind", "Examples"]

log = logging.getLogger(__name__)


class Kind(StrEnum):
    """The data's layout. It decides the task (:class:`~lorascale.vocabulary.Task`, defined once there)."""

    TEXT = "text"  # causal LM on plain text, chunked into blocks
    PAIR = "pair"  # prompt/completion (or chat turns): loss on the completion only
    LABELED = "labeled"  # sequence classification (text, label)
    QUERY_POSITIVE = "query-positive"  # contrastive pairs: each query's positive, the batch's others as negatives

    @property
    def task(self) -> Task:
        return {Kind.LABELED: Task.CLASSIFICATION, Kind.QUERY_POSITIVE: Task.CONTRASTIVE}.get(self, Task.LM)


@dataclass
class Examples:
    name: str
    kind: Kind
    texts: list[str] = field(default_factory=list)  # TEXT and LABELED
    prompts: list[str] = field(default_factory=list)  # PAIR
    completions: list[str] = field(default_factory=list)  # PAIR
    chats: list[list[dict]] = field(default_factory=list)  # PAIR from chat records: each whole conversation
    labels: list[int] = field(default_factory=list)  # LABELED, each in [0, len(label_names))
    label_names: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)  # QUERY_POSITIVE
    positives: list[str] = field(default_factory=list)  # QUERY_POSITIVE: positives[i] answers queries[i]

    def __len__(self) -> int:
        return {Kind.PAIR: len(self.prompts), Kind.QUERY_POSITIVE: len(self.queries)}.get(self.kind, len(self.texts))

    def check(self, source: str) -> "Examples":
        """Empty data, mismatched columns and labels out of range are errors, before training starts."""
        if len(self) == 0:
            raise ConfigError("data", f"{source} holds no examples", "check the file or pick another dataset")
        if self.kind is Kind.PAIR and len(self.prompts) != len(self.completions):
            raise ConfigError("data", f"{source}: {len(self.prompts)} prompts but {len(self.completions)} completions",
                              "give every prompt its completion")
        assert not self.chats or len(self.chats) == len(self.prompts), "chats and their plain prompts differ in number"
        if self.kind is Kind.QUERY_POSITIVE:
            self._check_pairs(source)
        if self.kind is Kind.LABELED:
            if len(self.labels) != len(self.texts):
                raise ConfigError("data", f"{source}: {len(self.texts)} texts but {len(self.labels)} labels", "label every text")
            k = len(self.label_names)
            bad = [(i, y) for i, y in enumerate(self.labels) if not (isinstance(y, int) and 0 <= y < k)]
            if bad:
                i, y = bad[0]
                raise ConfigError(
                    "data", f"{source}: label {y!r} of example {i} is out of range [0, {k}); {len(bad)} such labels",
                    "use integer labels 0..K-1 or string labels"
                )
            if k < 2:
                raise ConfigError("data", f"{source}: classification needs at least 2 classes, found {k}",
                                  "add examples of another class")
        return self

    def _check_pairs(self, source: str) -> None:
        """Contrastive pairs: equal columns, no blank text; repeated positives are warned about, because
        another query's copy of a pair's positive is a false negative in its batch and a tie in retrieval."""
        if len(self.queries) != len(self.positives):
            raise ConfigError("data", f"{source}: {len(self.queries)} queries but {len(self.positives)} positives",
                              "give every query its positive")
        if len(self) < 2:
            raise ConfigError("data", f"{source} holds {len(self)} pair; contrastive training needs at least 2 (the"
                                      " other pairs of a batch are each query's negatives)", "add query/positive pairs")
        for column, texts in (("query", self.queries), ("positive", self.positives)):
            blank = [i for i, t in enumerate(texts) if not t.strip()]
            if blank:
                raise ConfigError("data", f"{source}: the {column} of pair {blank[0]} is blank ({len(blank)} such pairs)",
                                  "drop those pairs or fill them in")
        repeated = sum(n - 1 for n in Counter(self.positives).values() if n > 1)
        if repeated:
            log.warning("%s: %d pair(s) repeat another pair's positive; in a batch holding both, each is the other's"
                        " negative, and held-out retrieval counts the copy as a tie against the query's own positive",
                        source, repeated)
