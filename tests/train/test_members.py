"""Members of a pack equal separate runs: curves, outcomes, evaluations, saved adapters and heads.

The reference is :func:`lorascale.train.train` itself, run once per config.

Tolerances. On this CPU a member whose rank is the pack's largest is bitwise equal to its separate
run (same GEMMs in the same orientation, so the same reduction order; the batched LoRA backward is
written in F.linear's orientation for that). A member zero-padded to a larger rank runs its LoRA
GEMMs at the padded shape, where the BLAS may block the sum over rows differently. Measured here:
the padded LM member's records (losses, EMA, grad norms, val NLL) within 6e-7 relative, its saved
factors within 1.4e-6 normwise-relative (the padded classification member: 2e-8 and 0). Factors move
more than losses because AdamW normalises each entry's update (m̂/√v̂): an entry whose gradient
is a near-cancelling sum carries a large relative rounding error into an O(lr) step. A 1e-7 relative
perturbation of these non-chaotic configs' initial factors moves their 10-step loss curves by < 1e-7
(measured), so rounding does not compound here. REL = 1e-5 on records and ADAPTER_REL = 1e-4 on
factors leave ≥ 15× margin for another CPU's GEMM blocking while catching any real difference: a
wrong seed, scale, learning rate or data order changes losses by > 1e-3 and factors by O(1).
"""

import json
import math

import pytest

from lorascale.errors import ConfigError, ConfigErrors
from lorascale.train import Callback, TrainConfig, train, train_members

REL = 1e-5  # records; see the module docstring
ADAPTER_REL = 1e-4  # saved factors and heads, normwise; see the module docstring
TIMINGS = {"step_time", "tokens_per_s", "wall_time", "peak_memory_mb"}

LM = dict(model="tiny-llama", data="shakespeare", batch_size=4, seq_len=64, max_examples=256, max_val_batches=2, steps=10,
          eval_every=4)
# ranks 4/8/2/8, inits kaiming/A/B/A, four rules, four seeds and learning rates; the μA member's lr 1e4 diverges
# (a NaN loss at step 5 as a separate run); the rank-2 member targets only q/v (others all linears)
LM_MEMBERS = [
    dict(rank=4, init="kaiming", rule="lora-alpha", seed=0, lr=1e-3),
    dict(rank=8, init="A", rule="alpha-r", seed=1, lr=1e-3),
    dict(rank=2, init="B", rule="rslora", seed=2, lr=2e-3, targets=("q_proj", "v_proj")),
    dict(rank=8, init="A", rule="mua", gamma=1.0, seed=3, lr=1e4),
]
CLS = dict(model="tiny-bert", data="shakespeare-genre", batch_size=4, seq_len=48, max_examples=96, max_val_batches=2, steps=8,
           eval_every=3)  # tiny-bert is dropout-free: a run is a deterministic function of its seed
CLS_MEMBERS = [
    dict(rank=4, init="kaiming", rule="lora-alpha", seed=0, lr=2e-3, head_lr=1e-3),
    dict(rank=8, init="A", rule="alpha-r", seed=1, lr=1e-3, head_lr=3e-3),
    dict(rank=8, init="B", rule="rslora", seed=2, lr=2e-3, head_lr=1e-3, targets=("query", "value")),
]


def _pair(tmp, base, specs, on_member_end=None):
    """(separate results, member results, separate dirs, member dirs) of the same configs."""
    seps = [TrainConfig(**base, **s, out_dir=str(tmp / f"sep{i}")) for i, s in enumerate(specs)]
    mems = [c.replace(out_dir=str(tmp / f"mem{i}")) for i, c in enumerate(seps)]
    return ([train(c, progress=False) for c in seps], train_members(mems, progress=False, on_member_end=on_member_end),
            seps, mems)


LM_ENDED: list = []  # the lm pack's on_member_end calls, in order: (member, its result)


@pytest.fixture(scope="module")
def lm(tmp_path_factory, one_thread):
    LM_ENDED.clear()  # a re-created fixture (a rerun) starts a new record
    return _pair(tmp_path_factory.mktemp("lm"), LM, LM_MEMBERS, on_member_end=lambda i, r: LM_ENDED.append((i, r)))


