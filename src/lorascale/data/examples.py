"""Raw examples before tokenisation: three shapes, validated before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ..errors import ConfigError
from ..vocabulary import Task

__all__ = ["Kind", "Examples"]


class Kind(StrEnum):
    """The data's layout. It decides the task (:class:`~lorascale.vocabulary.Task`, defined once there)."""

    TEXT = "text"  # causal LM on plain text, chunked into blocks
    PAIR = "pair"  # prompt/completion (or chat turns): loss on the completion only
    LABELED = "labeled"  # sequence classification (text, label)

    @property
    def task(self) -> Task:
        return Task.CLASSIFICATION if self is Kind.LABELED else Task.LM


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

    def __len__(self) -> int:
        return len(self.prompts) if self.kind is Kind.PAIR else len(self.texts)

    def check(self, source: str) -> "Examples":
        """Empty data, mismatched columns and labels out of range are errors, before training starts."""
        if len(self) == 0:
            raise ConfigError("data", f"{source} holds no examples; check the file or pick another dataset")
        if self.kind is Kind.PAIR and len(self.prompts) != len(self.completions):
            raise ConfigError("data", f"{source}: {len(self.prompts)} prompts but {len(self.completions)} completions")
        assert not self.chats or len(self.chats) == len(self.prompts), "chats and their plain prompts differ in number"
        if self.kind is Kind.LABELED:
            if len(self.labels) != len(self.texts):
                raise ConfigError("data", f"{source}: {len(self.texts)} texts but {len(self.labels)} labels")
            k = len(self.label_names)
            bad = [(i, y) for i, y in enumerate(self.labels) if not (isinstance(y, int) and 0 <= y < k)]
            if bad:
                i, y = bad[0]
                raise ConfigError(
                    "data", f"{source}: label {y!r} of example {i} is out of range [0, {k}); {len(bad)} such labels; "
                    "use integer labels 0..K-1 or string labels"
                )
            if k < 2:
                raise ConfigError("data", f"{source}: classification needs at least 2 classes, found {k}")
        return self
