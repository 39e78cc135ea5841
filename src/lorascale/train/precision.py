"""A run's numeric precision: the ``precision`` setting, the launcher's choice and the device, reconciled.

``accelerate launch --mixed_precision X`` exports ``ACCELERATE_MIXED_PRECISION=X``; an explicit
``Accelerator(mixed_precision=...)`` would override it silently, so a run that states another
precision is refused, and ``auto`` follows the launcher. fp16 autocast needs a loss scale (accelerate
creates a ``GradScaler``, unscaled before clipping, steps skipped on overflow) and a GPU: on the CPU
it is refused.
"""

from __future__ import annotations

import os
from typing import Literal

from ..errors import ConfigError

__all__ = ["Precision", "mixed_precision", "fresh_accelerate_state", "LAUNCHER_ENV"]

Precision = Literal["auto", "fp32", "bf16", "fp16"]
LAUNCHER_ENV = "ACCELERATE_MIXED_PRECISION"
ACCELERATE_NAME = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # accelerate's names for our precisions


def mixed_precision(precision: Precision, cuda: bool, launcher: str | None = None) -> str:
    """accelerate's ``mixed_precision`` ("no", "bf16", "fp16", or the launcher's) for a run.

    ``launcher``: the launcher's choice (default: ``$ACCELERATE_MIXED_PRECISION``, None when unset).
    ``auto`` is the launcher's choice, else bf16 on a GPU and fp32 on the CPU.
    """
    launcher = (os.environ.get(LAUNCHER_ENV, "") if launcher is None else launcher).strip().lower()
    if launcher:
        if precision != "auto" and ACCELERATE_NAME[precision] != launcher:
            raise ConfigError("precision", f"the launcher set --mixed_precision {launcher} ({LAUNCHER_ENV}) but"
                              f" precision is {precision}; lorascale does not override the launcher silently",
                              f"use precision auto (follows the launcher), or launch with --mixed_precision"
                              f" {ACCELERATE_NAME[precision]}")
        chosen = launcher
    elif precision == "auto":
        chosen = "bf16" if cuda else "no"
    else:
        chosen = ACCELERATE_NAME[precision]
    if chosen == "fp16" and not cuda:
        raise ConfigError("precision", "fp16 needs a GPU (loss-scaled fp16 autocast); this run is on the CPU",
                          "use precision fp32 or bf16 on the CPU (auto picks fp32)")
    return chosen


def fresh_accelerate_state(wanted: str) -> None:
    """accelerate's process-wide state, made fit for a new run at precision ``wanted`` (accelerate's name).

    accelerate keeps one precision per process and refuses an Accelerator at another: a notebook that trained
    in fp32, then in bf16, or a sweep worker whose points differ in precision, would fail at the second run.
    In a single process the state holds nothing else worth keeping, so it starts afresh; under a distributed
    launch it also holds the process group, so the run is refused instead. The gradient state always starts
    afresh: a Trainer interrupted mid-accumulation leaves it at "do not sync", under which every optimizer
    step of the next run would be skipped."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    GradientState._reset_state()
    held = AcceleratorState._shared_state.get("_mixed_precision")
    if held is None or held == wanted:
        return
    if PartialState().num_processes > 1:
        raise ConfigError("precision", f"this process already trained at precision {held!r}; {wanted!r} needs its own launch",
                          fix="launch runs of different precisions separately under accelerate")
    AcceleratorState._reset_state(reset_partial_state=True)
