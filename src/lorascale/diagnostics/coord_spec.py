"""What ``lorascale coord-check`` measures: the configurations, the learning-rate rules and the
settings. Torch-free, so the command's flags cost no torch import (:mod:`.coord_check` runs it)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import StrictStr, field_validator, model_validator

from ..adapters.spec import AdapterSpec
from ..errors import ConfigError, ConfigErrors
from ..rules import Init, MuAConfig, RuleSpec, ScaleRule, transfer_lr
from ..schema import PositiveFloat, PositiveInt, Settings, same_setting, setting
from ..train.config import TrainConfig

__all__ = ["CoordConfig", "LrRule", "CoordCheckSettings", "learning_rate", "TERMS", "FAMILIES"]

TERMS = ("delta1", "delta2", "delta3", "z_b", "z_a", "update_a", "update_b")
"""Logged per step: μA eq. (1)'s δⁱ, the feature update Z_B^t = s·B_t·A_t·x, Z_A^{t−1}, ΔA and ΔB (entry RMS)."""
FAMILIES = ("tiny-llama", "tiny-bert")  # randomly initialised models whose width is a parameter (models.py)


class CoordConfig(StrEnum):
    """μA's three configurations (Table 1, Cor. 4.6) and LoRA-α's two variants (eq. 5)."""

    MUA_A = "mua-A-1"  # Init[A], α = 1
    MUA_A_INV_R = "mua-A-1/r"  # Init[A], α = 1/r
    MUA_B = "mua-B-1"  # Init[B], α = 1
    LORA_ALPHA = "lora-alpha"  # Variant I, kaiming init, η = η_FFT
    LORA_ALPHA_ANALYTIC = "lora-alpha-analytic"  # Variant II, kaiming init, η = η_FFT

    @property
    def mua(self) -> MuAConfig | None:
        """The μA configuration whose learning-rate rule applies; None for LoRA-α (η = η_FFT)."""
        return {
            CoordConfig.MUA_A: MuAConfig(init=Init.A, gamma=0.0),
            CoordConfig.MUA_A_INV_R: MuAConfig(init=Init.A, gamma=1.0),
            CoordConfig.MUA_B: MuAConfig(init=Init.B, gamma=0.0),
        }.get(self)

    def adapter(self, rank: int, targets: tuple[str, ...] | None) -> AdapterSpec:
        cfg = self.mua
        if cfg is not None:
            return AdapterSpec(rank=rank, scaling=RuleSpec(rule=ScaleRule.MUA, gamma=cfg.gamma), init=cfg.init, targets=targets)
        return AdapterSpec(rank=rank, scaling=RuleSpec(rule=ScaleRule(self.value)), init=Init.KAIMING, targets=targets)

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {CoordConfig.MUA_A: "Init[A] α=1", CoordConfig.MUA_A_INV_R: "Init[A] α=1/r", CoordConfig.MUA_B: "Init[B] α=1",
           CoordConfig.LORA_ALPHA: "LoRA-α I", CoordConfig.LORA_ALPHA_ANALYTIC: "LoRA-α II"}


class LrRule(StrEnum):
    MUA = "mua"  # μA's η(n, r) through transfer_lr, anchored at (ref_width, ref_rank)
    FIXED = "fixed"  # ref_lr everywhere: the drift μA's rule removes


