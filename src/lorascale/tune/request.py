"""What ``lorascale tune`` is asked: a run to tune (every TrainConfig setting) and the search around it."""

from __future__ import annotations

from typing import Any

from pydantic import StrictStr, model_validator

from ..errors import ConfigError, ConfigErrors
from ..rules import Finetune, RuleSpec, ScaleRule, effective_scale, peft_lora_alpha
from ..schema import Float, Int, NonNegativeFloat, PositiveFloat, PositiveInt, Settings, setting, validate
from ..sweep.rule_facts import ALPHA_KNOB
from ..sweep.run_settings import Members
from ..train.config import TrainConfig

__all__ = ["TuneRequest", "step_budget_only", "FFT_PROBE_LOG2_LR", "REFERENCE_GRID_LRS", "REFERENCE_GRID_SEEDS", "ALPHA_BOX"]

FFT_PROBE_LOG2_LR = tuple(float(x) for x in range(-18, -7, 2))
"""The η grid of the η_FFT probe: every other octave of 2^-18 ≈ 3.8e-6 … 2^-8 ≈ 3.9e-3 (μA Table 6's Init[B]
α = 1 ranges). Every other octave is enough: an update's size goes with α·η, and the search's α knob spans
two decades ([0.1, 10]), so an η_FFT one octave off moves the best α by about 2×, inside the search."""


REFERENCE_GRID_LRS = 8
REFERENCE_GRID_SEEDS = 3
"""The yardstick of tune's ``compute_fraction``: what tune replaces, the common log2 learning-rate grid of 8
rates at 3 seeds, each run to the end (LoRA-α's and μA's sweeps; the headline's arm (b))."""


ALPHA_BOX = (0.1, 10.0)
"""LoRA-α's search box for its α knob (§4: α ∈ [0.1, 10] around the default 1): an unset bound is this factor
times the prior (:attr:`TuneRequest.prior`), in the knob's units (α, or PEFT's ``lora_alpha`` for fixed-alpha and
rslora)."""

LR_SPAN_MAX = 10.0  # octaves each side: 2^±10 around η_FFT is already three decades


