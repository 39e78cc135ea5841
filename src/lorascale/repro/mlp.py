"""LoRA-α Appendix E's controlled setup: a SiLU MLP fitting a low-rank-ish linear map, LoRA everywhere.

Setup (App. E, "Setups"): a 5-layer MLP with SiLU between its d×d linear layers (no biases: the
paper mentions none), n = 100 inputs X ~ N(0, I_d), targets Y = X·W_trueᵀ where W_true = U·diag(1/i)·Vᵀ
with random orthogonal U, V; pre-trained weights W₀ and adapter A ~ N(0, 1/d), B = 0 (μA's Init[A]),
rank r = 16 on every linear layer, W = W₀ + (α/r)·B·A (PEFT ``lora_alpha`` = α), Adam on the MSE,
full batch, 100 steps. One seed fixes the data, W₀ and A, so the configurations compared under a
seed share them.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from pydantic import model_validator

from ..errors import ConfigError
from ..rules import Init
from ..schema import PositiveFloat, PositiveInt, Settings, setting
from ..train.callbacks import CallbackList, TrainContext
from ..train.monitor import DivergenceGuard

__all__ = ["MLPSetup", "SiLUMLP", "make_data", "build_model", "train", "RunTrace", "weight_loss", "single_thread"]


class MLPSetup(Settings):
    """App. E's sizes: width d, examples n, depth, LoRA rank, Adam steps, base learning rate and α."""

    d: PositiveInt = setting(256, "MLP width (App. E: 256 for the dynamics, 32 for exact spectra)")
    n: PositiveInt = setting(100, "training examples (App. E: 100)")
    depth: PositiveInt = setting(5, "linear layers (App. E: 5)")
    rank: PositiveInt = setting(16, "LoRA rank on every layer (App. E: 16)")
    steps: PositiveInt = setting(100, "full-batch Adam steps (App. E: 100)")
    lr0: PositiveFloat = setting(1e-4, "base learning rate η₀")
    alpha0: PositiveFloat = setting(1.0, "base multiplier α₀ (PEFT lora_alpha)")

    @model_validator(mode="after")
    def _rank_fits(self) -> "MLPSetup":
        if self.rank > self.d:
            raise ConfigError("rank", f"r = {self.rank} exceeds the width d = {self.d}", f"use rank {self.d} or less")
        return self


class SiLUMLP(nn.Module):
    """x ↦ W_L·silu(… silu(W_1·x)), all layers d×d without bias."""

    def __init__(self, d: int, depth: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(depth))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.nn.functional.silu(x)
        return x


def make_data(setup: MLPSetup, seed: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """X ~ N(0, I) (n×d) and Y = X·W_trueᵀ, W_true with singular values σ_i = 1/i (App. E)."""
    gen = torch.Generator().manual_seed(seed)
    d = setup.d
    u, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    w_true = u @ torch.diag(1.0 / torch.arange(1, d + 1, dtype=torch.float64)) @ v.T
    x = torch.randn(setup.n, d, generator=gen, dtype=torch.float64)
    return x.to(dtype), (x @ w_true.T).to(dtype)


def build_model(setup: MLPSetup, alpha: float, seed: int, dtype=torch.float32):
    """The PEFT-wrapped MLP: W₀ ~ N(0, 1/d), A ~ N(0, 1/d), B = 0, s = α/r."""
    from peft import LoraConfig, get_peft_model

    from ..adapters import apply_init

    gen = torch.Generator().manual_seed(10_000 + seed)  # a stream apart from the data's
    base = SiLUMLP(setup.d, setup.depth).to(dtype)
    with torch.no_grad():
        for layer in base.layers:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen, dtype=torch.float64) / math.sqrt(setup.d))
    config = LoraConfig(
        r=setup.rank, lora_alpha=alpha, target_modules=[f"layers.{i}" for i in range(setup.depth)], lora_dropout=0.0
    )
    model = get_peft_model(base, config)
    apply_init(model, Init.A, seed=20_000 + seed)  # A ~ N(0, 1/d_in), B = 0
    return model.to(dtype)


@dataclass
class RunTrace:
    """One training run: per-step records (``step``, ``loss`` before the step, monitor metrics)."""

    records: list[dict] = field(default_factory=list)
    final_loss: float = float("nan")  # the loss after the last step
    diverged: bool = False

    @property
    def losses(self) -> list[float]:
        return [r["loss"] for r in self.records] + [self.final_loss]


def mse(model, x, y) -> torch.Tensor:
    return ((model(x) - y) ** 2).mean()


def train(model, x, y, lr: float, steps: int, callbacks=()) -> RunTrace:
    """Full-batch Adam on the MSE. Divergence uses the training loop's rule (:class:`DivergenceGuard`:
    a non-finite loss, or > 3× the early level for 5 steps in a row): the run stops, is marked
    diverged, and its final loss is inf — recorded, never raised."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    cbs = CallbackList(callbacks)
    ctx = TrainContext(model=model, optimizer=opt, config=None, run_dir=None, total_steps=steps, batch=x, lr=lr)
    trace = RunTrace()
    guard = DivergenceGuard()
    cbs.on_train_begin(ctx)
    for step in range(steps):
        loss = mse(model, x, y)
        if guard.check(step + 1, loss.item()):
            trace.diverged = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        cbs.on_before_optimizer_step(ctx)
        opt.step()
        ctx.step += 1
        ctx.loss = loss.item()
        logs = {"step": ctx.step, "loss": ctx.loss}
        cbs.on_step_end(ctx, logs)
        trace.records.append(logs)
    with torch.no_grad():
        final = mse(model, x, y).item() if not trace.diverged else float("inf")
    trace.diverged = trace.diverged or guard.check(steps + 1, final)
    trace.final_loss = final if math.isfinite(final) else float("inf")
    cbs.on_train_end(ctx, {"final_loss": trace.final_loss})
    return trace


def weight_loss(model, x, y):
    """(ℓ(w), layer points): the MSE as a pure function of any subset of the effective weights.

    A hand-written functional forward for :func:`lorascale.diagnostics.hessian.exact_hessians`
    (≈20× faster under torch.func than PEFT's module forward); layers not passed keep W₀ + s·B·A.
    """
    from ..diagnostics.hessian import peft_layer_points

    points = peft_layer_points(model)
    current = {p.name: p.weight.detach() for p in points}
    order = [p.name for p in points]

    def loss_w(ws: dict):
        h = x
        for i, name in enumerate(order):
            h = h @ ws.get(name, current[name]).T
            if i < len(order) - 1:
                h = torch.nn.functional.silu(h)
        return ((h - y) ** 2).mean()

    return loss_w, points


@contextmanager
def single_thread():
    """Run on one intra-op thread: these models are tiny, so extra threads only add synchronisation
    (we measured 8× slower with 2 threads on a busy 2-core machine) and take cores from other jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
