"""One run of the coordinate check: a few AdamW steps with the monitor that measures its sizes.

The optimizer is μA's recipe without what its analysis leaves out: AdamW with the recipe's β and ε
(:class:`~lorascale.train.TrainConfig`), but no weight decay (decoupled decay moves A by η·λ·A at
step 1 and would give Init[A] a spurious δ³ ∝ η²λ where the theory has exactly 0), no clipping
(Adam's first step ignores a global rescale, later steps would not) and a constant learning rate
(a warm-up over three steps would change η from step to step). Only the adapters train and dropout
is off (the model runs in eval mode; gradients flow all the same), so a seed fixes the run.
"""

from __future__ import annotations

from .aggregate import TypeSums, metric_key
from .decomposition import product_sq_norm
from .feature_updates import PREFIX, FeatureUpdateMonitor, feature_update_metrics

__all__ = ["CoordMonitor", "update_size_metrics", "train_steps"]


class CoordMonitor(FeatureUpdateMonitor):
    """:class:`FeatureUpdateMonitor` plus the sizes a coordinate check plots, on the same probe rows:

        fu/<kind>/z_b        ‖Z_B^t‖_F/√(N·d_out), Z_B^t = s·B_t·A_t·x (the adapter's whole feature update:
                             Z_B^0 = 0 under every init, so Z_B^t = Σ_{τ≤t} ΔZ_B^τ)
        fu/<kind>/update_a   ‖ΔA‖_F/√(r·d_in)
        fu/<kind>/update_b   ‖ΔB‖_F/√(d_out·r)
    """

    def on_step_end(self, ctx, logs: dict) -> None:
        if self._before is None:
            return
        after = self._snapshot()  # one snapshot serves both sets of metrics
        logs.update(feature_update_metrics(self.modules, self.kinds, self._before, after, self.inputs, self._z))
        logs.update(update_size_metrics(self.kinds, self._before, after, self._z))  # self._z now holds Z_A^t
        self._z_step = ctx.step
        self._before = None


def update_size_metrics(kinds: dict, before: dict, after: dict, z_now: dict) -> dict[str, float]:
    """Per-type entry RMS of Z_B^t, ΔA and ΔB (:class:`CoordMonitor`); ``z_now``: name → Z_A^t (N, r)."""
    sums = TypeSums()
    for name, kind in kinds.items():
        b, a = before[name], after[name]
        da, db = a.A - b.A, a.B - b.B  # (r, d_in), (d_out, r)
        values = {"ua": float((da * da).sum()), "a_entries": da.numel(), "ub": float((db * db).sum()), "b_entries": db.numel()}
        z = z_now.get(name)
        if z is not None:
            values["zb"] = a.scale * a.scale * _rows_times_sq_norm(z, a.B)
            values["out_entries"] = z.shape[0] * a.B.shape[0]
        sums.add(kind, **values)
    out: dict[str, float] = {}
    for kind, v in sums.items():
        out[metric_key(PREFIX, kind, "update_a")] = TypeSums.root(v["ua"] / v["a_entries"])
        out[metric_key(PREFIX, kind, "update_b")] = TypeSums.root(v["ub"] / v["b_entries"])
        if v["out_entries"] > 0:
            out[metric_key(PREFIX, kind, "z_b")] = TypeSums.root(v["zb"] / v["out_entries"])
    return out


def train_steps(peft_model, batch: dict, lr: float, steps: int, monitor: CoordMonitor) -> list[dict]:
    """``steps`` AdamW steps on ``batch`` with ``monitor`` attached (module docs); each step's logs."""
    import torch

    from ..train.callbacks import TrainContext
    from ..train.config import TrainConfig

    recipe = TrainConfig.model_fields
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(recipe["beta1"].default, recipe["beta2"].default),
                            eps=recipe["eps"].default, weight_decay=0.0)
    ctx = TrainContext(model=peft_model, optimizer=opt, config=None, run_dir=None, total_steps=steps, batch=batch, lr=lr)
    peft_model.eval()  # no dropout: a seed fixes the run; gradients flow in eval mode all the same
    monitor.on_train_begin(ctx)
    logs_per_step = []
    for t in range(steps):
        loss = peft_model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        monitor.on_before_optimizer_step(ctx)
        opt.step()
        ctx.step, ctx.loss = t + 1, float(loss.detach())
        logs = {"step": ctx.step, "loss": ctx.loss}
        monitor.on_step_end(ctx, logs)
        logs_per_step.append(logs)
    monitor.on_train_end(ctx, {})
    return logs_per_step


def _rows_times_sq_norm(z, b) -> float:
    """‖Z·Bᵀ‖²_F for Z (N, r) and B (d_out, r), by the cheaper route: the r×r Grams cost (N + d_out)·r²,
    the N×d_out product N·r·d_out. A coordinate check has few probe rows (N = 64 by default), so at
    r = 256 the product is ~4× cheaper; at small r the Grams are."""
    n, r = z.shape
    if n < r:
        return float((z @ b.T).square().sum())  # (N, d_out)
    return product_sq_norm(z, b.T)
