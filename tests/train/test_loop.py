"""The training loop on real (tiny and MiniLM) models: learning, determinism, outcomes, records."""

import json
import math

import pytest
import torch

from lorascale.train import Callback, TrainConfig, train

TINY = dict(model="tiny-llama", data="shakespeare", batch_size=4, seq_len=64, max_examples=256, max_val_batches=2)


def cfg(tmp_path, name="run", **kw):
    return TrainConfig(**(TINY | kw), out_dir=str(tmp_path / name))


def test_tiny_run_learns_and_records(tmp_path):
    r = train(cfg(tmp_path, steps=40, lr=3e-3, rule="alpha-r"), progress=False)
    assert r.status == "complete"
    first, last = r.ema_curve[0][1], r.ema_curve[-1][1]
    # a byte-level LM starts at ≈ ln(259) = 5.56 nats: init std 0.02 makes the logits nearly uniform,
    # their small spread moves the first loss by a few hundredths; 40 steps at lr 3e-3 must lower it
    assert first == pytest.approx(math.log(259), abs=0.15)
    assert last < first - 0.1
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(x) for x in lines if "loss" in json.loads(x)]
    assert [s["step"] for s in steps] == list(range(1, 41))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["final_ema_loss"] == last  # a JSON round trip keeps a float64
    assert summary["val_nll"] == r.eval_value and r.eval_value < first
    assert json.loads((tmp_path / "run" / "config.json").read_text())["rank"] == 16
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()


def test_same_seed_same_curve_different_seed_differs(tmp_path):
    a = train(cfg(tmp_path, "a", steps=8, lr=3e-3, seed=5), progress=False)
    b = train(cfg(tmp_path, "b", steps=8, lr=3e-3, seed=5), progress=False)
    c = train(cfg(tmp_path, "c", steps=8, lr=3e-3, seed=6), progress=False)
    assert a.ema_curve == b.ema_curve  # bitwise: CPU kernels are deterministic for a fixed seed
    assert a.ema_curve != c.ema_curve


def test_huge_lr_ends_as_diverged_not_crash(tmp_path):
    r = train(cfg(tmp_path, steps=30, lr=1e4, rule="lora-alpha"), progress=False)
    assert r.status == "diverged" and r.message
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["steps_done"] < 30


