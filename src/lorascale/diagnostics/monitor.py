"""What both diagnostic callbacks share: finding LoRA layers, the every-k schedule, factor snapshots."""

from __future__ import annotations

import torch

from ..adapters import lora_modules
from ..errors import ConfigError
from ..schema import StrictPositiveInt, checked
from ..train.callbacks import Callback
from .aggregate import layer_types

__all__ = ["LoraMonitor", "Factors", "call_model"]


class Factors:
    """A copy of one layer's (A, B) and its scale s: the θ of LoRA-α Prop. 1. Kept in float32 at least
    (bf16/fp16 factors are promoted, as :class:`~.capture.TokenCapture` promotes its rows); float64 stays exact."""

    __slots__ = ("A", "B", "scale")

    def __init__(self, module, adapter: str):
        a, b = module.lora_A[adapter].weight.detach(), module.lora_B[adapter].weight.detach()
        dtype = torch.promote_types(a.dtype, torch.float32)
        self.A = a.to(dtype, copy=True)  # (r, d_in)
        self.B = b.to(dtype, copy=True)  # (d_out, r)
        self.scale = float(module.scaling[adapter])


def refuse_dora(modules: dict, adapter: str, who: str) -> None:
    """``who`` measures ΔW = s·B·A (W = W₀ + s·B·A), which DoRA's per-column rescaling breaks: refused."""
    dora = [n for n, m in modules.items() if getattr(m, "use_dora", {}).get(adapter)]
    if dora:
        raise ConfigError("method", f"{who} measures ΔW = s·B·A (LoRA-α Prop. 1), but the adapter is DoRA ({len(dora)}"
                          f" layers, e.g. {dora[0]}): it scales each output column by m/‖W₀ + s·B·A‖, so s·B·A is not"
                          " the weight change", "measure LoRA, rsLoRA or LoRA+ adapters")


class LoraMonitor(Callback):
    """Base for callbacks that measure optimizer step t when t % every == 0 (t counts from 1)."""

    plain_lora_only = False  # True: the measurement assumes W = W₀ + s·B·A, which DoRA's rescaling breaks

    def __init__(self, every: int = 1, adapter: str = "default"):
        checked(StrictPositiveInt, "every", every, "monitor every k-th optimizer step, e.g. 1 or 10")
        self.every = every
        self.adapter = adapter
        self.modules: dict = {}
        self.kinds: dict[str, str] = {}

    def monitored(self, step: int) -> bool:
        """Is optimizer step ``step`` (1-based) measured?"""
        return step % self.every == 0

    def _find_layers(self, model) -> None:
        self.modules = dict(lora_modules(model, self.adapter))
        if not self.modules:
            raise ConfigError("model", f"has no PEFT LoRA layers with adapter {self.adapter!r}", "wrap it with lorascale.apply first")
        if self.plain_lora_only:
            refuse_dora(self.modules, self.adapter, type(self).__name__)
        self.kinds = layer_types(list(self.modules))

    def _snapshot(self) -> dict[str, Factors]:
        with torch.no_grad():
            return {name: Factors(m, self.adapter) for name, m in self.modules.items()}


def call_model(model, batch, labels: bool = False):
    """Run ``model`` on a batch given as a dict (kwargs; ``labels`` dropped unless ``labels``), a tuple
    (args) or a tensor."""
    if isinstance(batch, dict):
        return model(**{k: v for k, v in batch.items() if labels or k != "labels"})
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)