class TuneRequest(Settings):
    """``run`` is the training run to tune (its ``lr`` is what tune finds); the rest shapes the search.

    The search: LoRA-α's α-path at η = η_FFT, ``candidates`` values of the α knob log-evenly over :attr:`alpha_box`
    with the :attr:`prior` (α = 1 by default) among them (LoRA-α's Finding II: the α-path beats the η-path); or with
    ``lr_span`` > 0, the prior and ``candidates − 1`` Sobol points in (log α, log η), η ∈ η_FFT·2^[−lr_span,
    lr_span]. Candidates train as members with successive halving (keep the best 1/``reduction`` at each rung, none
    before ``first_rung`` of the budget). The best ``confirm_top`` candidates that ran the whole budget are then
    trained at ``confirm_seeds − 1`` more seeds, and the answer is picked on the mean final EMA loss over seeds (the
    one-standard-error rule toward the gentler setting, :mod:`.selection`): one seed's luck does not pick it.
    Without an explicit ``lr_fft``, η_FFT is estimated first through μA's LoRA → FFT transfer (Init[B], α = 1 at
    rank ``fft_probe_rank`` shares full finetuning's optimal η: μA §4.2, Cor. 4.6).
    """

    run: TrainConfig = setting(TrainConfig(rule="lora-alpha"), "the run to tune")
    candidates: PositiveInt = setting(18, "configurations that start the search", ge=2)
    reduction: Int = setting(3, "successive halving keeps the best 1/reduction at each rung", ge=2, le=16)
    alpha_min: PositiveFloat | None = setting(None, "smallest α knob searched, in the knob's units (default 0.1 × the"
                                              " prior; LoRA-α searches [0.1, 10] around α = 1)")
    alpha_max: PositiveFloat | None = setting(None, "largest α knob searched (default 10 × the prior)")
    lr_span: NonNegativeFloat = setting(0.0, "octaves of η searched on each side of η_FFT (0: LoRA-α's α-path at η_FFT)",
                                        le=LR_SPAN_MAX)
    first_rung: Float = setting(1 / 3, "fraction of the budget before which no candidate is cut, to within the"
                                " rounding of a rung to a step (earlier losses rank by noise on short budgets)",
                                ge=0.0, lt=1.0)
    confirm_seeds: PositiveInt = setting(2, "seeds the finalists are judged on, the search's own included (1: no check)")
    confirm_top: Int = setting(2, "finalists re-run at the other seeds before answering", ge=2)
    fft_probe_rank: PositiveInt = setting(8, "rank of the Init[B] α = 1 probe that estimates η_FFT (at most the"
                                                  " tuned rank)")
    compute: PositiveFloat | None = setting(None, "cap on tune's whole planned cost (η_FFT probe, search and seed check)"
                                            " in full training runs (member-steps ÷ steps; 9.6 = 40% of an 8-point"
                                            " LR sweep at 3 seeds): fewer candidates start when needed")
    members: Members | None = setting(None, "members per pack, or auto: as many as fit in memory, at most 32 (the default)",
                                      fix="e.g. 8, or auto")
    storage: StrictStr | None = setting(None, "Optuna storage URL (default: sqlite in the tune folder)")
    tune_dir: StrictStr | None = setting(None, "output folder (default runs/tune-<model>-r<rank>)")

    @model_validator(mode="before")
    @classmethod
    def _before_the_run(cls, data: Any) -> Any:
        """Before the run validates (``data`` flat, or nested into ``run`` by :func:`~lorascale.schema.validate`),
        so that tune's own answers are not hidden behind the run's: epochs are refused below, not as "both are
        set" against the run's default steps; and a rule with no α knob is refused here, with the request's
        other problems, not as the explicit learning rate such a rule needs (tune finds it, and has no lr flag)."""
        if not isinstance(data, dict):
            return data
        data = step_budget_only(data)
        rule, rest = _without_rule(data)
        try:
            rule = ScaleRule(rule)
        except (ValueError, TypeError):  # not given (None), or not a rule: the run's validation names it
            return data
        if rule in ALPHA_KNOB:
            return data
        try:
            validate(cls, rest)
        except ConfigErrors as e:
            raise ConfigErrors([_no_knob(rule), *e.errors]) from None
        raise ConfigErrors([_no_knob(rule)])

    @model_validator(mode="after")
    def _searchable(self) -> "TuneRequest":
        errors = []
        if self.run.finetune is not Finetune.LORA:
            errors.append(ConfigError("finetune", "tune searches LoRA's α and η", "set `finetune` to lora"))
        elif self.run.adapter.scaling.rule not in ALPHA_KNOB:
            errors.append(_no_knob(self.run.adapter.scaling.rule))
        else:
            lo, hi = self.alpha_box
            if lo >= hi and self.alpha_min is None:  # only the top was given: it is the one to move
                errors.append(ConfigError("alpha_max", f"{hi:g} is not above the smallest α searched, {lo:g} ({ALPHA_BOX[0]:g}"
                                          f" × the prior {self.prior:g})", f"raise `alpha_max` above {lo:g}, or give"
                                          " `alpha_min` too"))
            elif lo >= hi:
                errors.append(ConfigError("alpha_min", f"{lo:g} is not below the largest α searched ({hi:g})",
                                          f"lower `alpha_min` or raise `alpha_max`, e.g. {self.prior * ALPHA_BOX[0]:g}"
                                          f" and {self.prior * ALPHA_BOX[1]:g}"))
        if self.run.lr is not None:
            errors.append(ConfigError("lr", "tune searches the learning rate", "drop `lr` (give `lr_fft` to skip its estimate)"))
        if self.run.epochs is not None:
            errors.append(ConfigError("epochs", "tune needs a step budget for its rungs", "give `steps` instead of `epochs`"))
        if self.run.log_every != 1:  # ema_noise recovers step losses from consecutive EMA points
            errors.append(ConfigError("log_every", f"tune's one-standard-error pick reads each candidate's noise from its"
                                      f" loss at every step; logged every {self.run.log_every} it has none, and the pick"
                                      " would silently become the lowest loss", "leave `log_every` at 1 for tune"))
        if 1 / self.reduction < self.first_rung * (1 - 1e-12):  # the slack: 1/3 against first_rung 1/3
            errors.append(ConfigError("first_rung", f"{self.first_rung:.3g} is past the first rung 1/reduction ="
                                      f" {1 / self.reduction:.3g} of the budget: no candidate would ever be cut",
                                      f"lower `first_rung` to at most {1 / self.reduction:.3g}"
                                      + (f", or `reduction` to at most {int(1 / self.first_rung + 1e-9)}"
                                         if 1 / self.first_rung >= 2 - 1e-9 else "")))
        ConfigErrors.raise_if_any(errors)
        return self

    @classmethod
    def knobs_also_read(cls, values: dict) -> tuple[str, ...]:
        """Knobs the request reads beyond its rule, among flat ``values`` as given: LoRA-α's ``c`` sets the prior
        of fixed-alpha and rslora when their ``lora_alpha`` is not given (:attr:`prior`)."""
        rule = values.get("rule")
        return ("c",) if rule in (ScaleRule.FIXED_ALPHA, ScaleRule.RSLORA) and "lora_alpha" not in values else ()

    @property
    def knob(self) -> str:
        """The RuleSpec field the search moves: ``alpha`` (LoRA-α) or ``lora_alpha`` (fixed-alpha, rslora)."""
        return ALPHA_KNOB[ScaleRule(self.run.adapter.scaling.rule)]

    @property
    def prior(self) -> float:
        """Where the search starts, in the knob's units: the knob's value the run gives; unset, LoRA-α's default
        α = 1, or for fixed-alpha and rslora the ``lora_alpha`` that reproduces LoRA-α's default multiplier at the
        run's rank (s = C/√r: ``lora_alpha`` = C·√r for fixed-alpha, C for rslora)."""
        spec = self.run.adapter.scaling
        if self.knob in spec.model_fields_set:
            return getattr(spec, self.knob)
        if self.knob == "alpha":
            return 1.0
        r = self.run.adapter.rank
        s = effective_scale(RuleSpec(rule=ScaleRule.LORA_ALPHA, c=spec.c), r, 1)  # Variant I: no d_in
        return peft_lora_alpha(s, r, use_rslora=spec.rule is ScaleRule.RSLORA)

    @property
    def alpha_box(self) -> tuple[float, float]:
        """(smallest, largest) knob value searched: ``alpha_min``/``alpha_max`` where given; unset, LoRA-α's
        [0.1, 10] times the prior (α's own [0.1, 10] at the default prior; a box in α's units would put PEFT's
        ``lora_alpha`` far below any useful multiplier)."""
        return (ALPHA_BOX[0] * self.prior if self.alpha_min is None else self.alpha_min,
                ALPHA_BOX[1] * self.prior if self.alpha_max is None else self.alpha_max)

    @property
    def lr_fft_given(self) -> bool:
        return "lr_fft" in self.run.model_fields_set


