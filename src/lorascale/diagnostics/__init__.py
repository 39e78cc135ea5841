"""Diagnostics for LoRA training: signal/drift traces, μA feature-update terms, Hessian spectra.

* :class:`SignalDriftMonitor` — LoRA-α Prop. 1–2: ‖ΔW_signal‖, ‖ΔW_drift‖, their ratio and their
  alignment with −∂L/∂W, per layer type, every k steps.
* :class:`FeatureUpdateMonitor` — μA eq. (1): δ¹, δ², δ³ and Z_A on a fixed probe batch.
* :mod:`.hessian` (exact, torch.func) and :mod:`.spectral` (Lanczos / Hutchinson by Hessian-vector
  products) — LoRA-α Prop. 1, 3, 4: H_LoRA = H_signal + H_drift.
* :mod:`.hf` — the monitors as a ``transformers.TrainerCallback``; :mod:`.plots` — figures of a run's traces (LoRA-α's Fig. 2/8 live in :mod:`lorascale.repro.plots`).

Heavy modules (torch, matplotlib) load on first use of a name, so ``import lorascale.diagnostics``
is cheap.
"""

from __future__ import annotations

import importlib
from typing import Literal

from ..schema import PositiveInt, Settings, setting

__all__ = [
    "SignalDriftMonitor",
    "FeatureUpdateMonitor",
    "DiagnosticsSettings",
    "make_callbacks",
    "CALLBACK_NAMES",
    "trainer_callback",
]

CALLBACK_NAMES = ("signal-drift", "feature-updates")


class DiagnosticsSettings(Settings):
    """Which monitors a run carries, and how often they measure (``lorascale train``, :func:`make_callbacks`)."""

    diagnostics: tuple[Literal[CALLBACK_NAMES], ...] = setting(  # type: ignore[valid-type]
        (), "monitors to attach: " + ", ".join(CALLBACK_NAMES))
    diag_every: PositiveInt = setting(1, "measure every k-th optimizer step")


_LAZY = {
    "SignalDriftMonitor": ".signal_drift",
    "FeatureUpdateMonitor": ".feature_updates",
    "trainer_callback": ".hf",
}


def make_callbacks(names: list[str], every: int = 1, probe_batch=None) -> list:
    """Callbacks for ``train --diagnostics NAME ...``: "signal-drift" and/or "feature-updates".

    ``every``: measure every k-th optimizer step. ``probe_batch``: the feature-update monitor's fixed
    batch (None: the first training batch).
    """
    s = DiagnosticsSettings(diagnostics=tuple(names), diag_every=every)  # both problems at once, each with its fix
    names, every = s.diagnostics, s.diag_every  # as validated ("3" → 3)
    out = []
    for name in dict.fromkeys(names):  # de-duplicated, in the order given
        if name == "signal-drift":
            from .signal_drift import SignalDriftMonitor

            out.append(SignalDriftMonitor(every=every))
        else:
            from .feature_updates import FeatureUpdateMonitor

            out.append(FeatureUpdateMonitor(probe_batch=probe_batch, every=every))
    return out


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
