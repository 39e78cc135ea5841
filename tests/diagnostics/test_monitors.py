"""The signal/drift and feature-update callbacks in a HF-free manual loop, against dense references."""

import math

import pytest
import torch

from lorascale import apply
from lorascale.adapters import lora_modules
from lorascale.diagnostics import CALLBACK_NAMES, FeatureUpdateMonitor, SignalDriftMonitor, make_callbacks
from lorascale.diagnostics.aggregate import layer_type, layer_types
from lorascale.errors import ConfigErrors
from lorascale.models import load_model
from lorascale.train.callbacks import Callback, CallbackList, TrainContext

# The monitors sum float32 r×r Grams and T×r token products; the dense references sum the same
# float32 numbers in another order. 1e-4 relative covers that reordering (≈√n·6e-8 for n ≲ 10⁵
# terms) while a wrong term or scale would be off by O(1).
F32 = 1e-4


def lm_batch(seed=0, b=2, t=16):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 250, (b, t), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


def manual_loop(model, callbacks, batches, lr=1e-2, before_step=None):
    params = [p for n, p in model.named_parameters() if "lora_" in n]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    cbs = CallbackList(callbacks)
    ctx = TrainContext(model=model, optimizer=opt, config=None, run_dir=None, total_steps=len(batches))
    cbs.on_train_begin(ctx)
    history = []
    for batch in batches:
        out = model(**batch)
        out.loss.backward()
        ctx.batch = batch
        cbs.on_before_optimizer_step(ctx)
        if before_step is not None:
            before_step(model)
        opt.step()
        opt.zero_grad(set_to_none=True)
        for p in model.parameters():
            p.grad = None  # base weights may carry grads in the dense reference
        ctx.step += 1
        logs = {"step": ctx.step, "loss": out.loss.item()}
        cbs.on_step_end(ctx, logs)
        history.append(logs)
    cbs.on_train_end(ctx, {})
    return history


def test_layer_types_are_short_and_unambiguous():
    llama = [f"base_model.model.model.layers.{i}.{p}" for i in range(2) for p in ("self_attn.q_proj", "mlp.down_proj")]
    assert set(layer_types(llama).values()) == {"q_proj", "down_proj"}
    bert = [f"base_model.model.bert.encoder.layer.0.{p}" for p in ("attention.self.query", "attention.output.dense", "intermediate.dense", "output.dense")]
    assert sorted(layer_types(bert).values()) == ["attention.output.dense", "intermediate.dense", "output.dense", "query"]
    assert layer_type("base_model.model.layers.3") == "layers.3"  # a plain MLP: each layer its own type


def test_signal_drift_monitor_matches_dense_gradient_products_on_a_peft_model(tiny_llama):
    model = apply(tiny_llama.model, rank=4, rule="alpha-r", init="A", targets=["q_proj", "down_proj"], seed=0)
    mods = dict(lora_modules(model))
    for m in mods.values():
        m.base_layer.weight.requires_grad_(True)  # its .grad is the dense reference G = ∂L/∂W
    ref = {}

    def dense_reference(model):
        for name, m in mods.items():
            ref[name] = (m.lora_A["default"].weight.detach().clone(), m.lora_B["default"].weight.detach().clone(),
                         m.base_layer.weight.grad.detach().clone(), float(m.scaling["default"]))

    hist = manual_loop(model, [SignalDriftMonitor()], [lm_batch(0), lm_batch(1)], before_step=dense_reference)
    logs = hist[-1]  # step 2: B ≠ 0 and ΔA ≠ 0, so every term is live
    kinds = layer_types(list(mods))
    sums = {}
    for name, m in mods.items():
        A0, B0, G, s = ref[name]
        dA = m.lora_A["default"].weight.detach() - A0
        dB = m.lora_B["default"].weight.detach() - B0
        signal, drift = s * (B0 @ dA + dB @ A0), s * (dB @ dA)
        for kind in (kinds[name], "all"):
            acc = sums.setdefault(kind, dict.fromkeys(("ss", "dd", "gs", "gd", "gg"), 0.0))
            acc["ss"] += float((signal**2).sum())
            acc["dd"] += float((drift**2).sum())
            acc["gs"] += float((G * signal).sum())
            acc["gd"] += float((G * drift).sum())
            acc["gg"] += float((G**2).sum())
    assert set(sums) == {"q_proj", "down_proj", "all"}
    for kind, v in sums.items():
        assert logs[f"sd/{kind}/signal_norm"] == pytest.approx(math.sqrt(v["ss"]), rel=F32)
        assert logs[f"sd/{kind}/drift_norm"] == pytest.approx(math.sqrt(v["dd"]), rel=F32)
        assert logs[f"sd/{kind}/ratio"] == pytest.approx(math.sqrt(v["ss"] / v["dd"]), rel=F32)
        assert logs[f"sd/{kind}/signal_align"] == pytest.approx(-v["gs"] / math.sqrt(v["ss"] * v["gg"]), rel=F32)
        assert logs[f"sd/{kind}/drift_align"] == pytest.approx(-v["gd"] / math.sqrt(v["dd"] * v["gg"]), rel=F32)
    assert logs["sd/all/signal_align"] > 0  # Prop. 2(i): an Adam step's signal descends