@pytest.fixture(scope="module")
def cls(tmp_path_factory, one_thread):
    return _pair(tmp_path_factory.mktemp("cls"), CLS, CLS_MEMBERS)


def _close(a, b) -> bool:
    """Equal within REL; None (JSON's NaN/inf) and NaN (a diverged run's evaluation) equal themselves."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=REL, abs_tol=0.0) or a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def _lines(cfg) -> list[dict]:
    return [json.loads(x) for x in open(f"{cfg.out_dir}/metrics.jsonl")]


def assert_same_run(sep_cfg, mem_cfg, a, b):
    """Same outcome, same records line by line (timings aside), same summary."""
    assert (a.status, a.message, a.eval_metric) == (b.status, b.message, b.eval_metric)
    assert _close(a.final_ema_loss, b.final_ema_loss) and _close(a.eval_value, b.eval_value) and _close(a.val_loss, b.val_loss)
    assert [s for s, _ in a.ema_curve] == [s for s, _ in b.ema_curve]
    assert all(_close(x, y) for (_, x), (_, y) in zip(a.ema_curve, b.ema_curve))
    la, lb = _lines(sep_cfg), _lines(mem_cfg)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert x.keys() == y.keys()
        assert all(_close(x[k], y[k]) for k in x if k not in TIMINGS), (x, y)
    assert a.summary.keys() == b.summary.keys()
    assert all(_close(a.summary[k], b.summary[k]) for k in a.summary if k not in TIMINGS | {"pack"})
    assert json.loads(open(f"{mem_cfg.out_dir}/config.json").read()) == mem_cfg.to_dict()


def _tensors(cfg) -> dict:
    from safetensors.torch import load_file

    return load_file(f"{cfg.out_dir}/adapter/adapter_model.safetensors")


def assert_same_adapter(sep_cfg, mem_cfg):
    from pathlib import Path

    sep, mem = Path(sep_cfg.out_dir) / "adapter", Path(mem_cfg.out_dir) / "adapter"
    assert sorted(p.name for p in sep.iterdir()) == sorted(p.name for p in mem.iterdir())
    for name in ("adapter_config.json", "lorascale.json"):
        assert json.loads((sep / name).read_text()) == json.loads((mem / name).read_text())
    ta, tb = _tensors(sep_cfg), _tensors(mem_cfg)
    assert ta.keys() == tb.keys()
    for key in ta:
        scale = float(ta[key].abs().max()) or 1.0
        assert float((ta[key] - tb[key]).abs().max()) <= ADAPTER_REL * scale, key  # normwise: entries may be ~0


def test_lm_pack_equals_separate_runs(lm):
    seps_r, mems_r, seps, mems = lm
    assert [r.status for r in mems_r] == ["complete", "complete", "complete", "diverged"]
    assert [r.status for r in seps_r] == [r.status for r in mems_r]
    for sc, mc, a, b in zip(seps, mems, seps_r, mems_r):
        assert_same_run(sc, mc, a, b)
    # the members name their pack (run_seconds counts its time once); a separate run names none
    assert len({r.summary["pack"] for r in mems_r}) == 1 and mems_r[0].summary["pack"] is not None
    assert {r.summary["pack"] for r in seps_r} == {None}


def test_lm_pack_saves_the_separate_runs_adapters(lm):
    _, mems_r, seps, mems = lm
    for sc, mc, r in zip(seps, mems, mems_r):
        if r.status == "complete":
            assert_same_adapter(sc, mc)
        else:  # a diverged run saves nothing, in a pack as alone
            assert not (r.run_dir / "adapter").exists()


def test_diverged_member_leaves_the_pack_and_the_others_go_on(lm):
    _, mems_r, _, mems = lm
    stopped = mems_r[3].summary["steps_done"]
    assert 0 < stopped < LM["steps"] and "nan" in mems_r[3].message
    assert all(r.summary["steps_done"] == LM["steps"] for r in mems_r[:3])
    assert _lines(mems[3])[-1]["diverged"] is True


def test_each_member_is_reported_once_as_it_ends(lm):
    """A sweep stores a member's result from on_member_end: the diverged member is reported when it stops
    (first, at step 5 of 10), before the pack ends, so a later interrupt cannot send it back to the queue."""
    _, mems_r, _, _ = lm
    assert [i for i, _ in LM_ENDED] == [3, 0, 1, 2]
    assert all(r is mems_r[i] for i, r in LM_ENDED)  # the final results, not a snapshot that changes later


def test_a_member_that_ended_in_the_step_the_pack_stops_is_still_reported(tmp_path, one_thread):
    """Ctrl-C while the last step's second member evaluates: the first has completed in that very step, and is
    reported (a sweep stores it) before the pack stops; the interrupted one is not (its caller records it)."""

    class StopOnEvaluate(Callback):
        def on_evaluate(self, ctx, logs):
            raise KeyboardInterrupt

    cfgs = [TrainConfig(**(LM | {"steps": 2, "eval_every": 0}), rank=4, rule="alpha-r", lr=1e-3, seed=s,
                        out_dir=str(tmp_path / f"m{s}")) for s in (0, 1)]
    ended = []
    with pytest.raises(KeyboardInterrupt):
        train_members(cfgs, [[], [StopOnEvaluate()]], progress=False, on_member_end=lambda i, r: ended.append((i, r.status)))
    assert ended == [(0, "complete")]
    assert json.loads((tmp_path / "m1" / "summary.json").read_text())["status"] == "interrupted"


def test_classification_pack_equals_separate_runs_heads_included(cls):
    seps_r, mems_r, seps, mems = cls
    assert all(r.status == "complete" and r.eval_metric == "val_accuracy" for r in seps_r + mems_r)
    for sc, mc, a, b in zip(seps, mems, seps_r, mems_r):
        assert_same_run(sc, mc, a, b)
        assert_same_adapter(sc, mc)
        assert any("classifier" in k for k in _tensors(mc))  # each member saved its own head
    heads = [_tensors(mc)["base_model.model.classifier.weight"] for mc in mems]
    assert not heads[0].equal(heads[1])  # seeds 0 and 1 drew different heads, and trained them apart


def test_contrastive_pack_equals_separate_runs(tmp_path, one_thread):
    # InfoNCE per member over its own 2B-row block, at its own temperature; ranks 4/8/2 (padded), three inits,
    # seeds, learning rates and two temperatures; held-out retrieval (val_mrr) compared like any eval metric
    from test_contrastive import PAIRS, word_pairs

    base = dict(PAIRS, data=word_pairs(tmp_path / "pairs.jsonl"), batch_size=4, steps=8, eval_every=3, max_val_batches=3)
    specs = [dict(rank=4, init="kaiming", rule="lora-alpha", seed=0, lr=3e-4),
             dict(rank=8, init="A", rule="alpha-r", seed=1, lr=1e-3, temperature=0.1),
             dict(rank=2, init="B", rule="rslora", seed=2, lr=1e-3, targets=("query", "value"))]
    seps_r, mems_r, seps, mems = _pair(tmp_path, base, specs)
    assert all(r.status == "complete" and r.eval_metric == "val_mrr" for r in seps_r + mems_r)
    for sc, mc, a, b in zip(seps, mems, seps_r, mems_r):
        assert_same_run(sc, mc, a, b)
        assert_same_adapter(sc, mc)
    assert len({r.final_ema_loss for r in mems_r}) == 3  # the members trained apart: the equality is per member


def test_grad_accumulation_with_ragged_prompt_completion_batches(tmp_path, one_thread):
    # dialogues: prompt/completion pairs of varying length, loss on completions only; members' batches are padded
    # to the widest in the stack and accumulation weights differ per member (their own micro-batches' targets)
    base = dict(model="tiny-llama", data="dialogues", batch_size=2, grad_accum=2, seq_len=48, max_examples=64,
                max_val_batches=2, steps=4)
    seps_r, mems_r, seps, mems = _pair(tmp_path, base, [dict(rank=4, seed=0, lr=2e-3), dict(rank=4, init="A", seed=5, lr=1e-3)])
    for sc, mc, a, b in zip(seps, mems, seps_r, mems_r):
        assert a.status == "complete"
        assert_same_run(sc, mc, a, b)


def test_loraplus_members_equal_separate_runs(tmp_path, one_thread):
    # LoRA+ only splits a member's optimizer groups (B at ratio × lr): a pack trains it as its own run would,
    # at ratio 16 and at ratio 4 zero-padded to rank 8. (Before members clipped in the model's parameter order,
    # LoRA+'s A-then-B groups summed the grad norm in another order and member 0 drifted 1e-7 → 1e-2 in 6 steps.)
    base = dict(LM, steps=5, eval_every=2, max_examples=128)
    specs = [dict(rank=8, method="loraplus", seed=0, lr=1e-3), dict(rank=4, method="loraplus", loraplus_lr_ratio=4,
                                                                   init="A", seed=2, lr=2e-3)]
    seps_r, mems_r, seps, mems = _pair(tmp_path, base, specs)
    for sc, mc, a, b in zip(seps, mems, seps_r, mems_r):
        assert a.status == "complete"
        assert_same_run(sc, mc, a, b)
        assert_same_adapter(sc, mc)


class StopAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, ctx, logs):
        if ctx.step == self.step:
            ctx.stop_reason = f"stopped at {self.step}"


def test_a_callback_stops_one_member_as_it_would_stop_its_run(tmp_path, one_thread):
    base = dict(LM, steps=6, eval_every=0)
    sep = TrainConfig(**base, **LM_MEMBERS[0], out_dir=str(tmp_path / "sep"))
    alone = train(sep, [StopAt(2)], progress=False)
    mems = [sep.replace(out_dir=str(tmp_path / "m0")), TrainConfig(**base, **LM_MEMBERS[1], out_dir=str(tmp_path / "m1"))]
    a, b = train_members(mems, [[StopAt(2)], []], progress=False)
    assert a.message == "stopped at 2" and a.summary["steps_done"] == 2 and b.summary["steps_done"] == 6
    assert_same_run(sep, mems[0], alone, a)


def test_bf16_autocast_pack_equals_separate_runs(tmp_path, one_thread, fresh_accelerate_state):
    # precision bf16 autocasts on the CPU too: the batched LoRA's explicit casts must be autocast's. Measured
    # bitwise here; REL as for the fp32 records (module docstring: GEMMs accumulate in fp32 before the cast).
    # These runs' losses at bf16 and at fp32 differ by 1.7e-5 to 3.2e-4 relative, so a member computed at the
    # wrong precision exceeds REL.
    base = dict(LM, steps=5, eval_every=0, precision="bf16")
    seps_r, mems_r, seps, mems = _pair(tmp_path, base, LM_MEMBERS[:2])
    assert all(r.status == "complete" for r in seps_r + mems_r)
    for sc, mc in zip(seps, mems, strict=True):
        for x, y in zip(_lines(sc), _lines(mc), strict=True):
            assert x["step"] == y["step"] and {"loss", "ema_loss", "val_nll"} & x.keys() == {"loss", "ema_loss", "val_nll"} & y.keys()
            assert all(math.isclose(x[k], y[k], rel_tol=REL) for k in ("loss", "ema_loss", "val_nll") if k in x)


def test_activation_checkpointed_pack_equals_separate_checkpointed_runs(tmp_path, one_thread):
    # the base's layers recompute their forward (members' LoRA included) in the backward pass: same records
    base = dict(LM, steps=5, eval_every=0, gradient_checkpointing=True)
    seps_r, mems_r, seps, mems = _pair(tmp_path, base, LM_MEMBERS[:2])
    assert all(r.status == "complete" for r in seps_r + mems_r)
    from lorascale.train.members import build_pack

    assert build_pack(mems, quiet=True).model.get_base_model().is_gradient_checkpointing  # it recomputes, not just agrees
    for sc, mc in zip(seps, mems):
        for x, y in zip(_lines(sc), _lines(mc), strict=True):
            assert all(math.isclose(x[k], y[k], rel_tol=REL) for k in ("loss", "ema_loss", "grad_norm", "val_nll")
                       if x.get(k) is not None)  # REL: module docstring


# every per-member recipe setting away from its default: the pack must apply each member's own, as its run does
RECIPE = dict(weight_decay=0.1, beta1=0.8, beta2=0.99, eps=1e-6, grad_clip=0.05, warmup_frac=0.3, min_lr_ratio=0.0,
              ema_beta=0.5, diverge_factor=5.0, diverge_patience=2, log_every=3)


def test_members_with_their_own_recipes_equal_their_separate_runs(tmp_path, one_thread):
    specs = [LM_MEMBERS[0], dict(LM_MEMBERS[1], **RECIPE)]
    seps_r, mems_r, seps, mems = _pair(tmp_path, dict(LM, steps=8), specs)
    assert [r.status for r in mems_r] == ["complete", "complete"]
    # grad_clip 0.05 clips every logged step: a clip taken from the other member (1.0) would show
    assert all(x["grad_norm"] > RECIPE["grad_clip"] for x in _lines(seps[1]) if "grad_norm" in x)
    assert [s for s, _ in mems_r[1].ema_curve] == [3, 6, 8]  # log_every 3, and the last step
    for sc, mc, a, b in zip(seps, mems, seps_r, mems_r, strict=True):
        assert_same_run(sc, mc, a, b)


class FailOnEnd(Callback):
    def on_train_end(self, ctx, summary):
        raise RuntimeError("the callback failed")


def test_a_member_whose_end_fails_is_recorded_failed_as_its_separate_run(tmp_path, one_thread):
    base = dict(LM, steps=3, eval_every=0)
    sep = TrainConfig(**base, **LM_MEMBERS[0], out_dir=str(tmp_path / "sep"))
    with pytest.raises(RuntimeError, match="the callback failed"):
        train(sep, [FailOnEnd()], progress=False)
    mems = [sep.replace(out_dir=str(tmp_path / "m0")), TrainConfig(**base, **LM_MEMBERS[1], out_dir=str(tmp_path / "m1"))]
    ended = []
    with pytest.raises(RuntimeError, match="the callback failed"):
        train_members(mems, [[FailOnEnd()], []], progress=False, on_member_end=lambda i, r: ended.append((i, r.status)))
    summaries = [json.loads(open(f"{c.out_dir}/summary.json").read()) for c in (sep, *mems)]
    assert [s["status"] for s in summaries] == ["failed"] * 3  # the other member stops with its pack
    assert summaries[0]["message"] == summaries[1]["message"] == "RuntimeError: the callback failed"
    assert summaries[1]["steps_done"] == summaries[0]["steps_done"] == 3
    # the member that ended is reported; the one its pack's failure stopped is the caller's, as on Ctrl-C
    assert ended == [(0, "failed")]


def test_a_member_whose_folder_cannot_start_leaves_no_other_member_running(tmp_path, one_thread, monkeypatch):
    from lorascale.train.records import RunWriter

    start = RunWriter.start

    def start_or_fail(self, *args, **kwargs):
        if self.dir.name == "m1":
            raise OSError(28, "No space left on device", str(self.dir))
        return start(self, *args, **kwargs)

    monkeypatch.setattr(RunWriter, "start", start_or_fail)
    cfgs = [TrainConfig(**dict(LM, steps=3), **s, out_dir=str(tmp_path / f"m{i}")) for i, s in enumerate(LM_MEMBERS[:2])]
    with pytest.raises(OSError, match="No space left"):
        train_members(cfgs, progress=False)
    summary = json.loads(open(f"{cfgs[0].out_dir}/summary.json").read())
    assert summary["status"] == "failed" and "No space left on device" in summary["message"]
    assert not (tmp_path / "m1" / "summary.json").exists()


class InterruptAt(Callback):
    def on_step_end(self, ctx, logs):
        if ctx.step == 2:
            raise KeyboardInterrupt


def test_ctrl_c_leaves_every_running_member_interrupted(tmp_path, one_thread):
    cfgs = [TrainConfig(**dict(LM, steps=6), **s, out_dir=str(tmp_path / f"m{i}")) for i, s in enumerate(LM_MEMBERS[:2])]
    with pytest.raises(KeyboardInterrupt):
        train_members(cfgs, [[], [InterruptAt()]], progress=False)
    steps = []
    for c in cfgs:
        summary = json.loads(open(f"{c.out_dir}/summary.json").read())
        assert summary["status"] == "interrupted" and summary["steps_done"] == 2
        steps.append([json.loads(x)["step"] for x in open(f"{c.out_dir}/metrics.jsonl")])  # every line complete JSON
    # members end their step in order: member 0 logged step 2 before member 1's callback raised in its own
    assert steps == [[1, 2], [1]]


def test_a_nan_gradient_diverges_only_its_member(tmp_path, one_thread, poison_gradients_at):
    cfgs = [TrainConfig(**dict(LM, steps=6), **s, out_dir=str(tmp_path / f"m{i}")) for i, s in enumerate(LM_MEMBERS[:2])]
    alone = train(cfgs[1].replace(out_dir=str(tmp_path / "alone")), progress=False)
    # members clip in order, one call each per step: call 6 is member 0's at step 4 (of 6), with a finite loss
    poison_gradients_at(6)
    hit, other = train_members(cfgs, progress=False)
    assert hit.status == "diverged" and "gradient norm became nan at step 4" in hit.message
    assert hit.summary["steps_done"] == 3 and math.isfinite(hit.summary["final_ema_loss"])
    assert other.status == "complete" and [s for s, _ in other.ema_curve] == [s for s, _ in alone.ema_curve]
    assert [e for _, e in other.ema_curve] == pytest.approx([e for _, e in alone.ema_curve], rel=REL)  # REL: module docstring


def test_lora_dropout_trains_alone_and_a_refused_pack_writes_nothing(tmp_path):
    ok = TrainConfig(**LM, **LM_MEMBERS[0], out_dir=str(tmp_path / "a"))
    with pytest.raises(ConfigErrors) as e:
        train_members([ok, ok.replace(lora_dropout=0.05, seed=1, out_dir=str(tmp_path / "b"))], progress=False)
    assert [x.field for x in e.value.errors] == ["lora_dropout"]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_bad_packs_name_the_field(tmp_path):
    ok = TrainConfig(**LM, **LM_MEMBERS[0])
    with pytest.raises(ConfigErrors) as e:
        train_members([ok, TrainConfig(**LM, finetune="full", seed=1)], progress=False)  # no adapter settings
    assert [x.field for x in e.value.errors] == ["finetune"]
    with pytest.raises(ConfigErrors) as e:
        train_members([ok, ok.replace(batch_size=8), ok.replace(seq_len=32, grad_accum=2)], progress=False)
    assert [x.field for x in e.value.errors] == ["batch_size", "grad_accum", "seq_len"]
    with pytest.raises(ConfigErrors) as e:
        train_members([ok.replace(out_dir=str(tmp_path / "x")), ok.replace(out_dir=str(tmp_path / "x"), seed=1)], progress=False)
    assert [x.field for x in e.value.errors] == ["out_dir"]
    assert not (tmp_path / "x").exists()  # refused before anything ran
    with pytest.raises(ConfigError, match="callbacks"):
        train_members([ok, ok.replace(seed=1)], [Callback(), Callback()], progress=False)  # a flat list, not one per member
    with pytest.raises(ConfigErrors) as e:  # methods the batched engine cannot compute train alone
        train_members([ok, ok.replace(method="dora", seed=1), ok.replace(method="pissa", rule="alpha-r", seed=2)], progress=False)
    assert [x.field for x in e.value.errors] == ["method", "method"]
    assert "member 1: method dora cannot be a member" in e.value.errors[0].message


def test_saved_member_loads_in_plain_peft_with_the_in_memory_logits(tmp_path, one_thread):
    import torch
    from peft import PeftModel

    from lorascale.models import load_model
    from lorascale.train.members import build_pack

    cfgs = [TrainConfig(**dict(LM, steps=3), **s, out_dir=str(tmp_path / f"m{i}")) for i, s in enumerate(LM_MEMBERS[:3])]
    pack = build_pack(cfgs, quiet=True)
    results = train_members(cfgs, progress=False, pack=pack)
    ids = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(0))
    pack.model.eval()
    for name, r in zip(pack.names, results):
        pack.model.set_adapter(name)  # plain PEFT forward of this member, outside the stacked forward
        with torch.no_grad():
            mine = pack.model(input_ids=ids).logits
            loaded = PeftModel.from_pretrained(load_model("tiny-llama").model, r.run_dir / "adapter").eval()
            theirs = loaded(input_ids=ids).logits
        assert list(loaded.peft_config) == ["default"]
        assert torch.equal(mine, theirs)  # same tensors, same PEFT forward: bitwise
