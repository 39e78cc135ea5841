"""The names lorascale's layers share: what a run is training for, and how a run ended.

Defined once here; records, storage, fits, the CLI and the Python API all use these enums (they are
``StrEnum``s, so a member equals its stored string: ``RunStatus.COMPLETE == "complete"``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Task", "RunStatus", "FINISHED", "RERUN", "HIGHER_IS_BETTER"]


class Task(StrEnum):
    """The training objective; PEFT's ``task_type`` and the evaluation metric follow from it."""

    LM = "lm"  # causal language modelling (plain text, prompt/completion, chat)
    CLASSIFICATION = "classification"  # sequence classification with a fresh head
    RLVR = "rlvr"  # RL with verifiable rewards: GRPO on generated problems (μA §5.3)

    @property
    def peft_task_type(self) -> str:
        return {Task.LM: "CAUSAL_LM", Task.CLASSIFICATION: "SEQ_CLS", Task.RLVR: "CAUSAL_LM"}[self]

    @property
    def eval_metric(self) -> str:
        """The held-out metric: NLL per token (lower is better), accuracy or reward (higher is better)."""
        return {Task.LM: "val_nll", Task.CLASSIFICATION: "val_accuracy", Task.RLVR: "val_reward"}[self]


HIGHER_IS_BETTER = frozenset({"val_accuracy", "val_reward"})
"""Held-out metrics where a larger value is better (every loss, and ``val_nll``, is lower-is-better)."""


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