def test_every_k_measures_only_every_kth_step(tiny_llama):
    model = apply(tiny_llama.model, rank=4, rule="alpha-r", init="A", targets=["v_proj"], seed=0)
    mon = SignalDriftMonitor(every=2)
    hist = manual_loop(model, [mon], [lm_batch(i) for i in range(4)])
    assert [h["step"] for h in hist if "sd/all/signal_norm" in h] == [2, 4]
    assert mon.capture is None  # hooks are removed at the end of training


def test_first_step_from_b_zero_has_exactly_zero_drift(tiny_llama):
    """Plain Adam from B = 0: ∇_A = s·BᵀG = 0, so ΔA = 0 and ΔW_drift = s·ΔB·ΔA = 0 exactly."""
    model = apply(tiny_llama.model, rank=4, rule="alpha-r", init="A", targets=["v_proj"], seed=0)
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if "lora_" in n], lr=1e-2)
    mon = SignalDriftMonitor()
    ctx = TrainContext(model=model, optimizer=opt, config=None, run_dir=None, total_steps=1)
    mon.on_train_begin(ctx)
    model(**lm_batch(0)).loss.backward()
    mon.on_before_optimizer_step(ctx)
    opt.step()
    ctx.step, logs = 1, {}
    mon.on_step_end(ctx, logs)
    assert logs["sd/all/drift_norm"] == 0.0 and "sd/all/ratio" not in logs  # an undefined ratio is omitted, not inf
    assert logs["sd/all/signal_norm"] > 0 and logs["sd/all/signal_align"] > 0


def test_token_cap_keeps_norms_exact_and_alignment_a_cosine(tiny_llama):
    model = apply(tiny_llama.model, rank=4, rule="alpha-r", init="A", targets=["q_proj"], seed=0)
    batches = [lm_batch(0, b=4, t=32), lm_batch(1, b=4, t=32)]  # 128 tokens per step
    full = manual_loop(model, [SignalDriftMonitor(max_tokens=10_000)], batches)[-1]
    model = apply(load_model("tiny-llama", seed=0).model, rank=4, rule="alpha-r", init="A", targets=["q_proj"], seed=0)
    capped = manual_loop(model, [SignalDriftMonitor(max_tokens=16)], batches)[-1]
    # norms come from the factors alone: the cap cannot change them (same bits, same step)
    assert capped["sd/all/signal_norm"] == full["sd/all/signal_norm"]
    assert -1.0 <= capped["sd/all/signal_align"] <= 1.0
    assert capped["sd/all/signal_align"] != full["sd/all/signal_align"]  # the cap really subsampled


def test_feature_update_monitor_on_the_mlp_first_layer_matches_dense_terms():
    from lorascale.repro.mlp import MLPSetup, build_model, make_data, train

    setup = MLPSetup(d=8, n=20, depth=3, rank=2, steps=3)
    x, y = make_data(setup, 0)
    model = build_model(setup, alpha=4.0, seed=0)
    mon = FeatureUpdateMonitor(probe_batch=x)
    snaps = []

    class Snap(Callback):  # records layer 0's factors before each step
        def on_before_optimizer_step(self, ctx):
            m = dict(lora_modules(ctx.model))["base_model.model.layers.0"]
            snaps.append((m.lora_A["default"].weight.detach().clone(), m.lora_B["default"].weight.detach().clone()))

    trace = train(model, x, y, lr=1e-2, steps=3, callbacks=[Snap(), mon])
    first = "base_model.model.layers.0"
    assert torch.equal(mon.inputs[first], x)  # layer 0's input on the probe batch is the probe itself
    m = dict(lora_modules(model))[first]
    s = float(m.scaling["default"])
    A_end, B_end = m.lora_A["default"].weight.detach(), m.lora_B["default"].weight.detach()
    A1, B1 = snaps[2]
    dA, dB = A_end - A1, B_end - B1
    z, dz = x @ A1.T, x @ dA.T
    n, d_out, r = x.shape[0], B1.shape[0], A1.shape[0]
    rms = lambda t, k: float(t.pow(2).sum() / (n * k)) ** 0.5  # noqa: E731
    logs = trace.records[-1]
    assert logs["fu/layers.0/delta1"] == pytest.approx(rms(s * dz @ B1.T, d_out), rel=F32)
    assert logs["fu/layers.0/delta2"] == pytest.approx(rms(s * z @ dB.T, d_out), rel=F32)
    assert logs["fu/layers.0/delta3"] == pytest.approx(rms(s * dz @ dB.T, d_out), rel=F32)
    assert logs["fu/layers.0/z_a"] == pytest.approx(rms(z, r), rel=F32)
    # μA Init[A] at step 1: B = 0 so ∇_A = 0 and Adam leaves A alone — only δ² (learning through B) moves
    step1 = trace.records[0]
    assert step1["fu/all/delta1"] == 0.0 and step1["fu/all/delta3"] == 0.0 and step1["fu/all/delta2"] > 0


