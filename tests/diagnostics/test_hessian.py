"""Exact Hessians (torch.func) and matrix-free estimates (HVP Lanczos, Hutchinson) against each other."""

import math

import pytest
import torch

from lorascale import apply
from lorascale.adapters import lora_modules
from lorascale.diagnostics.decomposition import loglog_slope, signal_trace
from lorascale.diagnostics.hessian import LayerPoint, eigenvalues, exact_hessians, peft_layer_points, peft_weight_loss
from lorascale.diagnostics.spectral import AdapterHessian, curvature_report, hutchinson, lanczos
from lorascale.repro.mlp import MLPSetup, build_model, make_data, train, weight_loss

# Independent float64 autodiff computations of the same matrix differ by rounding only: entries are
# sums of ~10³ products, so 1e-10 of the largest entry leaves a wide margin for it, and any wrong
# term (a dropped cross block, a factor s) is O(1) of the entries.
F64 = 1e-10
SETUP = MLPSetup(d=6, n=20, depth=3, rank=2, steps=5)


@pytest.fixture(scope="module")
def trained_mlp():
    """A float64 PEFT MLP a few Adam steps from init, so B ≠ 0 and every Hessian block is live."""
    x, y = make_data(SETUP, 0, torch.float64)
    model = build_model(SETUP, alpha=4.0, seed=0, dtype=torch.float64)
    train(model, x, y, lr=0.05, steps=10)
    loss_w, points = weight_loss(model, x, y)
    return model, x, y, exact_hessians(loss_w, points)


def mse(y):
    return lambda out: ((out - y) ** 2).mean()


def test_prop1_hessian_identity_holds_exactly(trained_mlp):
    _, _, _, ex = trained_mlp
    scale = float(ex.h_lora.abs().max())
    torch.testing.assert_close(ex.h_lora, ex.h_signal + ex.h_drift, rtol=0, atol=F64 * scale)
    # H_drift is block off-diagonal (App. G.2 eq. 30), so it is traceless and indefinite
    assert abs(float(torch.trace(ex.h_drift))) < F64 * scale
    eig = eigenvalues(ex.h_drift)
    assert eig[0] < -1e-3 * scale and eig[-1] > 1e-3 * scale


def test_peft_functional_call_loss_gives_the_same_hessians(trained_mlp):
    model, x, y, ex = trained_mlp
    points = peft_layer_points(model)
    ex2 = exact_hessians(peft_weight_loss(model, x, mse(y), points), points)
    scale = float(ex.h_lora.abs().max())
    torch.testing.assert_close(ex2.h_lora, ex.h_lora, rtol=0, atol=F64 * scale)
    torch.testing.assert_close(ex2.h_weights, ex.h_weights, rtol=0, atol=F64 * float(ex.h_weights.abs().max()))


def test_signal_trace_closed_form_equals_exact_signal_hessian_trace(trained_mlp):
    model, x, y, _ = trained_mlp
    loss_w, points = weight_loss(model, x, y)
    p = points[1]
    ex = exact_hessians(loss_w, [p])
    assert signal_trace(ex.h_weights, p.A, p.B, p.scale) == pytest.approx(float(torch.trace(ex.h_signal)), rel=1e-10)


def test_hvps_equal_exact_hessian_columns(trained_mlp):
    model, x, y, ex = trained_mlp
    op = AdapterHessian(model, x, mse(y))
    assert op.dim == ex.h_lora.shape[0]
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for part, h in (("lora", ex.h_lora), ("drift", ex.h_drift), ("signal", ex.h_signal)):
        want = h @ v
        torch.testing.assert_close(op.operator(part)(v), want, rtol=0, atol=1e-9 * float(want.abs().max()), msg=part)


def test_lanczos_extremes_and_hutchinson_trace_agree_with_exact_spectra(trained_mlp):
    model, x, y, ex = trained_mlp
    op = AdapterHessian(model, x, mse(y))
    spectra = ex.spectra()
    for part in ("lora", "signal"):
        ritz = lanczos(op.operator(part), op.dim, steps=40)
        exact = spectra[part]
        radius = max(abs(exact[0]), abs(exact[-1]))
        # 40 fully reorthogonalised steps on a 72-dim operator: the extreme Ritz values have converged
        # to rounding (Kaniel–Paige bounds); 1e-8 of the spectral radius is far above float64 noise
        assert ritz[-1] == pytest.approx(exact[-1], abs=1e-8 * radius), part
        assert ritz[0] == pytest.approx(exact[0], abs=1e-8 * radius), part
        h = getattr(ex, f"h_{part}")
        # Rademacher Hutchinson: Var(zᵀHz) = 2(‖H‖²_F − Σ H_ii²); 4 standard deviations of the mean
        # of 100 samples (a fixed seed makes it deterministic; 4σ fails by chance with p ≈ 6e-5)
        sd = math.sqrt(2 * (float((h**2).sum()) - float((torch.diag(h) ** 2).sum())) / 100)
        assert sd < 0.5 * abs(float(torch.trace(h))), "the 4σ band must exclude 0 for the test to mean anything"
        est, _ = hutchinson(op.operator(part), op.dim, samples=100, seed=1)
        assert est == pytest.approx(float(torch.trace(h)), abs=4 * sd), part


