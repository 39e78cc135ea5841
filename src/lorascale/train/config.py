"""The resolved configuration of one training run: typed, frozen, validated all at once.

Defaults are the μA recipe (μA Table 2): AdamW β = (0.9, 0.999), ε = 1e-8, weight decay 0.01,
global grad-norm clip 1.0, 5% linear warm-up, cosine decay to 0.1× the peak.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from ..config_files import read_mapping
from ..errors import ConfigError, ConfigErrors
from ..rules import DEFAULT_C, DEFAULT_LR_FFT, Init, RuleError, RuleSpec, ScaleRule, recommended_lr

__all__ = ["TrainConfig", "load_yaml", "config_from_mapping"]

Finetune = Literal["lora", "full"]
Precision = Literal["auto", "fp32", "bf16"]
TaskName = Literal["lm", "classification"]


@dataclass(frozen=True)
class TrainConfig:
    # what
    model: str = "smollm2-135m"
    data: str = "shakespeare"
    task: TaskName | None = None  # None: the data/model decide
    finetune: Finetune = "lora"
    # adapter
    rank: int = 16
    rule: str = ScaleRule.LORA_ALPHA.value
    alpha: float = 1.0
    c: float = DEFAULT_C
    lora_alpha: float = 16.0
    gamma: float = 0.0
    init: str = Init.KAIMING.value
    targets: tuple[str, ...] | None = None
    # optimisation (μA recipe)
    lr: float | None = None  # None: the rule's recommendation from lr_fft
    lr_fft: float = DEFAULT_LR_FFT
    head_lr: float = 1e-3  # classification head (μA B.1 fixes it at 1e-3)
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    grad_clip: float = 1.0
    warmup_frac: float = 0.05
    min_lr_ratio: float = 0.1
    # budget and batches
    steps: int | None = 100
    epochs: float | None = None
    batch_size: int = 8
    grad_accum: int = 1
    seq_len: int = 128
    max_examples: int | None = None  # cap on training examples/blocks (after the split)
    val_fraction: float = 0.05
    max_val_batches: int = 8
    eval_every: int = 0  # 0: evaluate at the end only
    log_every: int = 1
    seed: int = 0
    precision: Precision = "auto"
    ema_beta: float = 0.1  # μA: EMA(0.1)-smoothed training loss, ema ← (1-β)·ema + β·loss
    # divergence: non-finite loss, or loss > factor × the first loss for `patience` consecutive steps
    diverge_factor: float = 3.0
    diverge_patience: int = 5
    out_dir: str | None = None
    save_model: bool = True

    # ------------------------------------------------------------------------------------
    def errors(self) -> list[ConfigError]:
        """Every problem with this config, each naming its field and the fix."""
        e: list[ConfigError] = []
        bad_types = {}
        for f in fields(self):  # a wrong type is reported once, instead of crashing a comparison below
            v = getattr(self, f.name)
            if f.name in _FLOAT_FIELDS and v is not None and not _is_number(v):
                e.append(ConfigError(f.name, f"must be a number, got {v!r}"))
                bad_types[f.name] = f.default
            elif f.name in _INT_FIELDS and v is not None and not (isinstance(v, int) and not isinstance(v, bool)):
                e.append(ConfigError(f.name, f"must be an integer, got {v!r}"))
                bad_types[f.name] = f.default
        if bad_types:  # check everything else too, with the mistyped fields at their defaults
            return e + dataclasses.replace(self, **bad_types).errors()

        def need(cond: bool, name: str, msg: str) -> None:
            if not cond:
                e.append(ConfigError(name, msg))

        need(self.finetune in ("lora", "full"), "finetune", f"must be lora or full, got {self.finetune!r}")
        need(self.precision in ("auto", "fp32", "bf16"), "precision", f"must be auto, fp32 or bf16, got {self.precision!r}")
        need(self.task in (None, "lm", "classification"), "task", f"must be lm or classification, got {self.task!r}")
        need(_pos_int(self.rank), "rank", f"must be a positive integer, got {self.rank!r}")
        for name in ("alpha", "c", "lora_alpha", "lr_fft", "head_lr", "eps"):
            need(_pos_float(getattr(self, name)), name, f"must be a finite number > 0, got {getattr(self, name)!r}")
        need(self.lr is None or _pos_float(self.lr), "lr", f"must be a finite number > 0 (or unset to use the rule's), got {self.lr!r}")
        need(0.0 <= self.gamma <= 1.0, "gamma", f"must be in [0, 1], got {self.gamma!r}")
        need(_nonneg_float(self.weight_decay), "weight_decay", "must be ≥ 0; μA uses 0.01")
        need(0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0, "beta1/beta2", "must be in [0, 1); μA uses 0.9/0.999")
        need(_pos_float(self.grad_clip), "grad_clip", "must be > 0; μA clips the global norm at 1.0")
        need(0.0 <= self.warmup_frac < 1.0, "warmup_frac", "must be in [0, 1); μA warms up over 5% (0.05)")
        need(0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio", "must be in [0, 1]; μA decays to 0.1")
        if self.steps is not None and self.epochs is not None:
            e.append(ConfigError("steps/epochs", "both are set; choose one (unset steps with steps: null in YAML)"))
        if self.steps is None and self.epochs is None:
            e.append(ConfigError("steps/epochs", "neither is set; pass --steps N or --epochs E"))
        need(self.steps is None or _pos_int(self.steps), "steps", f"must be a positive integer, got {self.steps!r}")
        need(self.epochs is None or _pos_float(self.epochs), "epochs", f"must be > 0, got {self.epochs!r}")
        for name in ("batch_size", "grad_accum", "seq_len", "max_val_batches", "log_every", "diverge_patience"):
            need(_pos_int(getattr(self, name)), name, f"must be a positive integer, got {getattr(self, name)!r}")
        need(self.max_examples is None or _pos_int(self.max_examples), "max_examples", "must be a positive integer or unset")
        need(0.0 < self.val_fraction < 0.5, "val_fraction", f"must be in (0, 0.5), got {self.val_fraction!r}")
        need(isinstance(self.eval_every, int) and self.eval_every >= 0, "eval_every", "must be ≥ 0 (0: evaluate at the end)")
        need(0.0 < self.ema_beta <= 1.0, "ema_beta", "must be in (0, 1]; μA smooths with 0.1")
        need(_pos_float(self.diverge_factor) and self.diverge_factor > 1.0, "diverge_factor", "must be > 1")
        need(isinstance(self.seed, int), "seed", "must be an integer")
        if self.finetune == "lora":
            e.extend(self._rule_errors())
        return e

    def _rule_errors(self) -> list[ConfigError]:
        try:
            spec = self.rule_spec()
            Init(self.init)
        except RuleError as err:
            name, _, msg = str(err).partition(": ")
            return [ConfigError(name, msg)]
        except ValueError:
            return [ConfigError("init", f"unknown init {self.init!r}; choose kaiming, A or B")]
        if self.lr is None:
            try:
                recommended_lr(spec, self.lr_fft, Init(self.init))
            except RuleError:
                return [ConfigError("lr", "this μA configuration needs an explicit learning rate (tune one, then"
                                          " `lorascale transfer`); pass --lr")]
        if spec.rule is ScaleRule.LORA_ALPHA_ANALYTIC and self.init == "B":
            return [ConfigError("init", "LoRA-α analytic needs σ_A > 0; use init kaiming or A")]
        return []

    def validate(self) -> "TrainConfig":
        ConfigErrors.raise_if_any(self.errors())
        return self

    # ------------------------------------------------------------------------------------
    def rule_spec(self) -> RuleSpec:
        return RuleSpec(rule=self.rule, alpha=self.alpha, c=self.c, lora_alpha=self.lora_alpha, gamma=self.gamma)

    def peak_lr(self) -> float:
        """The backbone/adapter learning rate: explicit ``lr``, else the rule's recommendation."""
        if self.lr is not None:
            return self.lr
        if self.finetune == "full":
            return self.lr_fft
        return recommended_lr(self.rule_spec(), self.lr_fft, Init(self.init))

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["targets"] = list(self.targets) if self.targets else None
        return d