def test_feature_update_monitor_freezes_the_first_training_batch_without_a_probe(tiny_llama):
    model = apply(tiny_llama.model, rank=4, rule="alpha-r", init="A", targets=["down_proj"], seed=0)
    mon = FeatureUpdateMonitor(every=1, refresh_every=100)
    hist = manual_loop(model, [mon], [lm_batch(0), lm_batch(1), lm_batch(2)])
    assert torch.equal(mon.probe["input_ids"], lm_batch(0)["input_ids"]) and "labels" in mon.probe
    assert all(h["fu/down_proj/delta2"] > 0 for h in hist)
    # every probe token (2×16, no padding) at down_proj's input width (the MLP's 2·64)
    assert len(mon.inputs) == 2 and all(x.shape == (2 * 16, 128) for x in mon.inputs.values())  # down_proj, 2 blocks


def test_make_callbacks_builds_named_monitors_and_rejects_bad_input():
    cbs = make_callbacks(["feature-updates", "signal-drift", "signal-drift"], every=3)
    assert [type(c) for c in cbs] == [FeatureUpdateMonitor, SignalDriftMonitor]  # order kept, duplicates dropped
    assert all(c.every == 3 for c in cbs) and set(CALLBACK_NAMES) == {"signal-drift", "feature-updates"}
    with pytest.raises(ConfigErrors) as e:  # both problems at once, each naming its setting
        make_callbacks(["hessian"], every=0)
    assert [(x.field, x.message) for x in e.value.errors] == [
        ("diagnostics", "unknown value 'hessian'"), ("diag_every", "must be > 0, got 0")]
    with pytest.raises(ConfigErrors, match="not true/false"):
        make_callbacks(["signal-drift"], every=True)


def test_signal_drift_refuses_a_dora_adapter(tiny_llama):
    from peft import LoraConfig, get_peft_model

    from lorascale.diagnostics import SignalDriftMonitor
    from lorascale.errors import ConfigError
    from lorascale.train.callbacks import TrainContext

    model = get_peft_model(tiny_llama.model, LoraConfig(r=2, target_modules=["q_proj"], use_dora=True))
    with pytest.raises(ConfigError) as e:
        SignalDriftMonitor().on_train_begin(TrainContext(model=model, optimizer=None, config=None, run_dir=None, total_steps=1))
    assert e.value.field == "method" and "DoRA" in e.value.message


def test_signal_drift_monitor_measures_a_float64_model_in_float64():
    """Its factors keep float64 (they were copied to float32, and the float64 token rows met them in a
    matmul that raised); the same run in float32 gives the same numbers up to float32 rounding (F32)."""
    from lorascale.diagnostics.monitor import Factors
    from lorascale.repro.mlp import MLPSetup, build_model, make_data, train

    setup = MLPSetup(d=6, n=10, depth=2, rank=2, steps=3)
    logs = {}
    for dtype in (torch.float32, torch.float64):
        x, y = make_data(setup, 0, dtype)
        model = build_model(setup, alpha=4.0, seed=0, dtype=dtype)
        logs[dtype] = train(model, x, y, 1e-2, 3, callbacks=[SignalDriftMonitor()]).records[-1]
        (layer, *_) = [m for _, m in lora_modules(model)]
        assert Factors(layer, "default").A.dtype == dtype
    keys = [k for k in logs[torch.float64] if k.startswith("sd/all/")]
    assert {"sd/all/ratio", "sd/all/signal_align"} <= set(keys)
    for k in keys:
        assert math.isfinite(logs[torch.float64][k])
        assert logs[torch.float64][k] == pytest.approx(logs[torch.float32][k], rel=F32), k
