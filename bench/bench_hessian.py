"""Exact and matrix-free Hessian timings, as numbers measured in one run.

    python bench/bench_hessian.py                         # d = 32 MLP exact + tiny-llama Lanczos
    python bench/bench_hessian.py --model smollm2-135m    # top Lanczos eigenvalue of SmolLM2's adapters

1. LoRA-α App. E's d = 32, 5-layer MLP (r = 16): the exact per-layer H_LoRA, H_ℓ, J, H_drift
   (torch.func, float64) and their eigenvalues — the unit of work of ``repro mlp-spectra``; with
   ``--full`` also the whole network's 5120×5120 H_LoRA and its eigendecomposition.
2. An adapter of ``--model`` on a random batch: one H_LoRA·v product (double backward) against one
   forward+backward, and ``--steps`` Lanczos iterations for the top eigenvalue.
One intra-op thread (``torch.set_num_threads(1)``); times are wall-clock seconds.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

from lorascale import apply  # noqa: E402
from lorascale.diagnostics.hessian import eigenvalues, exact_hessians  # noqa: E402
from lorascale.diagnostics.spectral import AdapterHessian, lanczos  # noqa: E402
from lorascale.models import Task, load_model  # noqa: E402
from lorascale.repro.mlp import MLPSetup, build_model, make_data, train, weight_loss  # noqa: E402


def clock(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_mlp(full: bool) -> None:
    setup = MLPSetup(d=32)
    x, y = make_data(setup, 0, torch.float64)
    model = build_model(setup, alpha=16.0, seed=0, dtype=torch.float64)
    train(model, x, y, setup.lr0, 20)
    loss_w, points = weight_loss(model, x, y)
    ex, t_exact = clock(lambda: exact_hessians(loss_w, [points[2]]))
    _, t_eig = clock(lambda: ex.spectra())
    p = ex.h_lora.shape[0]
    print(f"d=32 MLP, one layer (p = D = {p}): exact H_LoRA, H_ℓ, J, H_drift {t_exact:.2f} s; 4 eigendecompositions {t_eig:.2f} s")
    if full:
        ex, t_full = clock(lambda: exact_hessians(loss_w, points, chunk_size=512))
        _, t_eig = clock(lambda: eigenvalues(ex.h_lora))
        print(f"d=32 MLP, all 5 layers (p = {ex.h_lora.shape[0]}): exact Hessians {t_full:.1f} s; eigvalsh(H_LoRA) {t_eig:.1f} s")


def bench_lanczos(name: str, batch: int, seq: int, steps: int) -> None:
    loaded = load_model(name, num_labels=2, quiet=True)
    model = apply(loaded.model, rank=16, rule="lora-alpha", init="A")
    with torch.no_grad():  # a trained-looking adapter: B ≠ 0, so every Hessian block is live
        for n, prm in model.named_parameters():
            if "lora_B" in n:
                prm.normal_(0, 1e-3, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, loaded.model.config.vocab_size, (batch, seq), generator=g)
    labels = torch.randint(0, 2, (batch,), generator=g) if loaded.task is Task.CLASSIFICATION else ids
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        model(**data).loss.backward()

    fwd_bwd()
    _, t_fb = clock(fwd_bwd)
    op, t_setup = clock(lambda: AdapterHessian(model, data))
    v = torch.randn(op.dim, generator=g)
    _, t_hvp = clock(lambda: op.lora(v))
    _, t_drift = clock(lambda: op.drift(v))
    ritz, t_lanczos = clock(lambda: lanczos(op.lora, op.dim, steps=steps, progress="lanczos"))
    print(f"{name} adapter ({op.dim:,} parameters), batch {batch}×{seq}: forward+backward {t_fb:.3f} s; "
          f"graph for HVPs {t_setup:.3f} s; H_LoRA·v {t_hvp:.3f} s ({t_hvp / t_fb:.1f}× a forward+backward); "
          f"H_drift·v {t_drift:.3f} s")
    print(f"  top eigenvalue after {steps} Lanczos steps: {ritz[-1]:.5g} in {t_lanczos:.2f} s "
          f"(bottom Ritz value {ritz[0]:.4g})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-llama")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="Lanczos iterations")
    ap.add_argument("--full", action="store_true", help="also the whole d = 32 network (≈ a minute)")
    ap.add_argument("--skip-mlp", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not args.skip_mlp:
        bench_mlp(args.full)
    bench_lanczos(args.model, args.batch, args.seq, args.steps)


if __name__ == "__main__":
    main()