def config_from_mapping(mapping: dict, base: TrainConfig | None = None) -> TrainConfig:
    """Build a config from a mapping (YAML file, flags); unknown keys are errors, listed at once."""
    names = {f.name for f in fields(TrainConfig)}
    unknown = [k for k in mapping if k not in names]
    if unknown:
        raise ConfigErrors([ConfigError(k, f"unknown key; valid keys include {', '.join(sorted(names)[:8])}, ...") for k in unknown])
    values = {k: _coerce(k, v) for k, v in mapping.items()}
    if "targets" in values and values["targets"] is not None:
        values["targets"] = tuple(values["targets"]) if isinstance(values["targets"], (list, tuple)) else (values["targets"],)
    return dataclasses.replace(base or TrainConfig(), **values)


_FLOAT_FIELDS = {f.name for f in fields(TrainConfig) if "float" in str(f.type)}
_INT_FIELDS = {f.name for f in fields(TrainConfig) if str(f.type).startswith("int")}


def _coerce(key: str, value):
    """YAML 1.1 reads ``2e-5`` (no dot) as a string: accept numeric strings for numeric fields."""
    if isinstance(value, str) and key in _FLOAT_FIELDS:
        try:
            return float(value)
        except ValueError:
            return value  # the validator names the field
    if isinstance(value, str) and key in _INT_FIELDS and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def load_yaml(path: str | Path) -> dict:
    return read_mapping(path, "--config", "a YAML file of TrainConfig keys (model: ..., rank: ..., lr: ...)")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pos_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _pos_float(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _nonneg_float(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v >= 0
