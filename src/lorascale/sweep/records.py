"""The stored-record schema: a record is a point's coordinates plus the outcome of its run.

Pure values, no optuna: storage writes these dicts into trial user attrs and reads them back, the
fits read :class:`Record`. This module is the one definition of the keys stored per trial:

* ``point`` (user attr): :class:`PointCoords` as :meth:`PointCoords.to_dict` writes it, the
  coordinates of the point in the sweep (``COORDINATE_KEYS``);
* the outcome attrs: :class:`Outcome` fields as :meth:`Outcome.stored_attrs` writes them
  (``OUTCOME_ATTRS``); the EMA curve is stored as the trial's intermediate values instead.

Non-finite numbers are stored as the strings ``"inf"``, ``"-inf"`` and ``"nan"`` (strict JSON has no
token for them) and read back as those floats, so a "complete" run whose held-out loss was NaN still
scores as the worst value after a round trip. The oldest studies stored the same strings and read the
same way; studies written in between stored ``null``, which reads as ``None`` (no result), as it did then.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields

from ..errors import ConfigError
from ..rules import Finetune
from ..vocabulary import FINISHED, RERUN, RunStatus

__all__ = [
    "PointCoords", "Outcome", "Record", "COORDINATE_KEYS", "OUTCOME_ATTRS", "RECORD_STATUSES",
    "json_number", "read_number",
]

RECORD_STATUSES = tuple(s for s in RunStatus if s in FINISHED | RERUN)
"""Statuses of a run that ran: complete, diverged, interrupted, failed (a record has one of these)."""


@dataclass(frozen=True, kw_only=True)
class PointCoords:
    """Where a run sits in the sweep; ``paths`` lists its LoRA-α path memberships ("eta"|"alpha", m)."""

    key: str  # the point's stable key (a hash of its resolved TrainConfig)
    config: str  # the configuration's label
    rank: int | None  # None for full finetuning
    log2_lr: float
    alpha_mult: float = 1.0
    seed: int
    finetune: str = Finetune.LORA.value
    paths: tuple[tuple[str, float], ...] = ()
    init: str | None = None
    gamma_eff: float | None = None  # the multiplier scales as s ∝ r^-γ_eff
    predicted_slope: float | None = None  # μA's d log η*/d log r for this configuration (Table 1)
    peft_alpha: float | None = None  # PEFT lora_alpha equivalent s·r: LoRA-α's α (Fig. 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple((str(p), float(m)) for p, m in self.paths))

    def to_dict(self) -> dict:
        """JSON values, as stored in a trial's ``point`` attr (paths as lists)."""
        d = asdict(self)
        d["paths"] = [list(p) for p in self.paths]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PointCoords":
        """The inverse of :meth:`to_dict`; unknown or missing keys are an error, not dropped or guessed."""
        d = _known(d, COORDINATE_KEYS, "point")
        missing = [f.name for f in fields(cls) if f.name not in d and f.default is MISSING]
        if missing:
            raise ConfigError("point", f"stored coordinates lack {missing} (a point has {', '.join(COORDINATE_KEYS)})",
                              "the study was not written by lorascale sweep; store it with `lorascale sweep`")
        return cls(**d)


COORDINATE_KEYS = tuple(f.name for f in fields(PointCoords))


