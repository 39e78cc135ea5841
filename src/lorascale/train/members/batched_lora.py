"""K LoRA members in one forward over a shared frozen base.

The batch is stacked member-major: rows [k·B, (k+1)·B) of every activation belong to member k. A
PEFT ``lora.Linear`` then computes, for all members at once (torchtune's x ↦ W₀x + s·BAx, per member)

    Y = X W₀ᵀ                                     one matmul of the base weight over all K·B rows
    ΔY_k = ((X_k A_kᵀ) B_kᵀ) · s_k                 two ``torch.bmm`` over members, X viewed (K, B·T, d_in)

with each member's own factors A_k (r_k, d_in), B_k (d_out, r_k) and PEFT scale s_k, in PEFT's own
order of operations (``lora_B(lora_A(x)) * scaling``). A classification head runs each member's
own copy on its rows. The factors are PEFT's parameters, stacked at every forward, so autograd sends
each member exactly the gradient of its own loss, and one optimizer with a group per member updates
them as separate runs would.

**Different ranks are zero-padded to r = max r_k, and that is exact.** With Â = [A; 0] (r×d_in) and
B̂ = [B, 0] (d_out×r):

* forward: H = X Âᵀ = [X Aᵀ, 0] — the padded columns are sums of x·0, exactly 0 — and H B̂ᵀ adds
  only 0·0 terms to X Aᵀ Bᵀ. The value is the unpadded one; only the blocking of the sums may differ.
* backward, with G = ∂L/∂ΔY: ∂L/∂H = s·G B̂ has exactly-zero padded columns, so ∂L/∂Â = (∂L/∂H)ᵀ X
  has exactly-zero padded rows and ∂L/∂B̂ = s·Gᵀ H exactly-zero padded columns.
* AdamW on a padded entry: g = 0 ⇒ m = β₁m + (1-β₁)·0 = 0 and v = 0, so the step lr·m̂/(√v̂ + ε) = 0,
  and decoupled decay θ ← θ(1 - lr·λ) keeps θ = 0. Padding kept as a parameter would stay exactly 0.

(All of this needs X and G finite: 0·∞ is NaN. A member whose activations blow up is diverging and
is dropped from the stack; rows never mix, so its NaNs cannot reach the other members.) Here the
padding is not even stored — it is rebuilt from zeros at every forward — and by the argument above
that is the same computation as training padded factors.

A member a layer does not target (members may target different modules) gets rank-0 factors: all
padding, ΔY_k = 0, exactly like a separate run where that layer is not wrapped.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

__all__ = ["lora_delta", "stack_factors", "StackedMembers"]


def lora_delta(x, a, b, scale):
    """ΔY_k = ((X_k A_kᵀ) B_kᵀ)·s_k for every member k.

    x (K, N, d_in), a (K, r, d_in), b (K, d_out, r), scale (K,) float32 -> (K, N, d_out), in the
    autocast dtype when autocast is on (as ``F.linear`` would compute it), else in ``a``'s dtype.
    """
    return _batched_lora().apply(x, a, b, scale)


def _compute_dtype(x, a):
    import torch

    kind = x.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else a.dtype


@functools.cache
def _batched_lora():
    """The autograd Function of :func:`lora_delta`: forward and backward as PEFT's ``lora_B(lora_A(x)) * s``
    computes them (defined on first use, so importing lorascale does not import torch).

    Autograd's own ``bmm`` backward forms the weight gradient as Xᵀ·G (d_in × r); ``F.linear``'s forms
    Gᵀ·X (r × d_in). Same sums, different GEMM orientation, hence a different blocking of the sum
    over the B·T rows (measured: bitwise equal forwards but ~1e-6 relative gradient differences on
    CPU). Spelling the backward out in ``F.linear``'s orientation makes a member's gradients those
    of a separate run's PEFT layer (bitwise on CPU in our tests, fp32 and bf16 autocast).
    """
    import torch

    class BatchedLora(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, a, b, scale):
            dtype = _compute_dtype(x, a)
            with torch.autocast(x.device.type, enabled=False):
                xc, ac, bc = x.to(dtype), a.to(dtype), b.to(dtype)  # autocast's casts, made explicit
                h = torch.bmm(xc, ac.transpose(1, 2))  # (K, N, r)
                out = torch.bmm(h, bc.transpose(1, 2))  # (K, N, d_out)
                # s_k applied in float32 and rounded once, as PEFT's tensor * python_float under bf16 autocast
                y = (out * scale.view(-1, 1, 1)).to(dtype)
            ctx.save_for_backward(xc, ac, bc, h, scale)
            ctx.dtypes = (x.dtype, a.dtype, b.dtype)
            return y

        @staticmethod
        def backward(ctx, gy):
            xc, ac, bc, h, scale = ctx.saved_tensors
            with torch.autocast(gy.device.type, enabled=False):
                g = (gy * scale.view(-1, 1, 1)).to(h.dtype)  # (K, N, d_out) = ∂L/∂(X Aᵀ Bᵀ)
                grad_h = torch.bmm(g, bc)  # (K, N, r): F.linear(h, B)'s grad_input = G·B
                grad_b = torch.bmm(g.transpose(1, 2), h)  # (K, d_out, r): its grad_weight = Gᵀ·H
                grad_x = torch.bmm(grad_h, ac)  # (K, N, d_in)
                grad_a = torch.bmm(grad_h.transpose(1, 2), xc)  # (K, r, d_in)
            dx, da, db = ctx.dtypes
            return grad_x.to(dx), grad_a.to(da), grad_b.to(db), None

    return BatchedLora


def stack_factors(a_list: Sequence, b_list: Sequence):
    """Stack members' factors, zero-padding ranks to the largest: A_k (r_k, d_in) -> (K, r, d_in),
    B_k (d_out, r_k) -> (K, d_out, r). A ``None`` pair is a member without this layer (rank 0)."""
    import torch
    import torch.nn.functional as F

    present = [a for a in a_list if a is not None]
    assert present, "stack_factors needs at least one member with factors"
    r = max(a.shape[0] for a in present)
    if all(a is not None and a.shape[0] == r for a in a_list):
        return torch.stack(list(a_list)), torch.stack(list(b_list))
    ref_a, ref_b = present[0], next(b for b in b_list if b is not None)
    a_pad = [ref_a.new_zeros(r, ref_a.shape[1]) if a is None else F.pad(a, (0, 0, 0, r - a.shape[0])) for a in a_list]
    b_pad = [ref_b.new_zeros(ref_b.shape[0], r) if b is None else F.pad(b, (0, r - b.shape[1])) for b in b_list]
    return torch.stack(a_pad), torch.stack(b_pad)


class StackedMembers:
    """While entered, every PEFT LoRA layer and classification head of ``model`` runs the members
    named in ``active`` (in stack order) on a member-major stacked batch.

    ``active`` may shrink between forwards (diverged or finished members leave the stack). Leaving the
    context restores PEFT's own forwards, so saving and single-adapter inference are plain PEFT.
    """

    def __init__(self, model, names: Sequence[str]):
        import torch.nn as nn
        from peft.tuners.lora import LoraLayer
        from peft.utils.other import ModulesToSaveWrapper

        self.model = model
        self.active = list(names)
        self._layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
        self._heads = [m for m in model.modules() if isinstance(m, ModulesToSaveWrapper)]
        self._scales: dict = {}
        for layer in self._layers:
            for name in names:
                if name in layer.lora_A:
                    assert name not in layer.lora_variant, f"{name}: LoRA variants (DoRA, ...) have no batched forward"
                    assert isinstance(layer.lora_dropout[name], nn.Identity), f"{name}: LoRA dropout is not batched"
        assert all(all(n in h.modules_to_save for n in names) for h in self._heads), "a head without a copy per member"

    def __enter__(self) -> "StackedMembers":
        for layer in self._layers:
            layer.forward = _bind(self._lora_forward, layer)
        for head in self._heads:
            head.forward = _bind(self._head_forward, head)
        return self

    def __exit__(self, *exc) -> None:
        for module in self._layers + self._heads:
            if "forward" in module.__dict__:
                del module.forward

    # ----------------------------------------------------------------------------------------
    def _lora_forward(self, layer, x, *args, **kwargs):
        result = layer.base_layer(x, *args, **kwargs)  # (K·B, ..., d_out): the base weight once for everyone
        names = self.active
        if not any(n in layer.lora_A for n in names):
            return result
        a, b = stack_factors([layer.lora_A[n].weight if n in layer.lora_A else None for n in names],
                             [layer.lora_B[n].weight if n in layer.lora_A else None for n in names])
        xs = x.reshape(len(names), -1, x.shape[-1])  # (K, B·T, d_in), member-major rows; lora_delta casts as PEFT
        assert xs.shape[1] * len(names) == x.numel() // x.shape[-1], "batch rows are not a multiple of the members"
        delta = lora_delta(xs, a, b, self._scale(layer, names, a.device))
        return (result + delta.reshape(result.shape)).to(result.dtype)

    def _scale(self, layer, names, device):
        """(K,) PEFT scales s_k of this layer, cached while the stack is unchanged (no per-call upload)."""
        import torch

        key = (id(layer), tuple(names), device)
        if key not in self._scales:
            values = [layer.scaling[n] if n in layer.lora_A else 0.0 for n in names]
            self._scales[key] = torch.tensor(values, dtype=torch.float32, device=device)
        return self._scales[key]

    def _head_forward(self, head, x, *args, **kwargs):
        import torch

        names = self.active
        assert x.shape[0] % len(names) == 0, f"{x.shape[0]} head rows for {len(names)} members"
        rows = x.shape[0] // len(names)
        return torch.cat([head.modules_to_save[n](x[i * rows:(i + 1) * rows], *args, **kwargs) for i, n in enumerate(names)])


def _bind(method, module):
    def forward(*args, **kwargs):
        return method(module, *args, **kwargs)

    return forward
