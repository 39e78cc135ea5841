"""The shape of a sweep spec file, as settings models: what each section may hold and each value's range.

Run settings inside a spec (``base``, a configuration entry, extra keys of ``paths``) are TrainConfig
keys; they are checked by TrainConfig itself when the points are expanded (:mod:`.spec`), so this
module only knows the spec's own keys. Ranges are those Optuna storage and the learning-rate grid
can hold: log2 η in [−40, 10] (η from 1e-12 to 1024), seeds in [0, 2³²), at most 1,000 values per axis.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError, ConfigErrors
from ..schema import errors_from_validation, Float, NonNegativeFloat, PositiveFloat, PositiveInt, Seed, Settings, same_setting, setting
from ..train.config import TrainConfig

__all__ = ["SweepFile", "GridSpec", "ConfigEntry", "PathsSpec", "Log2Range", "Resources", "LOG2_LR_RANGE", "MAX_AXIS"]

LOG2_LR_RANGE = (-40.0, 10.0)
MAX_AXIS = 1000


def _as_list(v: Any) -> Any:
    """A single value is a one-value axis (``ranks: 8``)."""
    return v if isinstance(v, (list, dict)) or v is None else [v]


Log2 = Annotated[Float, Field(ge=LOG2_LR_RANGE[0], le=LOG2_LR_RANGE[1])]


class Log2Range(Settings):
    """``{from: a, to: b, step: s}``: every exponent a, a+s, …, ≤ b (μA App. B.6 uses step 1)."""

    flat_keys: ClassVar[bool] = False
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


    start: Float = Field(alias="from", description="first exponent")
    to: Float = Field(description="last exponent (inclusive)")
    step: PositiveFloat = Field(1.0, description="spacing")

    @model_validator(mode="after")
    def _non_empty(self) -> "Log2Range":
        if self.to < self.start:
            raise ConfigError("to", f"{self.to:g} is below from {self.start:g}: an empty grid", "swap them")
        if (self.to - self.start) / self.step + 1 > MAX_AXIS:
            raise ConfigError("step", f"the range has more than {MAX_AXIS} values", "use a larger step")
        return self

    def values(self) -> tuple[float, ...]:
        n = int(math.floor((self.to - self.start) / self.step + 1e-9)) + 1
        return tuple(float(self.start + i * self.step) for i in range(n))


def _log2_axis(v: Any) -> Any:
    """A list of exponents, or a ``{from, to, step}`` range expanded to its values."""
    if not isinstance(v, dict):
        return _as_list(v)
    try:
        return list(Log2Range.model_validate(v).values())
    except ValidationError as e:
        errors = errors_from_validation(e, Log2Range)
    except ConfigErrors as e:
        errors = e.errors
    shown = "{" + ", ".join(f"{k}: {x}" for k, x in v.items()) + "}"
    raise ValueError(f"range {shown}: " + "; ".join(f"{x.field}: {x.message}" + (f" ({x.fix})" if x.fix else "")
                                                    for x in errors))


Log2Axis = Annotated[list[Log2], BeforeValidator(_log2_axis)]
Ranks = Annotated[list[PositiveInt], BeforeValidator(_as_list)]
Seeds = Annotated[list[Seed], BeforeValidator(_as_list)]
Multipliers = Annotated[list[PositiveFloat], BeforeValidator(_as_list)]


class _Axes(Settings):
    flat_keys: ClassVar[bool] = False

    @field_validator("ranks", "seeds", "alpha_multipliers", "log2_lr", "multipliers", check_fields=False)
    @classmethod
    def _each_once(cls, v):
        if v is None:
            return v
        if not v:
            raise ValueError("empty grid: list at least one value")
        if len(set(v)) != len(v):
            raise ValueError(f"repeats values {v}; list each once")
        return v


class ConfigEntry(_Axes):
    """One configuration of a grid: a label, TrainConfig keys, and optional per-configuration axes."""

    model_config = ConfigDict(frozen=True, extra="allow")
    name: str | None = setting(None, "the configuration's label (default: derived from its rule and init)")
    ranks: Ranks | None = setting(None, "ranks for this configuration only")
    log2_lr: Log2Axis | None = setting(None, "log2 learning rates for this configuration only (μA Table 6)")
    alpha_multipliers: Multipliers | None = setting(None, "α multipliers for this configuration only")

    def settings(self) -> dict:
        """The TrainConfig keys it sets."""
        return dict(self.model_extra or {})


class GridSpec(_Axes):
    """μA §5.1 / App. B.6: configurations × ranks × log2 η grid × α multipliers × seeds."""

    configs: list[ConfigEntry] = Field(min_length=1, description="configurations, full finetuning included")
    ranks: Ranks | None = setting(None, "LoRA ranks")
    log2_lr: Log2Axis | None = setting(None, "log2 learning rates: a list, or {from, to, step}")
    alpha_multipliers: Multipliers = setting([1.0], "multiply the rule's α knob (alpha or lora_alpha)")
    seeds: Seeds = setting([0], "seeds: each fixes the adapter init and data order")


class PathsSpec(_Axes):
    """LoRA-α §2 eq. (2): from (η_FFT, α₀), the η-path scales η by m and the α-path scales α by m."""

    model_config = ConfigDict(frozen=True, extra="allow")
    name: str = setting("LoRA-α paths", "the paths' label")
    ranks: Ranks = setting(..., "LoRA ranks")
    lr_fft: PositiveFloat = same_setting(TrainConfig, "lr_fft", default=..., description="η_FFT, the paths' base learning rate")
    alpha0: PositiveFloat = setting(..., "α₀, the paths' base multiplier knob", fix="LoRA-α uses α₀ = 16")
    multipliers: Log2Axis = setting(..., "log2 m: a list, or {from, to, step}")
    which: list[Literal["eta", "alpha"]] = setting(["eta", "alpha"], "which paths: eta and/or alpha", min_length=1)
    seeds: Seeds = setting([0], "seeds")

    def settings(self) -> dict:
        return dict(self.model_extra or {})


class Resources(Settings):
    flat_keys: ClassVar[bool] = False
    cpus: PositiveFloat = setting(1.0, "CPUs per trial (Ray)")
    gpus: NonNegativeFloat = setting(0.0, "GPUs per trial (Ray)")


class SweepFile(Settings):
    """A whole spec file. ``base`` holds TrainConfig keys shared by every point."""

    flat_keys: ClassVar[bool] = False
    name: str | None = setting(None, "the Optuna study name (default: the file's stem)",
                               pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", fix="use letters, digits, '.', '_' and '-'")
    description: str = setting("", "what the sweep is for")
    base: dict[str, Any] = setting(..., "TrainConfig keys shared by every point: model, data, budget, ...",
                                   fix="add a base: mapping, e.g. base: {model: tiny-llama, data: shakespeare, steps: 20}")
    grid: GridSpec | None = setting(None, "μA learning-rate grids")
    paths: PathsSpec | None = setting(None, "LoRA-α scaling paths")
    resources: Resources = setting(Resources(), "per-trial resources for the ray backend")