def test_curvature_report_has_both_parts(trained_mlp):
    model, x, y, ex = trained_mlp
    rep = curvature_report(AdapterHessian(model, x, mse(y)), steps=48, samples=4, progress=False)
    assert rep["dim"] == ex.h_lora.shape[0] == 72  # 3 layers × r(d_in + d_out) = 3·2·12
    assert rep["lanczos_steps"] == 48
    # 48 float64 Lanczos steps on a 72-dim operator (reorthogonalised): the extreme Ritz values match the dense
    # eigenvalues to rounding at the top (1e-8) and to 1e-6 at the signal part's bottom, whose gap is smaller
    assert rep["lora"]["lambda_max"] == pytest.approx(float(eigenvalues(ex.h_lora)[-1]), rel=1e-8)
    assert rep["signal"]["lambda_min"] == pytest.approx(float(eigenvalues(ex.h_signal)[0]), rel=1e-6)


def test_prop4_growth_in_alpha_is_exact_at_init():
    """At B = 0, H_ℓ and g do not depend on α, J ∝ α and ∇²w ∝ α: slopes exactly 2 and 1."""
    x, y = make_data(SETUP, 1, torch.float64)
    alphas, sig, drift = [1, 2, 4, 8], [], []
    for a in alphas:
        model = build_model(SETUP, alpha=a, seed=1, dtype=torch.float64)
        loss_w, points = weight_loss(model, x, y)
        ex = exact_hessians(loss_w, [points[1]])
        sig.append(eigenvalues(ex.h_signal)[-1])
        drift.append(-eigenvalues(ex.h_drift)[0])
    assert loglog_slope(alphas, sig) == pytest.approx(2.0, abs=1e-9)
    assert loglog_slope(alphas, drift) == pytest.approx(1.0, abs=1e-9)


