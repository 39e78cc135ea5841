"""μA learning-rate transfer as a request: from a tuned (rank, width, configuration) to another."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from .errors import ConfigError
from .rules import Finetune, Init, MuAConfig, mua_lr_exponents, transfer_lr
from .schema import Float, PositiveFloat, PositiveInt, Settings, setting

__all__ = ["TransferRequest", "predict_transfer"]

Side = Literal["A", "B", "fft"]
_CONFIG = {"A": (Finetune.LORA, Init.A), "B": (Finetune.LORA, Init.B), "fft": (Finetune.FULL, Init.B)}


class TransferRequest(Settings):
    lr: PositiveFloat = setting(..., "the learning rate tuned at the reference point", fix="e.g. 2e-4")
    from_rank: PositiveInt | None = setting(None, "rank of the reference run")
    to_rank: PositiveInt | None = setting(None, "rank to predict for (default: the same)")
    from_width: PositiveInt = setting(..., "width n (hidden size) of the reference model")
    to_width: PositiveInt | None = setting(None, "width to predict for (default: the same)")
    init: Side = setting("B", "reference configuration: A, B (μA LoRA inits) or fft")
    to: Side | None = setting(None, "target configuration: A, B or fft (default: the same)")
    gamma: Float = setting(0.0, "μA exponent of the multiplier α = r^-γ (both sides)", ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _lora_needs_rank(self) -> "TransferRequest":
        if self.init != "fft" and self.from_rank is None:
            raise ConfigError("from_rank", "a LoRA reference needs its rank", "give the rank it was tuned at")
        if (self.to or self.init) != "fft" and self.to_rank is None and self.from_rank is None:
            raise ConfigError("to_rank", "a LoRA target needs its rank (the full-finetuning reference has none)",
                              "give the rank to predict for")
        to_rank, to_width = self.to_rank or self.from_rank, self.to_width or self.from_width
        for field, r, n in (("from_rank", self.from_rank, self.from_width), ("to_rank", to_rank, to_width)):
            if (self.init if field == "from_rank" else self.to or self.init) != "fft" and r is not None and r > n:
                raise ConfigError(field, f"r = {r} exceeds the width n = {n}", "μA's rules assume r ≤ n; check the ranks and widths")
        return self


def predict_transfer(req: TransferRequest) -> dict:
    """η at the target point (μA's rules, :func:`~lorascale.rules.transfer_lr`) with the local exponents."""
    src = MuAConfig(finetune=_CONFIG[req.init][0], init=_CONFIG[req.init][1], gamma=req.gamma)
    dst_side = req.to or req.init
    dst = MuAConfig(finetune=_CONFIG[dst_side][0], init=_CONFIG[dst_side][1], gamma=req.gamma)
    r1 = req.to_rank if req.to_rank is not None else req.from_rank
    n1 = req.to_width or req.from_width
    lr1 = transfer_lr(req.lr, n0=req.from_width, r0=req.from_rank, n1=n1, r1=r1, src=src, dst=dst)
    exps = mua_lr_exponents(n1, r1 or 1, dst)
    return {
        "from": {"config": src.label, "rank": req.from_rank, "width": req.from_width, "lr": req.lr},
        "to": {"config": dst.label, "rank": r1, "width": n1, "lr": lr1},
        "exponents": {"width": exps[0], "rank": exps[1]},
    }
