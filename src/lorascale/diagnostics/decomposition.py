"""Signal/drift and feature-update math on LoRA factors: pure functions, no d_out×d_in matrices.

A LoRA layer's effective weight is W(θ) = W₀ + s·B·A with A: r×d_in, B: d_out×r and PEFT's
``scaling`` s (LoRA-α writes s = α/r, μA writes the multiplier α). For a step Δθ = (ΔA, ΔB):

* LoRA-α Prop. 1 (eq. 4, App. G.1 eqs. 18–21), exact because w(θ) is bilinear::

      W(θ+Δθ) − W(θ) = s(B·ΔA + ΔB·A)  +  s·ΔB·ΔA
                       └─ ΔW_signal ─┘     └ ΔW_drift ┘

* Norms from r×r Gram matrices (tr(XᵀY) = ⟨X, Y⟩_F, cyclic trace)::

      ‖U·V‖²_F = tr(UᵀU · V·Vᵀ)                                 (U: m×r, V: r×n)
      ‖ΔW_drift‖²_F  = s² tr(ΔBᵀΔB · ΔA·ΔAᵀ)
      ‖ΔW_signal‖²_F = s² [tr(BᵀB · ΔA·ΔAᵀ) + tr(ΔBᵀΔB · A·Aᵀ) + 2 tr(BᵀΔB · A·ΔAᵀ)]

* Inner products with the layer gradient G = ∂L/∂W = Σ_t g_t x_tᵀ (x_t the layer's input for token t,
  g_t = ∂L/∂y_t the gradient at its output, y_t = W x_t)::

      ⟨G, U·V⟩ = Σ_t (g_tᵀU)·(V x_t)        cost T·r·(d_in + d_out)
      ‖G‖²_F   = Σ_{t,t'} (g_t·g_t')(x_t·x_t')   cost T²·(d_in + d_out)

  The alignment of an update ΔW with the descent direction is cos(ΔW, −G) = −⟨G, ΔW⟩/(‖ΔW‖‖G‖).

* μA eq. (1), the feature update of a layer on inputs x (rows of X, N×d_in), Z_A = X·Aᵀ (N×r)::

      ΔZ_B = s·ΔZ_A·B_{t−1}ᵀ  +  s·Z_A^{t−1}·ΔBᵀ  +  s·ΔZ_A·ΔBᵀ
             └──── δ¹ ────┘     └───── δ² ────┘     └──── δ³ ───┘

  with ‖Z·Mᵀ‖²_F = Σ_n z_nᵀ(MᵀM)z_n, again through an r×r Gram.

Everything here uses only tensor methods (``@``, ``.T``, ``.sum()``), so it runs on torch tensors
and numpy arrays alike; the one import is the package's least-squares line for :func:`loglog_slope`.
"""

from __future__ import annotations

import math

__all__ = [
    "signal_drift_dense",
    "product_sq_norm",
    "signal_sq_norm",
    "drift_sq_norm",
    "grad_inner",
    "signal_grad_inner",
    "drift_grad_inner",
    "grad_sq_norm",
    "step_grad_inners",
    "cosine",
    "feature_update_sq_norms",
    "feature_terms_sq_norms",
    "prop3_signal_trace",
    "signal_trace",
    "spectrum_summary",
    "loglog_slope",
]


# --- LoRA-α Prop. 1 -------------------------------------------------------------------------
def signal_drift_dense(A, B, dA, dB, s: float):
    """The dense (d_out×d_in) signal and drift of Prop. 1, for tests and tiny layers only."""
    return s * (B @ dA + dB @ A), s * (dB @ dA)


def product_sq_norm(U, V) -> float:
    """‖U·V‖²_F = tr(UᵀU · V·Vᵀ) for U (m×r) and V (r×n), through r×r Grams."""
    return float(((U.T @ U) * (V @ V.T)).sum())  # tr(XY) = Σ X∘Yᵀ, and V·Vᵀ is symmetric


