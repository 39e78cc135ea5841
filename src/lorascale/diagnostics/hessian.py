"""Exact LoRA Hessians for small models with torch.func (LoRA-α Prop. 1, 3, 4; App. E, Fig. 8).

For adapted layers W_l(θ) = W₀_l + s_l·B_l·A_l, θ = [vec A_l; vec B_l]_l (row-major vec) and a loss
ℓ(w) of the effective weights w = [vec W_l]_l, LoRA-α Prop. 1 (eq. 4) splits the adapter Hessian::

    H_LoRA = ∇²_θ ℓ(w(θ)) = Jᵀ H_ℓ J  +  Σ_k g_k ∇²_θ w_k
                            └ H_signal ┘   └── H_drift ──┘

with J = ∂w/∂θ, H_ℓ = ∇²_w ℓ and g = ∇_w ℓ. :func:`exact_hessians` computes H_LoRA, H_ℓ, J, g and
H_drift = ∇²_θ⟨g, w(θ)⟩ (g held fixed) each by its own automatic differentiation, so the identity
is a check, not an assumption. Sizes are p = Σ r(d_in + d_out) and D = Σ d_out·d_in: use it for the
d = 32 MLP of App. E (a layer is a 1024×1024 problem) or a few layers of a tiny model; for real
models use the matrix-free :mod:`.spectral`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call, grad, jacfwd, jacrev

from ..adapters import lora_modules
from .decomposition import spectrum_summary

__all__ = ["LayerPoint", "ExactHessians", "exact_hessians", "weight_hessian", "peft_layer_points", "peft_weight_loss", "eigenvalues"]


@dataclass(frozen=True)
class LayerPoint:
    """One adapted layer at the current point: base weight W₀ (d_out×d_in), factors A (r×d_in), B (d_out×r),
    scale s. ``stored_transposed``: the module keeps W₀ as d_in×d_out (GPT-2's Conv1D, PEFT's
    ``fan_in_fan_out``), so :func:`peft_weight_loss` writes W back transposed."""

    name: str
    W0: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    scale: float
    stored_transposed: bool = False

    @property
    def weight(self) -> torch.Tensor:
        return self.W0 + self.scale * (self.B @ self.A)


@dataclass
class ExactHessians:
    names: list[str]
    h_lora: torch.Tensor  # (p, p)
    h_signal: torch.Tensor  # (p, p) = Jᵀ H_ℓ J
    h_drift: torch.Tensor  # (p, p) = Σ_k g_k ∇²_θ w_k
    h_weights: torch.Tensor  # (D, D) = H_ℓ
    jacobian: torch.Tensor  # (D, p)
    grad_w: torch.Tensor  # (D,)

    def spectra(self, parts=("lora", "signal", "drift", "weights")) -> dict[str, np.ndarray]:
        """Ascending eigenvalues of H_LoRA, H_signal, H_drift and H_ℓ (or the named ``parts``)."""
        return {k: eigenvalues(getattr(self, f"h_{k}")) for k in parts}

    def summary(self) -> dict[str, dict[str, float]]:
        return {k: spectrum_summary(v) for k, v in self.spectra().items()}


def exact_hessians(loss_w: Callable[[dict], torch.Tensor], layers: list[LayerPoint], chunk_size: int | None = None) -> ExactHessians:
    """H_LoRA, H_signal, H_drift, H_ℓ, J and g at ``layers`` (module docs).

    ``loss_w(ws)`` is the loss as a function of the effective weights ``{name: W}`` of ``layers``
    (everything else held fixed); see :func:`peft_weight_loss` for a PEFT model.
    ``chunk_size`` bounds how many Hessian columns torch.func vectorises at once (memory).
    """
    names = [ly.name for ly in layers]
    a_shapes = [tuple(ly.A.shape) for ly in layers]
    b_shapes = [tuple(ly.B.shape) for ly in layers]
    scales = [ly.scale for ly in layers]
    w0 = [ly.W0.detach() for ly in layers]
    theta0 = torch.cat([t.detach().reshape(-1) for ly in layers for t in (ly.A, ly.B)])

    def weights(theta) -> dict:
        out, i = {}, 0
        for name, sa, sb, s, base in zip(names, a_shapes, b_shapes, scales, w0):
            na, nb = sa[0] * sa[1], sb[0] * sb[1]
            a = theta[i : i + na].reshape(sa)
            b = theta[i + na : i + na + nb].reshape(sb)
            out[name] = base + s * (b @ a)
            i += na + nb
        return out

    def flat(ws: dict):
        return torch.cat([ws[n].reshape(-1) for n in names])

    def unflat(wflat) -> dict:
        out, i = {}, 0
        for name, base in zip(names, w0):
            out[name] = wflat[i : i + base.numel()].reshape(base.shape)
            i += base.numel()
        return out

    def loss_theta(theta):
        return loss_w(weights(theta))

    def loss_flat(wflat):
        return loss_w(unflat(wflat))

    wflat0 = flat(weights(theta0)).detach()
    g = grad(loss_flat)(wflat0).detach()
    h_lora = jacrev(jacrev(loss_theta), chunk_size=chunk_size)(theta0)
    h_w = jacrev(jacrev(loss_flat), chunk_size=chunk_size)(wflat0)
    jac = jacfwd(lambda th: flat(weights(th)))(theta0)
    h_drift = jacrev(jacrev(lambda th: (g * flat(weights(th))).sum()), chunk_size=chunk_size)(theta0)
    h_signal = jac.T @ h_w @ jac
    return ExactHessians(names, _sym(h_lora), _sym(h_signal), _sym(h_drift), _sym(h_w), jac.detach(), g)


def weight_hessian(loss_w: Callable[[dict], torch.Tensor], name: str, W: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """H_ℓ block of one layer: ∇²_W ℓ (d_out·d_in square, row-major vec), other weights fixed."""
    shape = W.shape
    h = jacrev(jacrev(lambda wf: loss_w({name: wf.reshape(shape)})), chunk_size=chunk_size)(W.detach().reshape(-1))
    return _sym(h)


def eigenvalues(h: torch.Tensor) -> np.ndarray:
    """Ascending eigenvalues of a symmetric matrix, in float64."""
    return torch.linalg.eigvalsh(h.detach().double()).cpu().numpy()


def peft_layer_points(model, names: list[str] | None = None, adapter: str = "default") -> list[LayerPoint]:
    """The :class:`LayerPoint` of each (or each named) PEFT LoRA layer of ``model``."""
    from .monitor import refuse_dora

    modules = dict(lora_modules(model, adapter))
    refuse_dora(modules, adapter, "exact_hessians")  # W = W₀ + s·B·A is what it differentiates
    points = []
    for name, m in modules.items():
        if names is None or name in names:
            transposed = bool(getattr(m, "fan_in_fan_out", False))
            w0 = m.base_layer.weight.detach()
            points.append(LayerPoint(name, w0.T if transposed else w0, m.lora_A[adapter].weight.detach(),
                                     m.lora_B[adapter].weight.detach(), float(m.scaling[adapter]), transposed))
    return points


def peft_weight_loss(model, batch, loss_from_output, layers: list[LayerPoint], adapter: str = "default"):
    """ℓ(w) for a PEFT model: each layer's base weight is replaced by W and its lora_B by 0.

    Generic but slow (PEFT's Python forward under vmap); hand-written functional forwards, like
    :mod:`lorascale.repro.mlp`'s, are ~20× faster.
    """
    zeros = {ly.name: torch.zeros_like(ly.B) for ly in layers}
    transposed = {ly.name for ly in layers if ly.stored_transposed}

    def loss_w(ws: dict):
        params = {}
        for name, w in ws.items():
            params[f"{name}.base_layer.weight"] = w.T if name in transposed else w  # as the module stores it
            params[f"{name}.lora_B.{adapter}.weight"] = zeros[name]
        if isinstance(batch, dict):
            out = functional_call(model, params, (), batch)
        else:
            out = functional_call(model, params, tuple(batch) if isinstance(batch, (tuple, list)) else (batch,))
        return loss_from_output(out)

    return loss_w


def _sym(h: torch.Tensor) -> torch.Tensor:
    """Symmetrise away the rounding asymmetry of reverse-over-reverse differentiation."""
    h = h.detach()
    return 0.5 * (h + h.T)