def step_budget_only(data: dict) -> dict:
    """``data`` (a request's flat keys, or their nesting into ``run``) with the run's steps unset where it
    gives epochs: for requests that need a step budget and refuse epochs with their own words, which the run's
    "steps/epochs: both are set" (against its default steps) would otherwise replace."""
    out = dict(data)
    if out.get("epochs") is not None:
        out["steps"] = None
    run = out.get("run")
    if isinstance(run, dict) and run.get("epochs") is not None:
        out["run"] = {**run, "steps": None}
    return out


def _without_rule(data: dict) -> tuple[Any, dict]:
    """(the scaling rule ``data`` gives, or None; ``data`` without it), wherever it is given: a flat key, a
    flat key of ``run``, or nested in ``run.adapter.scaling``."""
    out, run = dict(data), data.get("run")
    if "rule" in out:
        return out.pop("rule"), out
    if not isinstance(run, dict):
        return None, out
    if "rule" in run:
        return run["rule"], {**out, "run": {k: v for k, v in run.items() if k != "rule"}}
    adapter = run.get("adapter")
    scaling = adapter.get("scaling") if isinstance(adapter, dict) else None
    if isinstance(scaling, dict) and "rule" in scaling:
        kept = {k: v for k, v in scaling.items() if k != "rule"}
        return scaling["rule"], {**out, "run": {**run, "adapter": {**adapter, "scaling": kept}}}
    return None, out


def _no_knob(rule: ScaleRule) -> ConfigError:
    return ConfigError("rule", f"rule {rule} has no α knob to search", f"use one of {', '.join(ALPHA_KNOB)}")