def signal_sq_norm(A, B, dA, dB, s: float) -> float:
    """‖ΔW_signal‖²_F = s²‖B·ΔA + ΔB·A‖²_F, expanded into r×r Gram traces (see module docs)."""
    cross = float(((B.T @ dB) * (dA @ A.T)).sum())  # tr(BᵀΔB · A·ΔAᵀ) = Σ (BᵀΔB)∘(ΔA·Aᵀ)
    return s * s * (product_sq_norm(B, dA) + product_sq_norm(dB, A) + 2.0 * cross)


def drift_sq_norm(dA, dB, s: float) -> float:
    """‖ΔW_drift‖²_F = s² tr(ΔBᵀΔB · ΔA·ΔAᵀ)."""
    return s * s * product_sq_norm(dB, dA)


# --- inner products with G = Σ_t g_t x_tᵀ ------------------------------------------------------
def grad_inner(g, x, U, V) -> float:
    """⟨Σ_t g_t x_tᵀ, U·V⟩ = Σ_t (g_tᵀU)(V x_t); g: (T, d_out), x: (T, d_in), U: d_out×r, V: r×d_in."""
    return float(((g @ U) * (x @ V.T)).sum())  # (T, r) ∘ (T, r)


def signal_grad_inner(g, x, A, B, dA, dB, s: float) -> float:
    """⟨G, ΔW_signal⟩ = s[⟨G, B·ΔA⟩ + ⟨G, ΔB·A⟩]."""
    return s * (grad_inner(g, x, B, dA) + grad_inner(g, x, dB, A))


def drift_grad_inner(g, x, dA, dB, s: float) -> float:
    """⟨G, ΔW_drift⟩ = s⟨G, ΔB·ΔA⟩ = ½Δθᵀ H_drift Δθ (LoRA-α eq. 32 has ⟨ΔW_drift, −g⟩ = −½Δθᵀ H_drift Δθ).

    H_drift is indefinite, so this has either sign; App. G.2's scalar counterexample (w = ab at
    a = b = 1, g = 1, Δθ = (−η, −η)) gives ⟨ΔW_drift, −g⟩ = −η²: the drift opposes descent.
    """
    return s * grad_inner(g, x, dB, dA)


def step_grad_inners(g, x, A, B, dA, dB, s: float) -> tuple[float, float]:
    """(⟨G, ΔW_signal⟩, ⟨G, ΔW_drift⟩) sharing the four T×r projections g·B, g·ΔB, x·Aᵀ, x·ΔAᵀ."""
    gb, gdb = g @ B, g @ dB  # (T, r)
    xa, xda = x @ A.T, x @ dA.T  # (T, r)
    signal = s * (float((gb * xda).sum()) + float((gdb * xa).sum()))
    return signal, s * float((gdb * xda).sum())


def grad_sq_norm(g, x) -> float:
    """‖Σ_t g_t x_tᵀ‖²_F = Σ_{t,t'} (g_t·g_t')(x_t·x_t'), from two T×T Grams."""
    return float(((g @ g.T) * (x @ x.T)).sum())


def cosine(inner: float, sq_norm_a: float, sq_norm_b: float) -> float:
    """⟨a, b⟩/(‖a‖‖b‖); NaN when either norm is zero (an undefined angle, not a zero one)."""
    denom = math.sqrt(max(sq_norm_a, 0.0) * max(sq_norm_b, 0.0))
    return inner / denom if denom > 0.0 else float("nan")


# --- μA eq. (1) -------------------------------------------------------------------------------
def feature_update_sq_norms(x, A_prev, B_prev, dA, dB, s: float) -> tuple[float, float, float, float]:
    """(‖δ¹‖², ‖δ²‖², ‖δ³‖², ‖Z_A^{t−1}‖²) summed over the rows of x (N×d_in), μA eq. (1).

    δ¹ = s·B_{t−1}ΔZ_A, δ² = s·ΔB·Z_A^{t−1}, δ³ = s·ΔB·ΔZ_A with Z_A = A·x per row; the input x is
    held fixed across the step, as in μA App. A (one trainable layer, fixed input Z).
    """
    return feature_terms_sq_norms(x @ A_prev.T, x @ dA.T, B_prev, dB, s)


