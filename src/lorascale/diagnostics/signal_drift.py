"""SignalDriftMonitor: LoRA-α's signal/drift decomposition of every optimizer step, per layer type.

For each LoRA layer and monitored step t (LoRA-α Prop. 1, App. G.1):

    ΔW_signal = s(B·ΔA + ΔB·A),   ΔW_drift = s·ΔB·ΔA,   ΔW_signal + ΔW_drift = W(θ_t) − W(θ_{t−1}),

with (A, B) the factors before the step and ΔA, ΔB the step the optimizer actually took (Adam,
weight decay and clipping included). Logged per layer type ``<kind>`` (and ``all``)::

    sd/<kind>/signal_norm   ‖ΔW_signal‖_F        (r×r Gram identities, no d_out×d_in matrix)
    sd/<kind>/drift_norm    ‖ΔW_drift‖_F
    sd/<kind>/ratio         signal_norm / drift_norm (the Signal-to-Drift ratio of Fig. 2c;
                            omitted when the drift is exactly 0, e.g. Adam's first step from B = 0)
    sd/<kind>/signal_align  cos(ΔW_signal, −G)   (Prop. 2(i): ≥ 0 for GD/sign-GD steps)
    sd/<kind>/drift_align   cos(ΔW_drift, −G)    (Prop. 2(ii): no guaranteed sign)

G = ∂L/∂W of the step's loss, from the layer inputs and output gradients captured during the
step's forward/backward (:mod:`.capture`; token cap documented there). Type-level norms and
cosines are those of the stacked per-module updates (:mod:`.aggregate`).

Cost: the norms need only r×r Grams (≲2% of a step). The alignments need ‖G‖², an m×m token
Gram per layer (m ≤ ``max_tokens``), which dominates. On CPU with every step monitored we measured
≈2% of a SmolLM2 step at batch 8×128, ≈6% of a MiniLM step at 8×128 and ≈14% of a SmolLM2 step
at a small batch of 2×64 (bench/bench_monitors.py). ``alignment=False`` skips the capture hooks
and these two metrics.
"""

from __future__ import annotations

import torch

from .aggregate import TypeSums, metric_key
from .capture import DEFAULT_MAX_TOKENS, TokenCapture
from .decomposition import cosine, drift_sq_norm, grad_sq_norm, signal_sq_norm, step_grad_inners
from .monitor import Factors, LoraMonitor

__all__ = ["SignalDriftMonitor", "signal_drift_sums", "signal_drift_metrics", "PREFIX"]

PREFIX = "sd"


class SignalDriftMonitor(LoraMonitor):
    """Attach to the training loop (:class:`lorascale.train.callbacks.Callback`) or HF Trainer (:mod:`.hf`)."""

    plain_lora_only = True  # ΔW = s·B·A: DoRA is refused

    def __init__(
        self, every: int = 1, alignment: bool = True, max_tokens: int = DEFAULT_MAX_TOKENS, seed: int = 0, adapter: str = "default"
    ):
        super().__init__(every, adapter)
        self.alignment = alignment
        self.max_tokens = max_tokens
        self.seed = seed
        self.capture: TokenCapture | None = None
        self._before: dict[str, Factors] | None = None

    def on_train_begin(self, ctx) -> None:
        self._find_layers(ctx.model)
        if self.alignment:
            self.capture = TokenCapture(self.modules, self.max_tokens, self.seed).attach()
            self.capture.active = self.monitored(ctx.step + 1)  # the next forward belongs to step ctx.step + 1

    def on_before_optimizer_step(self, ctx) -> None:
        if self.monitored(ctx.step + 1):
            self._before = self._snapshot()

    def on_step_end(self, ctx, logs: dict) -> None:
        if self._before is not None:
            sums = signal_drift_sums(self.modules, self.kinds, self._before, self._snapshot(), self.capture)
            logs.update(signal_drift_metrics(sums))
            self._before = None
        if self.capture is not None:
            self.capture.clear()
            self.capture.active = self.monitored(ctx.step + 1)

    def on_train_end(self, ctx, summary: dict) -> None:
        if self.capture is not None:
            self.capture.detach()
            self.capture = None


def signal_drift_sums(modules, kinds, before: dict[str, Factors], after: dict[str, Factors], capture=None) -> TypeSums:
    """Per-type sums of ‖signal‖², ‖drift‖², ⟨G, signal⟩, ⟨G, drift⟩ and ‖G‖² for one step."""
    sums = TypeSums()
    with torch.no_grad():
        for name in modules:
            b, a = before[name], after[name]
            dA, dB, s = a.A - b.A, a.B - b.B, b.scale
            values = {"signal_sq": signal_sq_norm(b.A, b.B, dA, dB, s), "drift_sq": drift_sq_norm(dA, dB, s)}
            rows = capture.rows(name) if capture is not None else None
            if rows is not None:
                x, g = rows
                x, g = x.to(dA.device, dA.dtype), g.to(dA.device, dA.dtype)
                values["signal_inner"], values["drift_inner"] = step_grad_inners(g, x, b.A, b.B, dA, dB, s)
                values["grad_sq"] = grad_sq_norm(g, x)
            sums.add(kinds[name], **values)
    return sums


def signal_drift_metrics(sums: TypeSums) -> dict[str, float]:
    """The logged numbers (module docs) from :func:`signal_drift_sums`."""
    out: dict[str, float] = {}
    for kind, v in sums.items():
        signal, drift = TypeSums.root(v["signal_sq"]), TypeSums.root(v["drift_sq"])
        out[metric_key(PREFIX, kind, "signal_norm")] = signal
        out[metric_key(PREFIX, kind, "drift_norm")] = drift
        if drift > 0.0:
            out[metric_key(PREFIX, kind, "ratio")] = signal / drift
        if v.get("grad_sq", 0.0) > 0.0:
            # cos(ΔW, −G) = −⟨G, ΔW⟩ / (‖ΔW‖‖G‖)
            for part in ("signal", "drift"):
                c = cosine(-v[f"{part}_inner"], v[f"{part}_sq"], v["grad_sq"])
                if c == c:  # NaN when the update is exactly zero: nothing to log
                    out[metric_key(PREFIX, kind, f"{part}_align")] = c
    return out
