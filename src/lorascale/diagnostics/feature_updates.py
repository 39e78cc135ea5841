"""FeatureUpdateMonitor: μA's three feature-update terms on a fixed probe batch, per layer type.

μA eq. (1): for one LoRA layer with input features Z (a probe batch's rows x), Z_A = A·x and
Z_B = s·B·Z_A, a step changes the layer's output features by

    ΔZ_B = s·B_{t−1}·ΔZ_A  +  s·ΔB·Z_A^{t−1}  +  s·ΔB·ΔZ_A
           └──── δ¹ ────┘     └───── δ² ────┘     └──── δ³ ───┘

δ¹ is learning through A (B held), δ² through B (A held), δ³ the multiplicative term. μA §4 reads
off which factor learns: under Init[A] only δ² stays Θ(1) as r grows, under Init[B] only δ¹.

Logged per layer type as entry RMS (μA's Θ(·) statements are about entry sizes)::

    fu/<kind>/delta1, delta2, delta3   ‖δⁱ‖_F / √(N·d_out)
    fu/<kind>/z_a                      ‖Z_A^{t−1}‖_F / √(N·r)

The probe inputs x of every LoRA layer are captured by forward hooks in one no-grad, eval-mode
forward of the probe batch, and re-captured every ``refresh_every`` steps. Between refreshes x is
held fixed, as μA App. A assumes (one trainable layer, fixed input), so δ¹+δ²+δ³ is exactly the
change of s·B·A·x. Only the r×r Grams BᵀB and ΔBᵀΔB touch d_out: no N×d_out tensor is formed.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..schema import StrictPositiveInt, checked
from .aggregate import TypeSums, metric_key
from .decomposition import feature_terms_sq_norms
from .monitor import Factors, LoraMonitor, call_model

__all__ = ["FeatureUpdateMonitor", "feature_update_metrics", "PREFIX"]

PREFIX = "fu"
DEFAULT_PROBE_TOKENS = 512  # per layer; the δ norms are averages over rows, 512 rows keep them stable


class FeatureUpdateMonitor(LoraMonitor):
    """``probe_batch``: a dict of tensors (HF kwargs), a tuple of args or a tensor. None: the first
    training micro-batch is frozen as the probe (``ctx.batch``, or the model's first training forward)."""

    plain_lora_only = True  # ΔW = s·B·A: DoRA is refused

    def __init__(
        self,
        probe_batch=None,
        every: int = 1,
        refresh_every: int = 50,
        max_tokens: int = DEFAULT_PROBE_TOKENS,
        seed: int = 0,
        adapter: str = "default",
    ):
        super().__init__(every, adapter)
        checked(StrictPositiveInt, "refresh_every", refresh_every, "a number of optimizer steps")
        self.probe = _detached(probe_batch) if probe_batch is not None else None
        self.refresh_every = refresh_every
        self.max_tokens = max_tokens
        self.seed = seed
        self.inputs: dict[str, torch.Tensor] | None = None  # name -> (N, d_in) probe rows
        self._refreshed_at = 0
        self._before: dict[str, Factors] | None = None
        self._grab = None
        self._z: dict[str, torch.Tensor] = {}  # Z_A^t = X·A_tᵀ of the last measured step t
        self._z_step = -1

    def on_train_begin(self, ctx) -> None:
        self._find_layers(ctx.model)
        if self.probe is None:
            self._grab = ctx.model.register_forward_pre_hook(self._grab_first_batch, with_kwargs=True)

    def on_before_optimizer_step(self, ctx) -> None:
        step = ctx.step + 1
        if not self.monitored(step):
            return
        if self.probe is None and ctx.batch is not None:
            self.probe = _detached(ctx.batch)
        if self.probe is None:
            raise ConfigError("probe_batch", "no probe batch and none seen in training", "pass probe_batch= (a batch of inputs)")
        if self.inputs is None or step - self._refreshed_at >= self.refresh_every:
            self.inputs = probe_inputs(ctx.model, self.probe, self.modules, self.max_tokens, self.seed)
            self._refreshed_at = step
            self._z = {}
        if self._z_step != step - 1:  # A moved in unmeasured steps: the cached Z_A is stale
            self._z = {}
        self._before = self._snapshot()

    def on_step_end(self, ctx, logs: dict) -> None:
        if self._before is None:
            return
        logs.update(feature_update_metrics(self.modules, self.kinds, self._before, self._snapshot(), self.inputs, self._z))
        self._z_step = ctx.step
        self._before = None

    def on_train_end(self, ctx, summary: dict) -> None:
        if self._grab is not None:
            self._grab.remove()
            self._grab = None

    def _grab_first_batch(self, module, args, kwargs):
        if self.probe is None and torch.is_grad_enabled():
            self.probe = _detached(dict(kwargs)) if kwargs else _detached(tuple(args))
        if self._grab is not None and self.probe is not None:
            self._grab.remove()
            self._grab = None


def probe_inputs(model, probe, modules: dict, max_tokens: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Each LoRA layer's input rows on the probe batch (no grad, eval mode; padding rows dropped)."""
    rows: dict[str, torch.Tensor] = {}
    device = next(next(iter(modules.values())).lora_A.parameters()).device  # a user probe may sit on the CPU
    probe = _detached(probe, device)
    mask = probe.get("attention_mask") if isinstance(probe, dict) else None

    def hook_for(name):
        def hook(module, args, output):
            x = args[0].detach()
            flat = x.reshape(-1, x.shape[-1])  # (B·T, d_in)
            if mask is not None and mask.numel() == flat.shape[0]:
                flat = flat[mask.reshape(-1).to(flat.device).bool()]
            if flat.shape[0] > max_tokens:
                gen = torch.Generator().manual_seed(seed)  # the same rows at every refresh
                flat = flat[torch.randperm(flat.shape[0], generator=gen)[:max_tokens].to(flat.device)]
            rows[name] = flat.float().clone()

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in modules.items()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            call_model(model, probe)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows


def feature_update_metrics(modules, kinds, before: dict[str, Factors], after: dict[str, Factors], inputs, z_cache=None) -> dict[str, float]:
    """Per-type entry RMS of δ¹, δ², δ³ and Z_A (module docs) for one step.

    ``z_cache`` (name → Z_A^{t−1}, updated in place to Z_A^t = Z_A^{t−1} + ΔZ_A) saves one N×d_in×r
    product per layer when consecutive steps are measured on the same probe rows.
    """
    sums = TypeSums()
    with torch.no_grad():
        for name in modules:
            x = inputs.get(name)
            if x is None:  # the layer did not run on the probe batch
                continue
            b, a = before[name], after[name]
            x = x.to(b.A.device)
            z = z_cache.get(name) if z_cache is not None else None
            z = x @ b.A.T if z is None else z  # (N, r)
            dz = x @ (a.A - b.A).T  # (N, r)
            d1, d2, d3, za = feature_terms_sq_norms(z, dz, b.B, a.B - b.B, b.scale)
            if z_cache is not None:
                z_cache[name] = z + dz
            n = x.shape[0]
            sums.add(kinds[name], d1=d1, d2=d2, d3=d3, za=za, out_entries=n * b.B.shape[0], a_entries=n * b.A.shape[0])
    out: dict[str, float] = {}
    for kind, v in sums.items():
        if v["out_entries"] > 0:
            for i in (1, 2, 3):
                out[metric_key(PREFIX, kind, f"delta{i}")] = TypeSums.root(v[f"d{i}"] / v["out_entries"])
            out[metric_key(PREFIX, kind, "z_a")] = TypeSums.root(v["za"] / v["a_entries"])
    return out


def _detached(batch, device=None):
    """A detached copy of a batch's tensors (on ``device`` if given); non-tensor dict entries are dropped."""
    if isinstance(batch, torch.Tensor):
        return batch.detach().to(device, copy=True) if device is not None else batch.detach().clone()
    if isinstance(batch, dict):
        return {k: _detached(v, device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    if isinstance(batch, (tuple, list)):
        return tuple(_detached(v, device) for v in batch)
    return batch
