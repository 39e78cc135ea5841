"""``lorascale repro mlp-spectra``: LoRA-α App. E / Fig. 8, exact Hessian spectra of the d = 32 MLP.

(a) Compression (Prop. 3): at init (B = 0) the signal Hessian of a layer, H_signal = Jᵀ H_ℓ J, is
    a compressed copy of that layer's weight Hessian H_ℓ; Tr H_signal ≈ α²σ_A²/r · Tr H_ℓ.
(b) Trace over ranks: measured Tr H_signal of the whole network (all 5 layers; the trace needs
    only H_ℓ's diagonal blocks, :func:`~lorascale.diagnostics.decomposition.signal_trace`), averaged
    over fresh draws A ~ N(0, 1/d) at B = 0, against Prop. 3's prediction, α = α₀ at every rank.
(c) Indefiniteness and purification: after ``steps`` Adam steps at η₀ for each α, the exact H_LoRA
    of one layer (default: the middle one; a layer is a 1024×1024 problem at d = 32, r = 16, while
    the whole network's 5120×5120 eigendecomposition takes ~20 s per matrix on one core) has
    negative eigenvalues from H_drift; as α grows its spectrum approaches H_signal's.
(d) Growth in α (Prop. 4): λ_max[H_signal] = Θ(α²), |λ_min[H_drift]| = Θ(α), fitted in log-log
    over the α grid at the trained state. At init both are exact by construction (H_ℓ and g do not
    depend on α when B = 0, so the slopes are 2 and 1 identically); after training they need not be.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..diagnostics.decomposition import loglog_slope, prop3_signal_trace, signal_trace, spectrum_summary
from ..diagnostics.hessian import eigenvalues, exact_hessians, weight_hessian
from .mlp import MLPSetup, build_model, make_data, single_thread, train, weight_loss

__all__ = ["RANKS", "ALPHAS", "SpectraResult", "run_spectra"]

RANKS = (1, 2, 4, 8, 16, 32)
ALPHAS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DTYPE = torch.float64  # exact spectra: rounding of float32 would blur the small eigenvalues
N_SPECTRUM = 200  # leading eigenvalues kept per spectrum for the figures


@dataclass
class SpectraResult:
    setup: MLPSetup
    seeds: list[int]
    layer: int
    compression: list[dict] = field(default_factory=list)  # per seed, at init and α₀
    traces: list[dict] = field(default_factory=list)  # per rank: predicted/measured per seed
    alphas: list[dict] = field(default_factory=list)  # per α: spectrum summaries per seed
    spectra: dict = field(default_factory=dict)  # figures: leading eigenvalues (seed 0)

    def trace_pairs(self) -> list[dict]:
        """Per rank: mean predicted and measured Tr H_signal over seeds, and their ratio."""
        out = []
        for row in self.traces:
            p, m = statistics.fmean(row["predicted"]), statistics.fmean(row["measured"])
            out.append({"rank": row["rank"], "predicted": p, "measured": m, "ratio": m / p})
        return out

    def growth(self) -> dict:
        """Slopes of log λ_max[H_signal] and log |λ_min[H_drift]| against log α (seed means)."""
        rows = self.purification()
        a = [row["alpha"] for row in rows]
        return {
            "signal_lambda_max": loglog_slope(a, [row["signal_lambda_max"] for row in rows]),
            "drift_abs_lambda_min": loglog_slope(a, [row["drift_abs_lambda_min"] for row in rows]),
            "lora_lambda_max": loglog_slope(a, [row["lora_lambda_max"] for row in rows]),
        }

    def purification(self) -> list[dict]:
        """Per α, seed means (over non-diverged seeds) of H_LoRA's negative mass, λ_min/λ_max, the
        extremes of each part and λ_max[H_LoRA]/λ_max[H_signal]; α values where every seed diverged drop out."""
        rows = []
        for row in self.alphas:
            s = [x for x in row["seeds"] if not x["diverged"]]
            if not s:
                continue
            rows.append({
                "alpha": row["alpha"],
                "diverged_seeds": len(row["seeds"]) - len(s),
                "lora_negative_mass": statistics.fmean(x["lora"]["negative_mass"] for x in s),
                "lora_min_over_max": statistics.fmean(x["lora"]["lambda_min"] / x["lora"]["lambda_max"] for x in s),
                "lora_over_signal_lambda_max": statistics.fmean(x["lora"]["lambda_max"] / x["signal"]["lambda_max"] for x in s),
                "signal_lambda_max": statistics.fmean(x["signal"]["lambda_max"] for x in s),
                "drift_abs_lambda_min": statistics.fmean(-x["drift"]["lambda_min"] for x in s),
                "lora_lambda_max": statistics.fmean(x["lora"]["lambda_max"] for x in s),
            })
        return rows

    def to_dict(self) -> dict:
        return {
            "setup": self.setup.model_dump(), "seeds": self.seeds, "layer": self.layer,
            "compression": self.compression, "trace_pairs": self.trace_pairs(),
            "growth_exponents": self.growth(), "purification": self.purification(),
        }


def run_spectra(
    setup: MLPSetup = MLPSetup(d=32),
    seeds: list[int] = (0, 1, 2),
    ranks=RANKS,
    alphas=ALPHAS,
    layer: int | None = None,
    a_draws: int = 16,
    progress: bool = True,
) -> SpectraResult:
    """Fig. 8 (a)–(d) over ``seeds`` (data, W₀ and the trained runs); ``a_draws`` draws of A per
    seed and rank average Tr H_signal in (b), since Prop. 3 is a statement about E over A."""
    with single_thread():
        return _run_spectra(setup, list(seeds), ranks, alphas, layer, a_draws, progress)


def _run_spectra(setup, seeds, ranks, alphas, layer, a_draws, progress) -> SpectraResult:
    layer = setup.depth // 2 if layer is None else layer
    assert 0 <= layer < setup.depth, f"layer {layer} outside 0..{setup.depth - 1}"
    ranks = [r for r in ranks if r <= setup.d]
    result = SpectraResult(setup, seeds, layer)
    sigma_a2 = 1.0 / setup.d  # A ~ N(0, 1/d)
    bar = tqdm(total=len(seeds) * (1 + len(alphas)), desc="mlp-spectra", disable=not progress)
    per_rank = {r: {"rank": r, "predicted": [], "measured": []} for r in ranks}
    for seed in seeds:
        x, y = make_data(setup, seed, DTYPE)
        # (a) + (b): at init W = W₀, so H_ℓ's diagonal blocks serve every rank and every draw of A.
        model = build_model(setup, setup.alpha0, seed, DTYPE)
        loss_w, points = weight_loss(model, x, y)
        blocks = [weight_hessian(loss_w, p.name, p.weight) for p in points]
        tr_h = sum(float(b.trace()) for b in blocks)
        gen = torch.Generator().manual_seed(30_000 + seed)
        for r in ranks:
            s_r = setup.alpha0 / r  # W = W₀ + (α/r)·B·A
            draws = []
            for _ in range(a_draws):  # E over A ~ N(0, σ_A²), B = 0: Prop. 3's expectation
                draws.append(sum(
                    signal_trace(b, torch.randn(r, setup.d, generator=gen, dtype=DTYPE) * sigma_a2**0.5,
                                 torch.zeros(setup.d, r, dtype=DTYPE), s_r)
                    for b in blocks
                ))
            per_rank[r]["measured"].append(statistics.fmean(draws))
            per_rank[r]["predicted"].append(prop3_signal_trace(s_r, r, sigma_a2, tr_h))
        ex = exact_hessians(loss_w, [points[layer]])
        eig_l, eig_s = eigenvalues(ex.h_weights), eigenvalues(ex.h_signal)  # one layer's H_ℓ vs its H_signal
        p0 = points[layer]
        result.compression.append({
            "seed": seed,
            "weights": spectrum_summary(eig_l),
            "signal": spectrum_summary(eig_s),
            "predicted_trace_ratio": prop3_signal_trace(p0.scale, setup.rank, sigma_a2, 1.0),
        })
        if seed == seeds[0]:
            result.spectra["weights"] = eig_l[::-1][:N_SPECTRUM].tolist()
            result.spectra["signal"] = eig_s[::-1][:N_SPECTRUM].tolist()
        bar.update(1)
        # (c) + (d): train each α at η₀, then the exact Hessians of one layer.
        for a in alphas:
            row = next((r for r in result.alphas if r["alpha"] == a), None)
            if row is None:
                row = {"alpha": a, "seeds": []}
                result.alphas.append(row)
            m_a = build_model(setup, setup.alpha0 * a, seed, DTYPE)
            trace = train(m_a, x, y, setup.lr0, setup.steps)
            if trace.diverged:  # recorded, not plotted: a diverged point has no Hessian
                row["seeds"].append({"seed": seed, "final_loss": trace.final_loss, "diverged": True})
                bar.update(1)
                continue
            lw, pts = weight_loss(m_a, x, y)
            ex = exact_hessians(lw, [pts[layer]])
            sp = ex.spectra(("lora", "signal", "drift"))
            row["seeds"].append({
                "seed": seed, "final_loss": trace.final_loss, "diverged": trace.diverged,
                **{k: spectrum_summary(sp[k]) for k in ("lora", "signal", "drift")},
            })
            if seed == seeds[0]:
                result.spectra.setdefault("lora", {})[a] = sp["lora"].tolist()
                result.spectra.setdefault("signal_trained", {})[a] = sp["signal"].tolist()
            bar.update(1)
    bar.close()
    result.traces = [per_rank[r] for r in ranks]
    return result
