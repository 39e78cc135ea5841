"""μA learning-rate transfer as a request: from a tuned (rank, width, configuration) to another."""

from __future__ import annotations

from typing import Literal

from pydantic import ValidationError, model_validator

from .errors import ConfigError, ConfigErrors
from .rules import Finetune, Init, MuAConfig, mua_lr_exponents, transfer_lr
from .schema import Float, PositiveFloat, PositiveInt, Settings, errors_from_validation, setting

__all__ = ["TransferRequest", "predict_transfer"]

Side = Literal["A", "B", "fft"]  # a μA configuration: LoRA with Init[A] or Init[B], or full finetuning
_CONFIG = {"A": (Finetune.LORA, Init.A), "B": (Finetune.LORA, Init.B), "fft": (Finetune.FULL, Init.B)}


class TransferRequest(Settings):
    lr: PositiveFloat = setting(..., "the learning rate tuned at the reference point", fix="e.g. 2e-4")
    from_rank: PositiveInt | None = setting(None, "rank of the reference run", fix="give the rank it was tuned at, e.g. 16")
    to_rank: PositiveInt | None = setting(None, "rank to predict for (default: the same)", fix="give a rank, e.g. 64")
    from_width: PositiveInt = setting(..., "width n (hidden size) of the reference model",
                                      fix="give the model's hidden size, e.g. 576 for SmolLM2-135M")
    to_width: PositiveInt | None = setting(None, "width to predict for (default: the same)",
                                           fix="give the target model's hidden size, e.g. 2048")
    from_config: Side = setting("B", "reference configuration: A or B (LoRA with μA's Init[A] or Init[B]) or fft")
    to_config: Side | None = setting(None, "target configuration: A, B or fft (default: the same)")
    gamma: Float = setting(0.0, "μA exponent of the multiplier α = r^-γ (both sides)", ge=0.0, le=1.0,
                           fix="μA uses γ = 0 (α = 1), 0.5 or 1 (α = 1/r); Init[B] has rules for 0 and 1 only")

    @model_validator(mode="after")
    def _consistent(self) -> "TransferRequest":
        """Every problem at once: ranks a LoRA side needs, ranks past the width, a γ with no μA rule, a rank or γ
        a full-finetuning side would ignore."""
        errors: list[ConfigError] = []
        to_config = self.to_config or self.from_config
        if self.from_config != "fft" and self.from_rank is None:
            errors.append(ConfigError("from_rank", "a LoRA reference needs its rank", "give the rank it was tuned at"))
        if to_config != "fft" and self.to_rank is None and self.from_rank is None and self.from_config == "fft":
            errors.append(ConfigError("to_rank", "a LoRA target needs its rank (the full-finetuning reference has none)",
                                      "give the rank to predict for"))
        # a setting the transfer would ignore: a full-finetuning side has no rank (a fft reference's from_rank stands
        # for the LoRA target's rank only when to_rank is not given), and γ is the LoRA sides' multiplier
        if self.from_config == "fft" and self.from_rank is not None and (self.to_rank is not None or to_config == "fft"):
            errors.append(ConfigError("from_rank", "the full-finetuning reference has no rank, so this would be ignored",
                                      "drop `from_rank`" + ("" if to_config == "fft" else " (the target's rank is `to_rank`)")))
        if to_config == "fft" and self.to_rank is not None:
            errors.append(ConfigError("to_rank", "the full-finetuning target has no rank, so this would be ignored",
                                      "drop `to_rank`"))
        if self.from_config == to_config == "fft" and "gamma" in self.model_fields_set:
            errors.append(ConfigError("gamma", "neither side is LoRA, so the multiplier's exponent would be ignored",
                                      "drop `gamma`"))
        to_rank, to_width = self.to_rank or self.from_rank, self.to_width or self.from_width
        for field, side, r, n in (("from_rank", self.from_config, self.from_rank, self.from_width),
                                  ("to_rank", to_config, to_rank, to_width)):
            if side != "fft" and r is not None and r > n:
                errors.append(ConfigError(field, f"r = {r} exceeds the width n = {n}",
                                          "μA's rules assume r ≤ n; check the ranks and widths"))
        sides = []
        for side in (self.from_config, to_config):
            finetune, init = _CONFIG[side]
            try:  # model_validate: inside this validator a Settings constructor would not collect its errors
                sides.append(MuAConfig.model_validate({"finetune": finetune, "init": init, "gamma": self.gamma}))
            except ValidationError as e:
                errors += [x for x in errors_from_validation(e, MuAConfig) if x.field not in {y.field for y in errors}]
        if len(sides) == 2 and not errors:  # the transfer itself: a pair μA relates, a result a float holds
            try:
                _transfer(self, *sides)
            except ConfigError as e:  # transfer_lr's dst is this request's to_config
                errors.append(e.renamed("to_config") if e.field == "dst" else e)
        ConfigErrors.raise_if_any(errors)
        return self


def _transfer(req: TransferRequest, src: MuAConfig, dst: MuAConfig) -> float:
    return transfer_lr(req.lr, n0=req.from_width, r0=req.from_rank, n1=req.to_width or req.from_width,
                       r1=req.to_rank if req.to_rank is not None else req.from_rank, src=src, dst=dst)


def predict_transfer(req: TransferRequest) -> dict:
    """η at the target point (μA's rules, :func:`~lorascale.rules.transfer_lr`) with the local exponents."""
    src = MuAConfig(finetune=_CONFIG[req.from_config][0], init=_CONFIG[req.from_config][1], gamma=req.gamma)
    dst_side = req.to_config or req.from_config
    dst = MuAConfig(finetune=_CONFIG[dst_side][0], init=_CONFIG[dst_side][1], gamma=req.gamma)
    r1 = req.to_rank if req.to_rank is not None else req.from_rank
    n1 = req.to_width or req.from_width
    lr1 = _transfer(req, src, dst)
    exps = mua_lr_exponents(n1, r1 or 1, dst)
    return {
        "from": {"config": src.label, "rank": None if req.from_config == "fft" else req.from_rank, "width": req.from_width,
                 "lr": req.lr},
        "to": {"config": dst.label, "rank": None if dst_side == "fft" else r1, "width": n1, "lr": lr1},
        "exponents": {"width": exps[0], "rank": exps[1]},
    }