@dataclass(frozen=True)
class Outcome:
    """What a run produced (the fields of ``lorascale.train.loop.RunResult`` a sweep keeps).

    ``final_ema_loss`` is what the run reported (+inf or NaN for some diverged runs); storage keeps
    non-finite values as they were (:func:`json_number`). ``ema_curve``: (step, EMA loss) pairs.
    """

    status: RunStatus
    final_ema_loss: float | None
    eval_metric: str | None = None  # val_nll (lower is better) | val_accuracy, val_mrr (higher)
    eval_value: float | None = None
    val_loss: float | None = None  # validation loss, beside the EMA training loss
    wall_time: float = 0.0
    ema_curve: tuple[tuple[int, float], ...] = ()
    message: str = ""
    run_dir: str | None = None

    def __post_init__(self) -> None:
        status = RunStatus(self.status)  # ValueError for an unknown status
        if status not in RECORD_STATUSES:
            raise ValueError(f"a run's outcome is one of {', '.join(RECORD_STATUSES)}, got {status!r}")
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "ema_curve", tuple((int(s), float(v)) for s, v in self.ema_curve))

    @classmethod
    def from_result(cls, result) -> "Outcome":
        """From a ``RunResult`` of ``lorascale.train.loop.train``."""
        run_dir = getattr(result, "run_dir", None)
        return cls(result.status, result.final_ema_loss, result.eval_metric, result.eval_value, result.val_loss,
                   result.wall_time, tuple(result.ema_curve), result.message, None if run_dir is None else str(run_dir))

    def stored_attrs(self) -> dict:
        """The outcome as JSON user attrs (``OUTCOME_ATTRS``): non-finite numbers become "inf"/"-inf"/"nan"."""
        return {"status": str(self.status), "final_ema_loss": json_number(self.final_ema_loss),
                "eval_metric": self.eval_metric, "eval_value": json_number(self.eval_value),
                "val_loss": json_number(self.val_loss), "wall_time": float(self.wall_time),
                "message": self.message, "run_dir": self.run_dir}

    @classmethod
    def from_stored(cls, attrs: dict, curve=()) -> "Outcome":
        """The inverse of :meth:`stored_attrs` (a null number reads as None)."""
        a = _known(attrs, OUTCOME_ATTRS, "outcome")
        try:
            return cls(a.get("status"), read_number(a.get("final_ema_loss")), a.get("eval_metric"),
                       read_number(a.get("eval_value")), read_number(a.get("val_loss")),
                       float(a.get("wall_time") or 0.0), tuple(curve), a.get("message") or "", a.get("run_dir"))
        except ValueError as e:
            raise ConfigError("outcome", str(e), "the stored outcome is damaged: re-run its trial with `lorascale sweep`") from None


OUTCOME_ATTRS = tuple(f.name for f in fields(Outcome) if f.name != "ema_curve")


@dataclass(frozen=True)
class Record:
    """One stored run: where it sits in the sweep (``point``) and what it produced (``outcome``).

    ``rec.rank`` reads ``rec.point.rank`` (any coordinate; callers select records by them), and
    ``rec.curve`` is ``rec.outcome.ema_curve``; outcome fields are read through ``rec.outcome``.
    """

    point: PointCoords
    outcome: Outcome

    def __getattr__(self, name: str):
        if name in COORDINATE_KEYS:  # only called when normal lookup fails: never for point/outcome
            return getattr(self.point, name)
        raise AttributeError(f"Record has no attribute {name!r}; coordinates are on .point, results on .outcome")

    @property
    def curve(self) -> tuple[tuple[int, float], ...]:
        return self.outcome.ema_curve

    def to_dict(self) -> dict:
        return {"point": self.point.to_dict(), "outcome": {**self.outcome.stored_attrs(), "ema_curve": [
            list(p) for p in self.outcome.ema_curve]}}

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        """The inverse of :meth:`to_dict`; unknown keys at either level are an error."""
        d = _known(d, ("point", "outcome"), "record")
        out = dict(d.get("outcome") or {})
        curve = out.pop("ema_curve", ())
        return cls(PointCoords.from_dict(d.get("point") or {}), Outcome.from_stored(out, curve))


def json_number(v) -> float | str | None:
    """A number as strict JSON can hold it: None for None, a non-finite value as "inf", "-inf" or "nan"."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else str(v)


def read_number(v) -> float | None:
    """The inverse of :func:`json_number`: None for null, the float a number or an "inf"/"-inf"/"nan" string names."""
    return None if v is None else float(v)


def _known(d, keys: tuple[str, ...], what: str) -> dict:
    """``d`` as a dict after checking it has only ``keys``; names the unknown ones otherwise."""
    if not isinstance(d, dict):
        raise ConfigError(what, f"a stored {what} must be a mapping, got {type(d).__name__}",
                          "the study was not written by lorascale sweep; store it with `lorascale sweep`")
    unknown = sorted(set(d) - set(keys))
    if unknown:
        raise ConfigError(what, f"unknown stored keys {unknown}; a {what} has {', '.join(keys)}",
                          "it was written by another lorascale version: read it with that version")
    return dict(d)
