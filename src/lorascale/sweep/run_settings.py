"""How a sweep runs (not what it sweeps): workers, members per pack, backend and Ray's resources.

One settings model: ``run_sweep`` validates its arguments through it, and ``lorascale sweep`` derives its
flags from it, so each setting, its default, its bounds and its fix are written once.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, StrictStr, model_validator

from ..errors import ConfigError, ConfigErrors
from ..schema import NonNegativeFloat, PositiveFloat, PositiveInt, Settings, setting

__all__ = ["SweepRunSettings", "Members", "parse_members"]


def parse_members(value) -> int | str:
    """``members``: a positive integer, or ``auto``."""
    if value == "auto":
        return "auto"
    try:
        k = int(value)
        exact = float(value) == k
    except (TypeError, ValueError):
        k, exact = 0, False
    if k < 1 or not exact or isinstance(value, bool):
        raise ConfigError("members", f"must be a positive integer or auto, got {value!r}", "e.g. 8, or auto")
    return k


Members = Annotated[int | Literal["auto"], BeforeValidator(parse_members)]


class SweepRunSettings(Settings):
    """How ``run_sweep`` runs a spec's points; what it sweeps is the spec's."""

    workers: PositiveInt = setting(1, "local worker processes; they split the CPU cores",
                                   fix="use 1 or more workers (on Ray, set `cpus_per_trial` instead)")
    members: Members = setting(1, "train up to K compatible points at once on one frozen base (auto: as many as fit"
                               " in memory). Results equal separate runs", fix="e.g. 8, or auto")
    backend: Literal["local", "ray"] = setting("local", "local processes, or a Ray cluster")
    address: StrictStr | None = setting(None, "Ray cluster address for the ray backend (default: start a local Ray)")
    cpus_per_trial: PositiveFloat | None = setting(None, "Ray: CPUs per trial (default: the spec's resources.cpus)")
    gpus_per_trial: NonNegativeFloat | None = setting(None, "Ray: GPUs per trial (default: the spec's resources.gpus)")

    @model_validator(mode="after")
    def _backend_options(self) -> "SweepRunSettings":
        errors = []
        if self.address is not None and self.backend != "ray":
            errors.append(ConfigError("address", "only applies to the ray backend", "drop it, or set `backend` to ray"))
        if self.backend == "ray" and self.workers != 1:
            errors.append(ConfigError("workers", "Ray schedules one task per trial by its resources",
                                      "set `cpus_per_trial` / `gpus_per_trial` instead of `workers`"))
        ConfigErrors.raise_if_any(errors)
        return self