def test_nan_gradient_on_the_last_step_is_divergence_not_a_nan_adapter(tmp_path, poison_gradients_at):
    poison_gradients_at(5)  # the 6th and last step: its loss is finite
    r = train(cfg(tmp_path, steps=6, lr=3e-3), progress=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert r.status == "diverged" and summary["status"] == "diverged" and "gradient norm became nan at step 6" in r.message
    assert summary["steps_done"] == 5 and math.isfinite(summary["final_ema_loss"])  # the 5 good steps' EMA
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["diverged"] is True and math.isfinite(last["loss"])
    assert not (tmp_path / "run" / "adapter").exists()  # a diverged run saves nothing


class IdentityScaler:
    def scale(self, loss):
        return loss

    def unscale_(self, optimizer):
        pass


def test_with_a_loss_scaler_an_overflowing_gradient_is_the_scalers_to_skip(tmp_path, poison_gradients_at, monkeypatch):
    """fp16 (GPU only): accelerate's clip returns inf on every overflow step, which its GradScaler skips while
    lowering the scale; the divergence guard leaves that to it. A scaler is faked after prepare (the CPU has no
    fp16), so the poisoned step here is taken: what is checked is only that the run is not ended for it."""
    import lorascale.train.loop as loop

    real = loop.make_accelerator

    def with_scaler(cfg):
        acc = real(cfg)
        prepare = acc.prepare

        def prepared(*objs):
            out = prepare(*objs)
            acc.scaler = IdentityScaler()  # what the loop reads after prepare (backward scales the loss by it)
            return out

        acc.prepare = prepared
        return acc

    monkeypatch.setattr(loop, "make_accelerator", with_scaler)
    poison_gradients_at(2)
    r = train(cfg(tmp_path, steps=4, lr=3e-3, save_model=False), progress=False)
    # not ended at step 3 for its gradient; with no real scaler to skip it, the NaN step lands and step 4's loss is NaN
    assert "gradient norm" not in r.message and "loss became nan at step 4" in r.message


class FirstOfTwoShards:
    """A training loader as process 0 of 2 sees it after ``accelerator.prepare``: every other batch."""

    def __init__(self, loader):
        self.loader, self.full = loader, len(loader)

    def __len__(self):
        return math.ceil(self.full / 2)

    def __iter__(self):
        return (b for i, b in enumerate(self.loader) if i % 2 == 0)


def test_an_epoch_budget_counts_the_batches_each_process_reads(tmp_path, monkeypatch):
    from accelerate import Accelerator

    prepare, seen = Accelerator.prepare, []

    def sharded(self, model, optimizer, train_loader):  # the validation loader is not prepared (held_out.py)
        model, optimizer, train_loader = prepare(self, model, optimizer, train_loader)
        seen.append(FirstOfTwoShards(train_loader))
        return model, optimizer, seen[-1]

    monkeypatch.setattr(Accelerator, "prepare", sharded)
    r = train(cfg(tmp_path, steps=None, epochs=1.0, max_examples=64, lr=1e-3), progress=False)
    # one epoch is the process's own ⌈n/2⌉ batches, not the unsharded loader's n (which would be two epochs)
    assert seen[0].full >= 4 and r.summary["steps_done"] == r.summary["total_steps"] == math.ceil(seen[0].full / 2)


class LrSpy(Callback):
    def __init__(self):
        self.seen = []

    def on_before_optimizer_step(self, ctx):
        self.seen.append({g["name"]: g["lr"] for g in ctx.optimizer.param_groups})


def test_head_lr_stays_separate(tmp_path):
    spy = LrSpy()
    c = TrainConfig(model="tiny-bert", data="shakespeare-genre", steps=20, batch_size=4, seq_len=32, max_examples=80,
                    lr=1e-5, head_lr=1e-3, out_dir=str(tmp_path / "cls"), save_model=False)
    r = train(c, [spy], progress=False)
    assert r.status == "complete" and r.eval_metric == "val_accuracy"
    for lrs in spy.seen:
        assert set(lrs) == {"body", "head"}
        assert lrs["head"] / lrs["body"] == pytest.approx(100.0, rel=1e-12)  # same schedule shape, separate peaks (rel: rounding only)
    assert spy.seen[0]["head"] == pytest.approx(1e-3 / 1, rel=1e-12)  # W = ceil(0.05·20) = 1: the first step is at the peak (rel: rounding only)


class Snapshot(Callback):
    """The model's parameters before the first and after the last step."""

    def on_train_begin(self, ctx):
        self.before = {n: p.detach().clone() for n, p in ctx.model.named_parameters()}
        self.trainable = {n for n, p in ctx.model.named_parameters() if p.requires_grad}

    def on_train_end(self, ctx, summary):
        self.after = {n: p.detach().clone() for n, p in ctx.model.named_parameters()}


def test_full_finetuning_trains_every_parameter(tmp_path):
    snap = Snapshot()
    r = train(cfg(tmp_path, steps=5, lr=1e-3, finetune="full"), [snap], progress=False)
    assert r.status == "complete" and (tmp_path / "run" / "model" / "config.json").exists()
    assert snap.trainable == set(snap.before)  # nothing frozen, no adapter
    unchanged = [n for n in snap.before if torch.equal(snap.before[n], snap.after[n])]
    assert not unchanged, unchanged  # AdamW's decoupled decay moves even rows without gradient


class Interrupt(Callback):
    def on_step_end(self, ctx, logs):
        if ctx.step == 3:
            raise KeyboardInterrupt


def test_ctrl_c_leaves_consistent_interrupted_run(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(cfg(tmp_path, steps=10, lr=1e-3), [Interrupt()], progress=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps_done"] == 3
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    # every line complete JSON, one per finished step: step 3's record is not written, Ctrl-C came in its on_step_end
    assert [json.loads(x)["step"] for x in lines] == [1, 2]


def test_existing_run_dir_is_never_overwritten(tmp_path):
    from lorascale.errors import ConfigError

    train(cfg(tmp_path, steps=2, lr=1e-3), progress=False)
    before = (tmp_path / "run" / "summary.json").read_text()
    with pytest.raises(ConfigError, match="out_dir"):
        train(cfg(tmp_path, steps=2, lr=1e-3), progress=False)
    assert (tmp_path / "run" / "summary.json").read_text() == before


class LossSpy(Callback):
    def __init__(self):
        self.losses = []

    def on_step_end(self, ctx, logs):
        self.losses.append(logs["loss"])


def test_minilm_real_steps_learn(tmp_path):
    spy = LossSpy()
    # 16 training passages in one batch of 16: every step sees the same examples, so the loss must fall
    c = TrainConfig(model="minilm-l6", data="shakespeare-genre", steps=12, batch_size=16, seq_len=48, max_examples=16,
                    max_val_batches=2, out_dir=str(tmp_path / "m"), save_model=False)
    r = train(c, [spy], progress=False)
    assert r.status == "complete" and len(spy.losses) == 12
    # 6 genres, a fresh head (std 0.02 on ≈ unit-norm pooled features): the first loss is near ln 6 = 1.79
    assert spy.losses[0] == pytest.approx(math.log(6), abs=0.3)
    # memorising one batch with the head at 1e-3: measured 1.79 → 1.57 in 12 steps; demand at least 0.1
    assert spy.losses[-1] < spy.losses[0] - 0.1


@pytest.mark.slow
def test_smollm2_integration(tmp_path):
    c = TrainConfig(model="smollm2-135m", data="shakespeare", steps=3, batch_size=2, seq_len=64, max_examples=32,
                    max_val_batches=1, out_dir=str(tmp_path / "s"))
    r = train(c, progress=False)
    # the pretrained model reads Shakespeare at 3–6 nats (measured 4.82 here over 64-token windows of 2 rows;
    # the CPU study's 128-token runs start near 3.7); random or mis-converted weights sit near uniform, ln 49152 = 10.8
    assert r.status == "complete" and 3.0 < r.final_ema_loss < 6.0, r.final_ema_loss
