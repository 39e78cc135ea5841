"""The pure signal/drift and feature-update math against dense reference computations."""

import math

import pytest
import torch

from lorascale.diagnostics.decomposition import (
    cosine,
    drift_grad_inner,
    drift_sq_norm,
    feature_update_sq_norms,
    grad_inner,
    grad_sq_norm,
    loglog_slope,
    product_sq_norm,
    prop3_signal_trace,
    signal_drift_dense,
    signal_grad_inner,
    signal_sq_norm,
    signal_trace,
    spectrum_summary,
    step_grad_inners,
)

# float64 sums of O(r·d) products of O(1) numbers: rounding is ~1e-16·√(r·d) relative; 1e-12 leaves
# four orders of magnitude for it while any algebra slip (a missing cross term) is O(1).
REL = 1e-12


def factors(d_out=7, d_in=5, r=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return rnd(r, d_in), rnd(d_out, r), rnd(r, d_in) * 0.3, rnd(d_out, r) * 0.3


def test_signal_plus_drift_is_the_exact_weight_change():
    """Prop. 1: w(θ) = W₀ + sBA is bilinear, so its Taylor series stops at second order — the
    identity is exact, and only float64 rounding separates the two sides."""
    A, B, dA, dB = factors()
    s = 0.37
    W0 = torch.randn(7, 5, dtype=torch.float64)
    before = W0 + s * B @ A
    after = W0 + s * (B + dB) @ (A + dA)
    signal, drift = signal_drift_dense(A, B, dA, dB, s)
    torch.testing.assert_close(signal + drift, after - before, rtol=0, atol=REL * float((after - before).abs().max()))
    # and neither part alone is the change: the drift is a real, non-negligible term here
    assert float((after - before - signal).norm()) > 0.01 * float((after - before).norm())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gram_identity_norms_equal_dense_norms(seed):
    A, B, dA, dB = factors(seed=seed)
    s = 1.7
    signal, drift = signal_drift_dense(A, B, dA, dB, s)
    assert signal_sq_norm(A, B, dA, dB, s) == pytest.approx(float(signal.pow(2).sum()), rel=REL)
    assert drift_sq_norm(dA, dB, s) == pytest.approx(float(drift.pow(2).sum()), rel=REL)
    assert product_sq_norm(B, A) == pytest.approx(float((B @ A).pow(2).sum()), rel=REL)


def test_token_inner_products_equal_dense_gradient_products():
    """⟨Σ_t g_t x_tᵀ, ΔW⟩ and ‖G‖² from token rows equal the dense d_out×d_in computation."""
    A, B, dA, dB = factors()
    g = torch.randn(11, 7, dtype=torch.float64)  # 11 tokens, d_out = 7
    x = torch.randn(11, 5, dtype=torch.float64)
    G = g.T @ x  # dense ∂L/∂W
    s = 0.5
    signal, drift = signal_drift_dense(A, B, dA, dB, s)
    assert signal_grad_inner(g, x, A, B, dA, dB, s) == pytest.approx(float((G * signal).sum()), rel=REL)
    assert drift_grad_inner(g, x, dA, dB, s) == pytest.approx(float((G * drift).sum()), rel=REL)
    assert step_grad_inners(g, x, A, B, dA, dB, s) == pytest.approx([float((G * signal).sum()), float((G * drift).sum())], rel=REL)
    assert grad_inner(g, x, B, A) == pytest.approx(float((G * (B @ A)).sum()), rel=REL)
    assert grad_sq_norm(g, x) == pytest.approx(float(G.pow(2).sum()), rel=REL)


def test_drift_inner_product_reproduces_the_scalar_counterexample():
    """LoRA-α App. G.2 eq. (33): w = ab at a = b = 1, g = 1, GD step Δθ = (−η, −η) gives
    ⟨ΔW_drift, −g⟩ = −η²: the drift points uphill."""
    for eta in (0.1, 0.5, 2.0):
        one = torch.ones(1, 1, dtype=torch.float64)
        x, g = one, one  # G = g·xᵀ = 1, the task gradient of the scalar weight
        d = -eta * one  # Δa = −η·∂ℓ/∂a = −η·g·b = −η, likewise Δb
        assert -drift_grad_inner(g, x, d, d, 1.0) == pytest.approx(-(eta**2), rel=1e-15)
        # the signal, by contrast, descends: ⟨ΔW_signal, −g⟩ = 2η ≥ 0 (Prop. 2(i))
        assert -signal_grad_inner(g, x, one, one, d, d, 1.0) == pytest.approx(2 * eta, rel=1e-15)


def test_feature_update_terms_sum_to_the_feature_change_and_match_dense_norms():
    """μA eq. (1): δ¹ + δ² + δ³ = s·B_t·A_t·x − s·B_{t−1}·A_{t−1}·x for fixed inputs x."""
    A, B, dA, dB = factors()
    x = torch.randn(13, 5, dtype=torch.float64)  # 13 probe rows, d_in = 5
    s = 0.8
    z, dz = x @ A.T, x @ dA.T
    d1, d2, d3 = s * dz @ B.T, s * z @ dB.T, s * dz @ dB.T
    change = s * x @ ((B + dB) @ (A + dA)).T - s * x @ (B @ A).T
    torch.testing.assert_close(d1 + d2 + d3, change, rtol=0, atol=REL * float(change.abs().max()))
    got = feature_update_sq_norms(x, A, B, dA, dB, s)
    want = [float(t.pow(2).sum()) for t in (d1, d2, d3, z)]
    assert got == pytest.approx(want, rel=REL)


def test_signal_trace_closed_form_matches_explicit_jacobian():
    """Tr(Jᵀ H J) with J built entry by entry (W_ij = s Σ_a B_ia A_aj, row-major vec)."""
    A, B, _, _ = factors(d_out=4, d_in=3, r=2)
    s = 0.6
    D = 12
    M = torch.randn(D, D, dtype=torch.float64)
    H = M @ M.T
    J = torch.zeros(D, A.numel() + B.numel(), dtype=torch.float64)
    for i in range(4):
        for j in range(3):
            for a in range(2):
                J[i * 3 + j, a * 3 + j] = s * B[i, a]  # ∂W_ij/∂A_aj
                J[i * 3 + j, A.numel() + i * 2 + a] = s * A[a, j]  # ∂W_ij/∂B_ia
    assert signal_trace(H, A, B, s) == pytest.approx(float(torch.trace(J.T @ H @ J)), rel=REL)


def test_prop3_trace_holds_on_random_quadratics_on_average():
    """Prop. 3: E_A[Tr H_signal] = s²·r·σ²·Tr H at B = 0 (s = α/r). One draw of A scatters around
    the expectation (relative sd ≈ 0.2 here), so we average 4000 draws; their standard error is
    measured below (≈0.3%), and 3% is ~10 of them — a wrong power of r or σ is off by ≥ 2×."""
    g = torch.Generator().manual_seed(0)
    d_out, d_in, r, sigma2, s = 6, 8, 4, 0.25, 0.3
    D = d_out * d_in
    M = torch.randn(D, D, generator=g, dtype=torch.float64)
    H = M @ M.T / D  # a random PSD quadratic loss ½wᵀHw
    zeros = torch.zeros(d_out, r, dtype=torch.float64)
    draws = torch.tensor([
        signal_trace(H, torch.randn(r, d_in, generator=g, dtype=torch.float64) * math.sqrt(sigma2), zeros, s) for _ in range(4000)
    ])
    predicted = prop3_signal_trace(s, r, sigma2, float(torch.trace(H)))
    stderr = float(draws.std() / math.sqrt(len(draws)))
    assert stderr < 0.005 * predicted, "too few draws to test at 3%"
    assert float(draws.mean()) == pytest.approx(predicted, rel=0.03)


def test_cosine_loglog_and_spectrum_summary():
    assert cosine(-2.0, 4.0, 1.0) == -1.0
    assert math.isnan(cosine(1.0, 0.0, 1.0))  # an undefined angle is not reported as 0
    xs = [1, 2, 4, 8, 16]
    assert loglog_slope(xs, [3 * x**2 for x in xs]) == pytest.approx(2.0, rel=1e-12)
    assert loglog_slope(xs, [0.5 * x for x in xs]) == pytest.approx(1.0, rel=1e-12)
    s = spectrum_summary([-1.0, 0.0, 3.0])
    assert s == {"lambda_max": 3.0, "lambda_min": -1.0, "trace": 2.0, "negative_mass": 0.25}
