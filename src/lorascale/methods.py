"""The LoRA variants lorascale trains as baselines, each built by PEFT, and the learning rate each one's
authors train it with. Pure and torch-free, like :mod:`lorascale.rules`.

lorascale re-implements none of them: a method only decides which PEFT option is set.

=========  ==========================================================  ============================
method     what PEFT does                                              default learning rate
=========  ==========================================================  ============================
lora       ``LoraConfig`` as planned: ΔW = s·B·A, B = 0 at init        the rule's
loraplus   ``peft.optimizers.create_loraplus_optimizer``: B (and       the rule's for A; B gets
           every 1-D parameter) at λ·η, A at η                         λ·η, λ = 16
dora       ``use_dora=True``: W = m·(W₀ + s·B·A)/‖W₀ + s·B·A‖_c        the rule's
pissa      ``init_lora_weights="pissa"`` (``"pissa_niter_N"``): B·A =  η_FFT
           W₀'s top-r singular part / s, base ← W₀ − s·B·A
olora      ``init_lora_weights="olora"``: B = Q_r, A = R_r of W₀'s     the rule's
           QR, unscaled; base ← W₀ − s·B·A
=========  ==========================================================  ============================

Sources (each method's default learning rate is its own paper's recipe):

* LoRA+ — Hayou, Ghosh & Yu, "LoRA+: Efficient Low Rank Adaptation of Large Models", ICML 2024
  (arXiv:2402.12354): set η_B = λ·η_A with λ ≫ 1; λ = 2⁴ = 16 is their recommended default. η_A
  stays the LoRA learning rate (PEFT's docstring adds that a large λ may want η_A up to 2× smaller).
* DoRA — Liu et al., "DoRA: Weight-Decomposed Low-Rank Adaptation", ICML 2024 (arXiv:2402.09353):
  its experiments train DoRA with LoRA's recipe (learning rates of LoRA's order, no separate rule); it
  keeps the scaling rule's learning rate here.
* PiSSA — Meng, Wang & Zhang, "PiSSA: Principal Singular Values and Singular Vectors Adaptation of
  Large Language Models", NeurIPS 2024 (arXiv:2404.02948), NLG experiments (§5): LoRA, PiSSA and full
  finetuning at one learning rate, 2e-5, full finetuning's. PiSSA trains W₀'s principal part itself, so it wants the
  full-finetuning rate, not LoRA's "10×" (Lee et al. 2026, arXiv:2602.04998, also find PiSSA's optimum
  below vanilla LoRA's, from a sharper loss).
* OLoRA — Büyükakyüz, "OLoRA: Orthonormal Low-Rank Adaptation of Large Language Models", 2024
  (arXiv:2406.01775): compared with LoRA at LoRA's hyperparameters; it keeps the rule's learning rate.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Method", "LORAPLUS_LR_RATIO", "BASE_CHANGING_METHODS", "PACKABLE_METHODS", "peft_fields", "method_of",
           "method_lr", "METHOD_LR_NOTES"]

LORAPLUS_LR_RATIO = 16.0
"""LoRA+'s η_B/η_A: λ = 2⁴, Hayou et al. 2024's recommended default."""


class Method(StrEnum):
    """The LoRA variant: which PEFT option (or optimizer) builds it."""

    LORA = "lora"
    LORAPLUS = "loraplus"  # plain LoRA adapters, B trained at loraplus_lr_ratio × the learning rate
    DORA = "dora"
    PISSA = "pissa"
    OLORA = "olora"


BASE_CHANGING_METHODS = frozenset({Method.PISSA, Method.OLORA})
"""Methods whose PEFT init folds the starting B·A out of the base weights (W_res = W₀ − s·B·A)."""

PACKABLE_METHODS = frozenset({Method.LORA, Method.LORAPLUS})
"""Methods the batched members engine computes exactly: plain ΔY = s·B·A·x on a shared, unchanged base
(LoRA+ only changes the optimizer's groups)."""

_FFT_LR_METHODS = frozenset({Method.PISSA})

METHOD_LR_NOTES = {  # why each method's default rate is what it is (LoRA+'s B rate: AdapterSpec.loraplus_ratio)
    Method.DORA: "DoRA (Liu et al. 2024) trains with LoRA's recipe: the rule's learning rate",
    Method.PISSA: "PiSSA (Meng et al. 2024) trains at the full-finetuning learning rate η_FFT",
    Method.OLORA: "OLoRA (Büyükakyüz 2024) trains with LoRA's hyperparameters: the rule's learning rate. Its factors"
                  " start at W₀'s QR scale whatever s is (PiSSA's shrink as 1/√s), so under a large s (LoRA-α: 64 at"
                  " r = 16) each step moves s·B·A roughly √s× more than PiSSA's at the same rate; lower it if training"
                  " is unstable",
}


def peft_fields(method: Method, pissa_niter: int | None = None) -> dict:
    """The ``LoraConfig`` fields ``method`` sets (empty for plain LoRA and LoRA+, whose adapters are LoRA's)."""
    method = Method(method)
    if method is Method.DORA:
        return {"use_dora": True}
    if method is Method.PISSA:
        return {"init_lora_weights": "pissa" if pissa_niter is None else f"pissa_niter_{pissa_niter}"}
    if method is Method.OLORA:
        return {"init_lora_weights": "olora"}
    return {}


def method_of(use_dora: bool, init_lora_weights) -> tuple[Method, int | None] | None:
    """The inverse of :func:`peft_fields`: (method, pissa_niter) of a ``LoraConfig``'s options, or None when
    they are no single method (DoRA with PiSSA, a Gaussian init, ...). LoRA+ is invisible here: an optimizer."""
    init = init_lora_weights
    if use_dora:
        return (Method.DORA, None) if init is True else None
    if init is True:
        return Method.LORA, None
    if not isinstance(init, str):
        return None
    # as PEFT's LoraLayer.update_layer reads them: "pissa…" case-sensitively, "olora" in any case
    if init == "pissa":
        return Method.PISSA, None
    if init.startswith("pissa_niter_") and init.removeprefix("pissa_niter_").isdigit():
        return Method.PISSA, int(init.removeprefix("pissa_niter_"))
    return (Method.OLORA, None) if init.lower() == "olora" else None


def method_lr(method: Method, rule_lr: float | None, lr_fft: float) -> float | None:
    """The method's default peak learning rate: η_FFT for PiSSA, else the scaling rule's ``rule_lr``
    (None when the rule needs a tuned reference point)."""
    return lr_fft if Method(method) in _FFT_LR_METHODS else rule_lr
