"""Scaling rules for LoRA: pure, torch-free math, written once.

Every rule answers two questions for a LoRA layer ΔW = s·B·A (B: d_out×r, A: r×d_in):

* the effective multiplier ``s`` (PEFT calls it ``scaling``; ``lora_alpha = s·r``, or
  ``s·√r`` with ``use_rslora``), and
* the learning rate to train it with.

Sources
-------
* LoRA-α — "The Hidden Power of Scaling Factor in LoRA Optimization", eq. (5):
  ΔW = (α·α_base / r)·BA, η = Θ(η_FFT).
  Variant I (§4, eq. (3)): α_base = C·√r, C = 256 by default.
  Variant II (§4, Cor. 1, App. F): α_base = √r / σ_A, σ_A the std of A at init;
  PEFT's kaiming-uniform A ~ U(-1/√d_in, 1/√d_in) gives σ_A² = 1/(3·d_in).
* μA — "Learning Rate Scaling across LoRA Ranks and Transfer to Full Finetuning":
  W = W* + α·B·A with α = r^-γ (so s = r^-γ), Init[A] / Init[B] (Def. 3.2),
  Cor. 4.4 (Init[A]: η = Θ(n^-1/2 · r^-(1-γ)/2)), Cor. 4.6 (Init[B], α=1: η = Θ(1/n)),
  Cor. A.22 (Init[B], α=1/r: η = Θ(min(r/n, n^-1/2))), Thm A.23 (FFT: η = Θ(1/n)).
* Conventional baselines: α = r (Hu et al. 2022), α = 2r (Biderman et al. 2024),
  fixed α (s = α/r), rsLoRA (Kalajdzievski 2023, s = α/√r), and "LoRA needs ≈10× the
  FFT learning rate" (Schulman & Thinking Machines 2025, Biderman et al. 2024).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from enum import StrEnum

from pydantic import model_validator

from .errors import ConfigError
from .methods import Method, method_lr
from .schema import Float, PositiveFloat, Settings, StrictPositiveInt, checked, setting

__all__ = [
    "ScaleRule",
    "Init",
    "Finetune",
    "RuleSpec",
    "RULE_KNOBS",
    "ALL_KNOBS",
    "unread_knobs",
    "rules_reading",
    "with_unread",
    "RuleError",
    "sigma_a",
    "alpha_base",
    "effective_scale",
    "peft_lora_alpha",
    "scale_from_peft",
    "recommended_lr",
    "MuAConfig",
    "mua_lr_shape",
    "mua_lr_exponents",
    "transfer_lr",
    "DEFAULT_C",
    "DEFAULT_LR_FFT",
    "LR_FFT_FIX",
    "CONVENTIONAL_LR_FACTOR",
]

DEFAULT_C = 256.0
"""LoRA-α Variant I constant (§4). The paper uses 512 for 8B models and 1024 on long reasoning data."""

DEFAULT_LR_FFT = 2e-5
"""LoRA-α eq. (2): the optimal full-finetuning learning rate of its Llama-3 sweeps."""

LR_FFT_FIX = "typical full-finetuning learning rates are 1e-5 to 1e-4"
"""The fix shown for a bad ``lr_fft``, wherever it is set."""

CONVENTIONAL_LR_FACTOR = 10.0
"""The folk rule "LoRA needs 10× the full-finetuning learning rate" (LoRA-α §2, Finding I)."""


class RuleError(ConfigError):
    """A rule was asked for something it cannot give: ``field``, ``message`` and ``fix`` say what and how."""


class ScaleRule(StrEnum):
    """How the effective multiplier s of ΔW = s·B·A is chosen."""

    LORA_ALPHA = "lora-alpha"  # Variant I: s = α·C·√r / r
    LORA_ALPHA_ANALYTIC = "lora-alpha-analytic"  # Variant II: s = α·(√r/σ_A) / r, per layer
    ALPHA_EQ_R = "alpha-r"  # lora_alpha = r: s = 1 (also μA's α = 1)
    ALPHA_2R = "alpha-2r"  # lora_alpha = 2r: s = 2
    FIXED_ALPHA = "fixed-alpha"  # lora_alpha fixed (16, 32, ...): s = lora_alpha / r
    RSLORA = "rslora"  # s = lora_alpha / √r
    MUA = "mua"  # μA multiplier α = r^-γ: s = r^-γ


class Init(StrEnum):
    """Initialisation of the adapter factors; all make ΔW = 0 at step 0."""

    KAIMING = "kaiming"  # PEFT default: A ~ U(-1/√d_in, 1/√d_in), B = 0
    A = "A"  # μA Init[A]: A ~ N(0, 1/d_in), B = 0
    B = "B"  # μA Init[B]: B ~ N(0, 1/r), A = 0


class Finetune(StrEnum):
    """Train low-rank adapters on a frozen base, or every weight."""

    LORA = "lora"
    FULL = "full"


def sigma_a(init: Init, d_in: int) -> float:
    """Standard deviation of A's entries at initialisation.

    kaiming: U(-k, k) with k = 1/√d_in has variance k²/3 = 1/(3·d_in) (LoRA-α App. F, "Note on
    Initialization Variance"). Init[A]: N(0, 1/d_in) (μA Def. 3.2). Init[B] has A = 0.
    """
    _check_positive_int("d_in", d_in)
    if init is Init.KAIMING:
        return 1.0 / math.sqrt(3.0 * d_in)
    if init is Init.A:
        return 1.0 / math.sqrt(d_in)
    raise RuleError(
        "init", "Init[B] starts with A = 0, so σ_A = 0 and LoRA-α's analytic α_base = √r/σ_A is undefined",
        "use init kaiming or A with rule lora-alpha-analytic, or pick rule lora-alpha",
    )


class RuleSpec(Settings):
    """A scaling rule with its knobs: the one definition of these settings (CLI, YAML, sweeps, metadata)."""

    rule: ScaleRule = setting(ScaleRule.LORA_ALPHA, "scaling rule: how the multiplier s of ΔW = s·B·A is chosen")
    alpha: PositiveFloat = setting(1.0, "LoRA-α knob α", fix="the LoRA-α knob α defaults to 1; try a value in [0.1, 10]")
    c: PositiveFloat = setting(DEFAULT_C, "LoRA-α Variant I constant C", fix="LoRA-α Variant I uses C = 256")
    lora_alpha: PositiveFloat = setting(16.0, "PEFT lora_alpha for rules fixed-alpha and rslora",
                                        fix="typical fixed values are 16 or 32")
    gamma: Float = setting(0.0, "μA multiplier exponent γ of α = r^-γ (rule mua)", ge=0.0, le=1.0,
                           fix="μA uses γ = 0 (α = 1), 0.5 or 1 (α = 1/r)")


RULE_KNOBS: dict[ScaleRule, tuple[str, ...]] = {
    ScaleRule.LORA_ALPHA: ("alpha", "c"),
    ScaleRule.LORA_ALPHA_ANALYTIC: ("alpha",),  # Variant II: α_base = √r/σ_A, no C
    ScaleRule.ALPHA_EQ_R: (),
    ScaleRule.ALPHA_2R: (),
    ScaleRule.FIXED_ALPHA: ("lora_alpha",),
    ScaleRule.RSLORA: ("lora_alpha",),
    ScaleRule.MUA: ("gamma",),
}
"""The RuleSpec knobs each rule reads in :func:`effective_scale`; the others it ignores."""


def unread_knobs(given: dict, where: str = "", also_read: Collection[str] = ()) -> list[ConfigError]:
    """The knobs among the settings ``given`` (flat keys as a user wrote them: flags, a YAML file, a sweep
    configuration) that their rule ignores, each as an error naming it: ``--rule fixed-alpha --alpha 3`` would
    otherwise give lora_alpha 16 without a word. The rule is ``given``'s, else the default; a rule that is not
    one is left to validation. ``where`` prefixes each field (``grid.configs[0].``); ``also_read``: knobs the
    caller reads beyond the rule (tune's prior reads ``c`` under fixed-alpha).

    Checked where settings come from a user, not in :class:`RuleSpec`: code may change a spec's rule and keep
    knobs the new rule ignores (tune's η_FFT probe keeps a fixed-alpha run's ``lora_alpha``)."""
    try:
        rule = ScaleRule(given.get("rule", RuleSpec.model_fields["rule"].default))
    except (ValueError, TypeError):
        return []
    reads = (*RULE_KNOBS[rule], *(k for k in also_read if k not in RULE_KNOBS[rule]))
    said = f"rule {rule} reads only {' and '.join(f'`{k}`' for k in reads)}" if reads else f"rule {rule} has no knob"
    return [ConfigError(f"{where}{k}", f"{said}, so this would be ignored",
                        f"drop `{k}`, or choose a rule that reads it: {rules_reading(k)}")
            for k in sorted(set(given) & ALL_KNOBS - set(reads))]


ALL_KNOBS = frozenset(k for ks in RULE_KNOBS.values() for k in ks)  # every rule knob of RuleSpec


def rules_reading(knob: str) -> str:
    """The rules that read ``knob``, for a fix: "lora-alpha, lora-alpha-analytic"."""
    return ", ".join(r for r, ks in RULE_KNOBS.items() if knob in ks)


def with_unread(errors: list[ConfigError], unread: list[ConfigError]) -> list[ConfigError]:
    """``errors`` but those about a knob of ``unread`` (:func:`unread_knobs`), then ``unread``: an ignored knob's
    one fix is to drop it, whatever its value, so it gets no second error."""
    return [e for e in errors if e.field not in {u.field for u in unread}] + unread


def alpha_base(spec: RuleSpec, r: int, d_in: int, init: Init = Init.KAIMING) -> float:
    """LoRA-α's α_base for Variant I (C·√r) or Variant II (√r/σ_A, = √(3·d_in·r) for kaiming)."""
    _check_positive_int("rank", r)
    if spec.rule is ScaleRule.LORA_ALPHA:
        return spec.c * math.sqrt(r)
    if spec.rule is ScaleRule.LORA_ALPHA_ANALYTIC:
        return math.sqrt(r) / sigma_a(init, d_in)
    raise RuleError("rule", f"α_base is defined for lora-alpha and lora-alpha-analytic only, not {spec.rule.value}",
                    "use effective_scale for the other rules")


def effective_scale(spec: RuleSpec, r: int, d_in: int, init: Init = Init.KAIMING) -> float:
    """The multiplier s in ΔW = s·B·A for one layer of input width d_in and rank r."""
    _check_positive_int("rank", r)
    _check_positive_int("d_in", d_in)
    rule = spec.rule
    if rule in (ScaleRule.LORA_ALPHA, ScaleRule.LORA_ALPHA_ANALYTIC):
        return spec.alpha * alpha_base(spec, r, d_in, init) / r  # eq. (5)
    if rule is ScaleRule.ALPHA_EQ_R:
        return 1.0
    if rule is ScaleRule.ALPHA_2R:
        return 2.0
    if rule is ScaleRule.FIXED_ALPHA:
        return spec.lora_alpha / r
    if rule is ScaleRule.RSLORA:
        return spec.lora_alpha / math.sqrt(r)
    if rule is ScaleRule.MUA:
        return float(r) ** (-float(spec.gamma))
    raise AssertionError(f"unhandled rule {rule!r} in effective_scale")


def peft_lora_alpha(scale: float, r: int, use_rslora: bool = False) -> float:
    """The PEFT ``lora_alpha`` that yields multiplier ``scale``: PEFT uses s = lora_alpha/r (or /√r)."""
    _check_positive_int("rank", r)
    return scale * (math.sqrt(r) if use_rslora else r)


def scale_from_peft(lora_alpha: float, r: int, use_rslora: bool = False) -> float:
    """Inverse of :func:`peft_lora_alpha`: the multiplier PEFT applies."""
    _check_positive_int("rank", r)
    return lora_alpha / (math.sqrt(r) if use_rslora else r)


def recommended_lr(spec: RuleSpec, lr_fft: float = DEFAULT_LR_FFT, init: Init = Init.KAIMING,
                   method: Method = Method.LORA) -> float:
    """The learning rate each rule prescribes, from the full-finetuning learning rate.

    LoRA-α trains at η_FFT (eq. 5). μA's Init[B] with α = 1 shares full finetuning's optimum
    (Cor. 4.6, Thm A.23). The conventional rules come with the "10× η_FFT" heuristic. Other μA
    configurations need a tuned reference point instead: use :func:`transfer_lr`. A ``method`` whose
    paper prescribes its own rate overrides the rule's (:func:`lorascale.methods.method_lr`: PiSSA
    trains at η_FFT).
    """
    _check_positive_float("lr_fft", lr_fft, LR_FFT_FIX)
    own = method_lr(method, None, lr_fft)  # None: the method trains at the rule's rate
    if own is not None:
        return own
    init = Init(init)
    if spec.rule in (ScaleRule.LORA_ALPHA, ScaleRule.LORA_ALPHA_ANALYTIC):
        return lr_fft
    if init is Init.B and _rank_free(spec) and effective_scale(spec, 1, 1, init) == 1.0:
        return lr_fft  # μA Init[B] with α = 1, whichever rule spells it (mua γ = 0, alpha-r)
    if spec.rule is ScaleRule.MUA:
        raise RuleError(
            "lr", "this μA configuration's learning rate transfers from a tuned reference point",
            "tune one and use `lorascale transfer` (or Init[B] with γ = 0, whose learning rate equals full finetuning's)",
        )
    return CONVENTIONAL_LR_FACTOR * lr_fft


def _rank_free(spec: RuleSpec) -> bool:
    """The multiplier does not change with rank (s(r) = s(1) for every r): μA's α = 1 when s = 1."""
    return spec.rule in (ScaleRule.ALPHA_EQ_R, ScaleRule.ALPHA_2R) or (spec.rule is ScaleRule.MUA and spec.gamma == 0.0)


# --------------------------------------------------------------------------------------------
# μA learning-rate rules in width n and rank r
# --------------------------------------------------------------------------------------------


class MuAConfig(Settings):
    """A μA configuration: fine-tuning mode, init and multiplier exponent γ (α = r^-γ)."""

    finetune: Finetune = setting(Finetune.LORA, "lora or full")
    init: Init = setting(Init.B, "adapter init")
    gamma: Float = setting(0.0, "μA multiplier exponent γ of α = r^-γ", ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _derived_rules_only(self) -> "MuAConfig":
        if self.finetune is Finetune.LORA and self.init is Init.B and float(self.gamma) not in (0.0, 1.0):
            raise RuleError(
                "gamma", "μA derives Init[B] rules for γ = 0 (α = 1, Cor. 4.6) and γ = 1 (α = 1/r, Cor. A.22) only",
                "use gamma 0 or 1",
            )
        return self

    @property
    def label(self) -> str:
        if self.finetune is Finetune.FULL:
            return "FFT"
        return f"Init[{self.init.value}] α=r^-{self.gamma:g}"


def mua_lr_shape(n: int, r: int | None, cfg: MuAConfig) -> float:
    """The Θ(·) argument of μA's optimal learning rate at width n and rank r (constant factor 1).

    Init[A], α = r^-γ (the kaiming init behaves as Init[A] up to a constant): n^-1/2 · r^-(1-γ)/2.
    Init[B], α = 1: 1/n.   Init[B], α = 1/r: min(r/n, n^-1/2).   Full finetuning: 1/n.
    """
    _check_positive_int("width", n)
    if cfg.finetune is Finetune.FULL:
        return 1.0 / n
    if r is None:
        raise RuleError("rank", "a LoRA configuration needs a rank", "give the rank of each side of the transfer")
    _check_positive_int("rank", r)
    if r > n:
        raise RuleError("rank", f"r = {r} exceeds the width n = {n}", "μA's rules assume r ≤ n; check the ranks and widths")
    g = float(cfg.gamma)
    if cfg.init in (Init.A, Init.KAIMING):
        return n ** -0.5 * r ** (-(1.0 - g) / 2.0)
    if g == 0.0:
        return 1.0 / n
    return min(r / n, n ** -0.5)


def mua_lr_exponents(n: int, r: int, cfg: MuAConfig) -> tuple[float, float]:
    """Local exponents (∂log η/∂log n, ∂log η/∂log r) at (n, r); the rank exponent is what a sweep's slope estimates."""
    if cfg.finetune is Finetune.FULL:
        return (-1.0, 0.0)
    g = float(cfg.gamma)
    if cfg.init in (Init.A, Init.KAIMING):
        return (-0.5, -(1.0 - g) / 2.0)
    if g == 0.0:
        return (-1.0, 0.0)
    return (-1.0, 1.0) if r / n <= n ** -0.5 else (-0.5, 0.0)


def _transfer_family(cfg: MuAConfig) -> tuple:
    """Configurations whose learning rates share a constant: the same config, or Init[B] α=1 ↔ FFT (μA §4.2)."""
    if cfg.finetune is Finetune.FULL or (cfg.init is Init.B and float(cfg.gamma) == 0.0):
        return ("width^-1",)
    return (cfg.finetune, cfg.init if cfg.init is not Init.KAIMING else Init.A, float(cfg.gamma))


def transfer_lr(
    lr0: float,
    *,
    n0: int,
    r0: int | None,
    n1: int,
    r1: int | None,
    src: MuAConfig,
    dst: MuAConfig | None = None,
) -> float:
    """Predict the optimal learning rate at (n1, r1, dst) from one tuned at (n0, r0, src).

    η1 = η0 · shape(n1, r1, dst) / shape(n0, r0, src). Transfer across configurations is only
    predicted where μA shows a shared scaling: Init[B] with α = 1 and full finetuning (both Θ(1/n)).
    """
    _check_positive_float("lr", lr0, "pass the learning rate you tuned, e.g. 2e-4")
    dst = src if dst is None else dst
    if _transfer_family(src) != _transfer_family(dst):
        raise RuleError(
            "dst", f"μA predicts no transfer from {src.label} to {dst.label}",
            "learning rates transfer within one configuration, and between Init[B] with α = 1 and full finetuning",
        )
    try:
        lr1 = lr0 * mua_lr_shape(n1, r1, dst) / mua_lr_shape(n0, r0, src)
    except (OverflowError, ZeroDivisionError):  # a width or rank past what a float holds
        lr1 = math.nan
    if not (math.isfinite(lr1) and lr1 > 0):
        raise RuleError("lr", f"transferring η = {lr0:g} gives {lr1:g}, past what a float holds",
                        "check the learning rate, widths and ranks: real ones give η between 1e-8 and 1")
    return lr1


# --------------------------------------------------------------------------------------------


def _check_positive_int(field: str, value) -> None:
    checked(StrictPositiveInt, field, value, "give a positive whole number", error=RuleError)


def _check_positive_float(field: str, value, hint: str) -> None:
    checked(PositiveFloat, field, value, hint, error=RuleError)
