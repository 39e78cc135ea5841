"""μA's initialisation schemes (Def. 3.2), applied after ``get_peft_model``.

Init[A]: A ~ N(0, 1/d_in), B = 0.   Init[B]: B ~ N(0, 1/r), A = 0.   kaiming: PEFT's default
(A ~ U(-1/√d_in, 1/√d_in), B = 0), left as PEFT made it. All three make ΔW = 0 at step 0.
"""

from __future__ import annotations

import math

from ..rules import Init

__all__ = ["lora_modules", "apply_init"]


def lora_modules(model, adapter: str = "default"):
    """(name, module) for every PEFT LoRA layer that carries ``adapter``."""
    from peft.tuners.lora import LoraLayer

    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and adapter in module.lora_A:
            yield name, module


def apply_init(model, init: Init, seed: int = 0, adapter: str = "default") -> int:
    """Re-initialise every LoRA factor of ``model`` in place; returns the number of layers touched."""
    import torch

    init = Init(init)
    if init is Init.KAIMING:
        return sum(1 for _ in lora_modules(model, adapter))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    count = 0
    with torch.no_grad():
        for _, module in lora_modules(model, adapter):
            a = module.lora_A[adapter].weight  # (r, d_in)
            b = module.lora_B[adapter].weight  # (d_out, r)
            r, d_in = a.shape
            if init is Init.A:
                a.copy_(torch.randn(a.shape, generator=gen) / math.sqrt(d_in))
                b.zero_()
            else:
                b.copy_(torch.randn(b.shape, generator=gen) / math.sqrt(r))
                a.zero_()
            count += 1
    return count