def feature_terms_sq_norms(z, dz, B_prev, dB, s: float) -> tuple[float, float, float, float]:
    """:func:`feature_update_sq_norms` from Z_A^{t−1} = X·A_{t−1}ᵀ and ΔZ_A = X·ΔAᵀ (both N×r)."""
    gram_b = B_prev.T @ B_prev  # (r, r)
    gram_db = dB.T @ dB  # (r, r)
    d1 = s * s * float(((dz @ gram_b) * dz).sum())
    d2 = s * s * float(((z @ gram_db) * z).sum())
    d3 = s * s * float(((dz @ gram_db) * dz).sum())
    return d1, d2, d3, float((z * z).sum())


# --- LoRA-α Prop. 3 / Prop. 4 -----------------------------------------------------------------
def prop3_signal_trace(scale: float, rank: int, sigma_a2: float, trace_h: float) -> float:
    """E[Tr H_signal] at B = 0, A_ij ~ N(0, σ_A²): Prop. 3 (App. G.3 eq. 39).

    With W = W₀ + (α/r)BA the paper writes α²σ_A²/r · Tr(H_ℓ); in terms of s = α/r this is
    s²·r·σ_A²·Tr(H_ℓ), which is what we compute (E[AᵀA] = rσ_A² I, eq. 38).
    """
    return scale * scale * rank * sigma_a2 * trace_h


def signal_trace(h_block, A, B, s: float) -> float:
    """Tr(H_signal) = Tr(Jᵀ H_ℓ J) of one layer without forming J, from its weight-Hessian block.

    With row-major w = vec(W) (W_ij at i·d_in + j), J·Jᵀ = s²(I ⊗ AᵀA + BBᵀ ⊗ I), so
    Tr(H_ℓ JJᵀ) = s²[Tr(M·AᵀA) + Tr(N·BBᵀ)] with M_jj' = Σ_i H[(i,j),(i,j')] and
    N_ii' = Σ_j H[(i,j),(i',j)] (App. G.3 eqs. 36–38 before taking the expectation over A).
    """
    d_out, d_in = B.shape[0], A.shape[1]
    h4 = h_block.reshape(d_out, d_in, d_out, d_in)
    m = h4.diagonal(0, 0, 2).sum(-1)  # (d_in, d_in): Σ_i H[i, j, i, j']
    n = h4.diagonal(0, 1, 3).sum(-1)  # (d_out, d_out): Σ_j H[i, j, i', j]
    return s * s * (float((m * (A.T @ A)).sum()) + float((n * (B @ B.T)).sum()))


def spectrum_summary(eigs) -> dict[str, float]:
    """λ_max, λ_min, trace and the negative mass Σ|λ<0| / Σ|λ| (0 for a PSD matrix) of a spectrum."""
    vals = [float(v) for v in eigs]
    total = sum(abs(v) for v in vals)
    neg = sum(-v for v in vals if v < 0)
    return {
        "lambda_max": max(vals),
        "lambda_min": min(vals),
        "trace": sum(vals),
        "negative_mass": neg / total if total > 0 else 0.0,
    }


def loglog_slope(xs, ys) -> float:
    """Least-squares slope of log y against log x: the growth exponent k in y = Θ(x^k) (Prop. 4).

    The line is the package's one least-squares fit, :func:`lorascale.sweep.stats.ols` (numpy).
    """
    from ..sweep.stats import ols  # torch-free and light: numpy only

    return ols([math.log(float(x)) for x in xs], [math.log(float(y)) for y in ys])[0]