def test_exact_drift_hessian_of_the_scalar_counterexample():
    """App. G.2: w = ab, θ = (a, b) = (1, 1), g = 1: H_drift = [[0, 1], [1, 0]] and
    ⟨ΔW_drift, −g⟩ = −½Δθᵀ H_drift Δθ = −η² for the GD step Δθ = (−η, −η)."""
    one = torch.ones(1, 1, dtype=torch.float64)
    point = LayerPoint("w", torch.zeros(1, 1, dtype=torch.float64), one, one, 1.0)
    ex = exact_hessians(lambda ws: ws["w"].sum(), [point])  # ℓ(w) = g·w with g = 1
    torch.testing.assert_close(ex.h_drift, torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(ex.h_signal, torch.zeros(2, 2, dtype=torch.float64))  # a linear loss: H_ℓ = 0
    eta = 0.3
    step = torch.tensor([-eta, -eta], dtype=torch.float64)
    assert float(-0.5 * step @ ex.h_drift @ step) == pytest.approx(-(eta**2), rel=1e-15)


def test_hvps_on_a_real_llama_adapter(tiny_llama):
    """H_drift·v from tokens equals s(δBᵀG, G·δAᵀ) with the dense G; H_LoRA·v equals a central
    difference of gradients. tiny-llama's RMSNorm computes in float32 even for a float64 model, so
    gradients carry ~1e-7 relative noise: with ε = 1e-3 the difference quotient is good to ~1e-4
    (noise/ε), and we allow 1e-3."""
    model = apply(tiny_llama.model, rank=2, rule="alpha-r", init="A", targets=["v_proj", "down_proj"], seed=0).double()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
    mods = dict(lora_modules(model))
    for m in mods.values():
        m.base_layer.weight.requires_grad_(True)
    ids = torch.randint(3, 250, (2, 12), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "labels": ids}
    op = AdapterHessian(model, batch)
    model.eval()
    model(**batch).loss.backward()  # dense G = ∂L/∂W₀ (the same batch, eval mode)
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    i, want = 0, []
    for m in mods.values():
        a, b = m.lora_A["default"].weight, m.lora_B["default"].weight
        da, db = v[i : i + a.numel()].view_as(a), v[i + a.numel() : i + a.numel() + b.numel()].view_as(b)
        i += a.numel() + b.numel()
        G, s = m.base_layer.weight.grad, float(m.scaling["default"])
        want += [(s * db.T @ G).reshape(-1), (s * G @ da.T).reshape(-1)]
    want = torch.cat(want)
    torch.testing.assert_close(op.drift(v), want, rtol=0, atol=1e-9 * float(want.abs().max()))

    hv = op.lora(v)  # before the finite differences move the parameters under op's saved graph
    params = op.params
    eps = 1e-3

    def grad_at(shift):
        with torch.no_grad():
            for p, d in zip(params, op._split(shift)):
                p.add_(d)
        g = torch.autograd.grad(model(**batch).loss, params)
        with torch.no_grad():
            for p, d in zip(params, op._split(shift)):
                p.sub_(d)
        return torch.cat([t.reshape(-1) for t in g])

    fd = (grad_at(eps * v) - grad_at(-eps * v)) / (2 * eps)
    assert float((hv - fd).norm() / fd.norm()) < 1e-3


@pytest.mark.slow
def test_lanczos_agrees_with_torch_func_exact_on_tiny_llama(tiny_llama):
    """~40 s on one core: torch.func through HF Llama's Python forward is slow."""
    model = apply(tiny_llama.model, rank=2, rule="alpha-r", init="A", targets=["v_proj"], seed=0).double()
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
    ids = torch.randint(3, 250, (2, 8), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "labels": ids}
    model.eval()
    points = peft_layer_points(model)
    ex = exact_hessians(peft_weight_loss(model, batch, lambda o: o.loss, points), points)
    op = AdapterHessian(model, batch)
    for part in ("lora", "signal"):
        exact = eigenvalues(getattr(ex, f"h_{part}"))
        ritz = lanczos(op.operator(part), op.dim, steps=60)
        radius = max(abs(exact[0]), abs(exact[-1]))
        # RMSNorm's float32 arithmetic bounds agreement at ~1e-6 relative; 1e-4 of the radius
        assert ritz[-1] == pytest.approx(exact[-1], abs=1e-4 * radius)
        assert ritz[0] == pytest.approx(exact[0], abs=1e-4 * radius)


@pytest.mark.parametrize("d_out", [4, 3])  # square (was silently transposed) and rectangular (was a shape error)
def test_exact_hessians_of_a_conv1d_layer_stored_in_by_out(d_out):
    """GPT-2's Conv1D keeps W₀ as d_in×d_out (PEFT fan_in_fan_out): the layer's point is W₀ᵀ + s·B·A and
    peft_weight_loss writes W back transposed, so ℓ(w) at the point is the model's loss and H_LoRA is the
    Hessian of the PEFT model's loss in (A, B), computed here by autograd through PEFT's own forward."""
    from peft import LoraConfig, get_peft_model
    from torch.func import functional_call
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = Conv1D(d_out, 4)  # nf = d_out, nx = d_in

        def forward(self, x):
            return torch.tanh(self.c(x))

    cfg = LoraConfig(r=2, lora_alpha=2, target_modules=["c"], fan_in_fan_out=True, init_lora_weights=False)
    model = get_peft_model(Net().double(), cfg).double()
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, d_out, dtype=torch.float64)
    loss = mse(y)
    (point,) = peft_layer_points(model)
    assert point.stored_transposed and point.weight.shape == (d_out, 4)
    loss_w = peft_weight_loss(model, x, loss, [point])
    with torch.no_grad():
        assert float(loss_w({point.name: point.weight})) == pytest.approx(float(loss(model(x))), rel=F64)
    ex = exact_hessians(loss_w, [point])
    (layer,) = [m for _, m in lora_modules(model)]
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight

    def loss_theta(theta):
        params = {f"{point.name}.lora_A.default.weight": theta[: a.numel()].reshape(a.shape),
                  f"{point.name}.lora_B.default.weight": theta[a.numel():].reshape(b.shape)}
        return loss(functional_call(model, params, (x,)))

    theta = torch.cat([a.detach().reshape(-1), b.detach().reshape(-1)])
    truth = torch.autograd.functional.hessian(loss_theta, theta)
    torch.testing.assert_close(ex.h_lora, truth, rtol=0, atol=F64 * float(truth.abs().max()))


def test_lanczos_is_scale_free_and_stops_on_a_zero_operator():
    """Its stopping test is relative to the operator: a Hessian with entries ~1e-11 gets the same Ritz
    values, scaled (it used to stop after one step with the Rayleigh quotient of the start vector)."""
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(30, 30, generator=gen, dtype=torch.float64)
    h = (m + m.T) / 2
    exact = torch.linalg.eigvalsh(h).numpy()
    for scale in (1.0, 1e-11):
        ritz = lanczos(lambda v: (scale * h) @ v, 30, steps=30) / scale
        assert len(ritz) == 30
        assert ritz == pytest.approx(exact, abs=1e-8 * abs(exact).max())  # 30 steps of 30: the whole spectrum
    assert list(lanczos(lambda v: 0 * v, 5, steps=5)) == [0.0]  # one step: the zero operator's only value


def test_the_exact_and_matrix_free_hessians_refuse_dora(tiny_llama):
    """Both differentiate W = W₀ + s·B·A, which DoRA's per-column rescaling is not."""
    from peft import LoraConfig, get_peft_model

    from lorascale.errors import ConfigError

    model = get_peft_model(tiny_llama.model, LoraConfig(r=2, target_modules=["q_proj"], use_dora=True))
    batch = {"input_ids": torch.randint(0, 64, (1, 8))}
    for build in (lambda: peft_layer_points(model), lambda: AdapterHessian(model, batch)):
        with pytest.raises(ConfigError) as e:
            build()
        assert e.value.field == "method" and "DoRA" in e.value.message
