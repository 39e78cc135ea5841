"""Capture each LoRA layer's inputs x_t and output gradients g_t = ∂L/∂y_t during training.

The layer gradient is G = ∂L/∂W = Σ_t g_t x_tᵀ (y_t = W x_t; with PEFT's default lora_dropout = 0
the adapter branch sees the same x_t). We keep the rows (x_t, g_t) instead of G, so inner products
and norms never form a d_out×d_in matrix (:mod:`.decomposition`).

Token cap: a micro-batch of at most ``max_tokens`` rows is kept whole, and G is exact. Above the
cap a uniform random subset S of m = ``max_tokens`` of its T rows is kept with g_t scaled by T/m,
so G_S = (T/m)·Σ_{t∈S} g_t x_tᵀ is an unbiased estimate of G. Rows with g_t = 0 (padding, tokens
masked out of the loss) waste samples but bias nothing; we do not filter them, since finding them
costs a pass over every g_t. Alignments are then cosines with G_S: still in [−1, 1], but pulled
towards 0 by the sampling noise (roughly by √(m/T) when token contributions are uncorrelated), so
compare alignments between runs with the same batch shape and cap.

The cost is T·r·(d_in + d_out) for the inner products and m²·(d_in + d_out) for ‖G_S‖²; the
default cap of 128 keeps both monitors ≲5% of a MiniLM/SmolLM2 step (bench/bench_monitors.py).
"""

from __future__ import annotations

import torch

__all__ = ["TokenCapture", "DEFAULT_MAX_TOKENS"]

DEFAULT_MAX_TOKENS = 128  # the m² Gram for ‖G_S‖ dominates the monitor's cost (module docs)


class TokenCapture:
    """Forward hooks on LoRA layers that store (x_t, g_t) rows of the next backward pass while ``active``."""

    def __init__(self, modules: dict, max_tokens: int = DEFAULT_MAX_TOKENS, seed: int = 0):
        assert max_tokens > 0, f"max_tokens must be positive, got {max_tokens}"
        self.modules = modules  # name -> LoraLayer
        self.max_tokens = max_tokens
        self.active = False
        self._gen = torch.Generator().manual_seed(seed)
        self._rows: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {n: [] for n in modules}
        self._handles: list = []
        self._grad_handles: list = []

    def attach(self) -> "TokenCapture":
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._forward_hook(name)))
        return self

    def detach(self) -> None:
        for h in self._handles + self._grad_handles:
            h.remove()
        self._handles, self._grad_handles = [], []

    def clear(self) -> None:
        for rows in self._rows.values():
            rows.clear()
        for h in self._grad_handles:
            h.remove()
        self._grad_handles = []

    def rows(self, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(x, g): (N, d_in), (N, d_out) rows (≥ float32) over all micro-batches since :meth:`clear`."""
        rows = self._rows[name]
        if not rows:
            return None
        return torch.cat([x for x, _ in rows]), torch.cat([g for _, g in rows])

    # ------------------------------------------------------------------------------------
    def _forward_hook(self, name: str):
        def hook(module, args, output):
            if not self.active or not torch.is_grad_enabled() or not isinstance(output, torch.Tensor):
                return
            if not output.requires_grad or not args:
                return
            x = args[0].detach()  # autograd already keeps this input alive; no copy here

            def on_grad(g):
                self._store(name, x, g.detach())

            self._grad_handles.append(output.register_hook(on_grad))

        return hook

    def _store(self, name: str, x: torch.Tensor, g: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1])  # (T, d_in)
        g = g.reshape(-1, g.shape[-1])  # (T, d_out)
        dtype = torch.promote_types(x.dtype, torch.float32)  # bf16 → fp32 sums; fp64 stays exact
        weight = 1.0
        if g.shape[0] <= self.max_tokens:  # keep every row: G is exact
            xs, gs = x.to(dtype, copy=True), g.to(dtype, copy=True)
        else:
            pick = torch.randperm(g.shape[0], generator=self._gen)[: self.max_tokens].to(g.device)
            weight = g.shape[0] / self.max_tokens
            xs = x.index_select(0, pick).to(dtype)
            gs = g.index_select(0, pick).to(dtype)
        if weight != 1.0:
            gs = gs * weight
        self._rows[name].append((xs, gs))