class CoordCheckSettings(Settings):
    """What ``lorascale coord-check`` measures; the one definition of its settings (flags, JSON)."""

    model: tuple[StrictStr, ...] = setting(..., "a model (smollm2-135m, minilm-l6, a local HF folder), a family "
                                           "tiny-llama/tiny-bert with widths, or several models of different widths")
    widths: tuple[PositiveInt, ...] | None = setting(None, "widths of a tiny-llama/tiny-bert family (model@W)",
                                                     fix="e.g. 64 128 256 512 1024")
    configs: tuple[CoordConfig, ...] = setting(tuple(CoordConfig), "configurations to check: "
                                               + ", ".join(c.value for c in CoordConfig))
    ranks: tuple[PositiveInt, ...] = setting((4, 16, 64, 256), "LoRA ranks", fix="e.g. 4 16 64 256")
    steps: PositiveInt = setting(3, "optimizer steps per run (μA's T: fixed, a few)", le=50)
    seeds: PositiveInt = setting(2, "seeds per point (adapter init and batch); the slope's interval is over seeds", le=64)
    lr_rule: LrRule = setting(LrRule.MUA, "mua: μA's η(n, r) for the μA configurations; fixed: ref_lr at every rank and width")
    ref_lr: PositiveFloat = setting(1e-3, "μA learning rate at the reference width and rank", fix="e.g. 1e-3")
    ref_rank: PositiveInt = setting(16, "rank at which the μA configurations train at ref_lr")
    ref_width: PositiveInt | None = setting(None, "width at which they train at ref_lr (default: the smallest checked)")
    lr_fft: PositiveFloat = same_setting(TrainConfig, "lr_fft", description="LoRA-α's learning rate: the full-finetuning one (eq. 5)")
    data: StrictStr | None = setting(None, "dataset for the batches (default shakespeare; shakespeare-genre for encoders)")
    batch_size: PositiveInt = setting(2, "sequences in each seed's fixed batch")
    seq_len: PositiveInt = setting(32, "tokens per sequence", ge=2)
    eta_factor: PositiveFloat = setting(2.0, "η multiplier of the extra run that measures each term's order in η", gt=1.0)
    targets: tuple[str, ...] | str | None = same_setting(AdapterSpec, "targets")
    out_dir: StrictStr | None = setting(None, "folder for the figures and measurements (default runs/coord-check-<time>)")

    @field_validator("model", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return (v,) if isinstance(v, str) else v

    @field_validator("targets", mode="before")
    @classmethod
    def _names_or_regex(cls, v):
        return AdapterSpec._names_or_regex(v)  # the adapter's own rule: names, "all-linear", or one regex

    @model_validator(mode="after")
    def _consistent(self) -> "CoordCheckSettings":
        errors: list[ConfigError] = []
        for name in ("model", "widths", "configs", "ranks"):
            values = getattr(self, name) or ()
            if len(set(values)) != len(values):
                errors.append(ConfigError(name, f"repeats a value: {[getattr(v, 'value', v) for v in values]}", "list each once"))
        if not self.configs:
            errors.append(ConfigError("configs", "is empty", f"choose from {', '.join(c.value for c in CoordConfig)}"))
        if self.widths is not None:
            if len(self.model) != 1 or self.model[0] not in FAMILIES:
                errors.append(ConfigError("widths", f"need one model family ({', '.join(FAMILIES)}), got {list(self.model)}",
                                          "drop `widths` and list models of different widths, or use `model` tiny-llama"))
            too_big = sorted(r for r in self.ranks if r > min(self.widths))
            if too_big:
                errors.append(ConfigError("ranks", f"{too_big} exceed the smallest width {min(self.widths)} (μA assumes r ≤ n)",
                                          "drop those ranks or the smallest widths"))
        n_sizes = max(len(self.ranks), len(self.widths or self.model))
        if n_sizes < 2:
            errors.append(ConfigError("ranks", "one rank and one width leave no slope to fit", "give at least 2 ranks or 2 widths"))
        if self.ref_width is not None and self.ref_rank > self.ref_width:
            errors.append(ConfigError("ref_rank", f"{self.ref_rank} exceeds ref_width {self.ref_width}", "μA's rules assume r ≤ n"))
        ConfigErrors.raise_if_any(errors)
        return self

    def model_names(self) -> tuple[str, ...]:
        return tuple(f"{self.model[0]}@{w}" for w in self.widths) if self.widths else self.model


def learning_rate(config: CoordConfig, width: int, rank: int, s: CoordCheckSettings, ref_width: int) -> float:
    """η for one run: LoRA-α trains at η_FFT (eq. 5); μA's configurations at transfer_lr from
    (ref_width, ref_rank, ref_lr) under ``lr_rule`` mua, at ref_lr itself under ``fixed``."""
    if config.mua is None:
        return s.lr_fft
    if s.lr_rule is LrRule.FIXED:
        return s.ref_lr
    return transfer_lr(s.ref_lr, n0=ref_width, r0=s.ref_rank, n1=width, r1=rank, src=config.mua)
