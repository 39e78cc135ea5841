"""Matrix-free curvature of a trained adapter: Lanczos extremes and Hutchinson traces by HVPs.

On one fixed batch, restricted to the adapter factors θ = (A_l, B_l)_l (LoRA-α Prop. 1):

* H_LoRA·v by double backward: ∇_θ⟨∇_θ ℓ, v⟩ (Pearlmutter's trick, autograd).
* H_drift·v in closed form from the layers' inputs x_t and output gradients g_t: with
  H_drift = ∇²_θ s⟨G, B·A⟩ and G = Σ_t g_t x_tᵀ, a direction v = (δA, δB) gives
  (H_drift v)_A = s·δBᵀG = s·Σ_t (δBᵀg_t) x_tᵀ and (H_drift v)_B = s·G·δAᵀ = s·Σ_t g_t (δA x_t)ᵀ,
  never forming G.
* H_signal·v = H_LoRA·v − H_drift·v, the Gauss–Newton-like part Jᵀ H_ℓ J (PSD when H_ℓ is).

:func:`lanczos` (full reorthogonalisation) gives Ritz values whose extremes converge to λ_max and
λ_min; :func:`hutchinson` estimates Tr H = E[zᵀHz] with Rademacher z (variance 2Σ_{i≠j}H_ij²).
H_drift is block off-diagonal (App. G.2 eq. 30), so Tr H_drift = 0 and Tr H_signal = Tr H_LoRA;
both are estimated, with different variance.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..adapters import lora_modules
from .capture import TokenCapture
from .monitor import call_model, refuse_dora

__all__ = ["AdapterHessian", "lanczos", "hutchinson", "curvature_report", "default_loss"]


def default_loss(output):
    """HF models return ``.loss`` when the batch carries labels; a bare tensor is taken as the loss."""
    return output.loss if hasattr(output, "loss") else output


class AdapterHessian:
    """HVP operators for H_LoRA, H_drift and H_signal of ``model`` on ``batch`` (eval mode)."""

    def __init__(self, model, batch, loss_from_output: Callable = default_loss, adapter: str = "default"):
        self.layers = list(lora_modules(model, adapter))
        assert self.layers, "model has no PEFT LoRA layers"
        refuse_dora(dict(self.layers), adapter, "AdapterHessian")  # its drift is W = W₀ + s·B·A's
        self.params = [t for _, m in self.layers for t in (m.lora_A[adapter].weight, m.lora_B[adapter].weight)]
        self.scales = [float(m.scaling[adapter]) for _, m in self.layers]
        self.dim = sum(p.numel() for p in self.params)
        capture = TokenCapture(dict(self.layers), max_tokens=2**62).attach()  # every token: G must be exact
        capture.active = True
        was_training = model.training
        model.eval()  # dropout off: the Hessian of one deterministic function
        try:
            with _math_attention():  # the math SDPA kernel is twice differentiable on every device
                out = call_model(model, batch, labels=True)
                loss = loss_from_output(out)
                self.grads = torch.autograd.grad(loss, self.params, create_graph=True)
        finally:
            capture.detach()
            model.train(was_training)
        self.loss = loss.detach().item()
        self.rows = [capture.rows(name) for name, _ in self.layers]

    def _split(self, v: torch.Tensor) -> list[torch.Tensor]:
        out, i = [], 0
        for p in self.params:
            out.append(v[i : i + p.numel()].reshape(p.shape).to(p.dtype))
            i += p.numel()
        return out

    def lora(self, v: torch.Tensor) -> torch.Tensor:
        hv = torch.autograd.grad(self.grads, self.params, grad_outputs=self._split(v), retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]).to(v.dtype)

    def drift(self, v: torch.Tensor) -> torch.Tensor:
        parts = self._split(v)
        out = []
        with torch.no_grad():
            for k, (rows, s) in enumerate(zip(self.rows, self.scales)):
                d_a, d_b = parts[2 * k], parts[2 * k + 1]  # (r, d_in), (d_out, r)
                if rows is None:  # the layer did not run on this batch: no gradient, no drift
                    out += [torch.zeros_like(d_a).reshape(-1), torch.zeros_like(d_b).reshape(-1)]
                    continue
                x, g = rows  # (T, d_in), (T, d_out), float32 or wider
                d_a, d_b = d_a.to(x.dtype), d_b.to(x.dtype)
                out.append((s * (g @ d_b).T @ x).reshape(-1))  # s·δBᵀG: (r, d_in)
                out.append((s * g.T @ (x @ d_a.T)).reshape(-1))  # s·G·δAᵀ: (d_out, r)
        return torch.cat(out).to(v.dtype)

    def signal(self, v: torch.Tensor) -> torch.Tensor:
        return self.lora(v) - self.drift(v)

    def operator(self, part: str) -> Callable[[torch.Tensor], torch.Tensor]:
        assert part in ("lora", "signal", "drift"), f"unknown Hessian part {part!r}"
        return getattr(self, part)


def lanczos(matvec: Callable, dim: int, steps: int = 30, seed: int = 0, device=None, progress: str | None = None) -> np.ndarray:
    """Ascending Ritz values of a symmetric operator after ``steps`` Lanczos iterations.

    Full reorthogonalisation (Q stored in float64, or float32 above 10⁶ parameters to bound memory
    at steps × dim); the tridiagonal is solved in float64.
    Extreme Ritz values converge to the extreme eigenvalues first (Saad, Numerical Methods for
    Large Eigenvalue Problems, ch. 6); ``steps ≥ dim`` gives the whole spectrum exactly.
    """
    steps = min(steps, dim)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(dim, generator=gen, dtype=torch.float64).to(device)
    q /= q.norm()
    store = torch.float64 if dim <= 1_000_000 else torch.float32
    basis = [q.to(store)]
    alphas, betas = [], []
    for j in tqdm(range(steps), desc=progress, disable=progress is None, leave=False):
        w = matvec(basis[-1]).double()  # the operator casts to the parameters' dtype
        a = float(w @ basis[-1].double())
        alphas.append(a)
        for b in basis:  # full reorthogonalisation, two passes (Parlett: "twice is enough")
            w -= (w @ b.double()) * b.double()
        for b in basis:
            w -= (w @ b.double()) * b.double()
        beta = float(w.norm())
        # an invariant subspace: β negligible against the operator's scale seen so far (relative, so a
        # Hessian of tiny entries is not cut short; ≤ stops an all-zero operator)
        if j == steps - 1 or beta <= 1e-10 * max(map(abs, [*alphas, *betas, beta])):
            break
        betas.append(beta)
        basis.append((w / beta).to(store))
    t = np.diag(alphas) + np.diag(betas[: len(alphas) - 1], 1) + np.diag(betas[: len(alphas) - 1], -1)
    return np.linalg.eigvalsh(t)


def hutchinson(matvec: Callable, dim: int, samples: int = 10, seed: int = 0, device=None, progress: str | None = None) -> tuple[float, float]:
    """(estimate, standard error) of Tr H = E[zᵀHz], z Rademacher (Hutchinson 1990)."""
    gen = torch.Generator().manual_seed(seed)
    vals = []
    for _ in tqdm(range(samples), desc=progress, disable=progress is None, leave=False):
        z = (torch.randint(0, 2, (dim,), generator=gen) * 2 - 1).float().to(device)
        vals.append(float(z.double() @ matvec(z).double()))
    mean = sum(vals) / len(vals)
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1) if len(vals) > 1 else float("nan")
    return mean, math.sqrt(var / len(vals))


def curvature_report(op: AdapterHessian, steps: int = 20, samples: int = 10, seed: int = 0, progress: bool = True) -> dict:
    """λ_max, λ_min (Lanczos) and the trace (Hutchinson) of H_LoRA and H_signal."""
    device = op.params[0].device
    report = {"dim": op.dim, "loss": op.loss, "lanczos_steps": min(steps, op.dim), "hutchinson_samples": samples}
    for part in ("lora", "signal"):
        ritz = lanczos(op.operator(part), op.dim, steps, seed, device, f"lanczos H_{part}" if progress else None)
        tr, se = hutchinson(op.operator(part), op.dim, samples, seed, device, f"hutchinson H_{part}" if progress else None)
        report[part] = {"lambda_max": float(ritz[-1]), "lambda_min": float(ritz[0]), "trace": tr, "trace_stderr": se}
    return report


def _math_attention():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.MATH)
