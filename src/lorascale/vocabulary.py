"""The names lorascale's layers share: what a run is training for, and how a run ended.

Defined once here; records, storage, fits, the CLI and the Python API all use these enums (they are
``StrEnum``s, so a member equals its stored string: ``RunStatus.COMPLETE == "complete"``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Task", "RunStatus", "FINISHED", "RERUN", "HIGHER_IS_BETTER", "higher_is_better"]


class Task(StrEnum):
    """The training objective; PEFT's ``task_type`` and the evaluation metric follow from it."""

    LM = "lm"  # causal language modelling (plain text, prompt/completion, chat)
    CLASSIFICATION = "classification"  # sequence classification with a fresh head
    CONTRASTIVE = "contrastive"  # sentence embeddings: mean pooling, InfoNCE with in-batch negatives
    RLVR = "rlvr"  # RL with verifiable rewards: GRPO on generated problems (μA §5.3)

    @property
    def peft_task_type(self) -> str:
        return {Task.LM: "CAUSAL_LM", Task.CLASSIFICATION: "SEQ_CLS", Task.CONTRASTIVE: "FEATURE_EXTRACTION",
                Task.RLVR: "CAUSAL_LM"}[self]

    @property
    def eval_metric(self) -> str:
        """The held-out metric: NLL per token (lower is better); accuracy, the mean reciprocal rank of each
        held-out query's positive among all held-out positives, or the mean held-out reward (higher is better)."""
        return {Task.LM: "val_nll", Task.CLASSIFICATION: "val_accuracy", Task.CONTRASTIVE: "val_mrr",
                Task.RLVR: "val_reward"}[self]


HIGHER_IS_BETTER = frozenset({"val_accuracy", "val_mrr", "val_recall_at_1", "val_reward"})
"""Held-out metrics where higher is better; every other metric (losses, NLL) is minimised."""


def higher_is_better(metric: str | None) -> bool:
    return metric in HIGHER_IS_BETTER


class RunStatus(StrEnum):
    """How a run (or a sweep trial) stands or ended."""

    RUNNING = "running"
    COMPLETE = "complete"
    DIVERGED = "diverged"  # finished: the loss became non-finite or blew up; scored +inf
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM; re-run by the next sweep
    FAILED = "failed"  # an error in the run; re-run by the next sweep
    DUPLICATE = "duplicate"  # sweep only: a second claim of a point, closed without running


FINISHED = frozenset({RunStatus.COMPLETE, RunStatus.DIVERGED})
"""Statuses of a run that has a result and is never re-run."""

RERUN = frozenset({RunStatus.INTERRUPTED, RunStatus.FAILED})
"""Statuses of a run a sweep runs again."""
