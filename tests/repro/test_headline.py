"""`lorascale repro headline` end to end on tiny-bert: every arm, its compute, the table and the figure."""

import json
import math

import pytest

from lorascale.cli import main
from lorascale.errors import ConfigError
from lorascale.repro.headline import HeadlineRequest, run_headline
from lorascale.repro.headline_report import headline_info, headline_points


def test_headline_arms_compute_and_targets(tmp_path, one_thread, monkeypatch):
    run = dict(model="tiny-bert", data="shakespeare-genre", steps=6, batch_size=4, seq_len=32, max_examples=48,
               max_val_batches=2, rank=4, save_model=False)
    req = HeadlineRequest(run=run, seeds=2, lora_log2_lr=[-10, -8, -6], fft_log2_lr=[-12, -10], candidates=3,
                          edge_extension=0, out=str(tmp_path / "h"))  # the grids as given (extension: below)
    res = run_headline(req, progress=False)
    arms, T = res["arms"], 6
    assert arms["b"]["member_steps"] == 3 * 2 * T  # 3 rates × 2 seeds × 6 steps
    assert arms["c"]["member_steps"] == arms["c+"]["member_steps"] == 3 * 2 * T
    assert arms["e"]["member_steps"] == (2 + 1) * T  # the FFT sweep at seed 0, then the best rate at seed 1
    assert arms["a"]["member_steps"] == 0 and arms["a"]["eval_member_steps"] == 2 * T  # no search at all
    assert arms["a"]["lr"] == res["lr_fft"] == arms["e"]["lr"]  # LoRA-α trains at the FFT optimum
    # rel=1e-9: float rounding only
    assert res["targets"]["a"]["compute_fraction_of_b"] == pytest.approx(2 * T / (3 * 2 * T), rel=1e-9)
    assert res["targets"]["a"]["compute_fraction_of_b_with_e"] == pytest.approx((2 + 3) * T / (3 * 2 * T), rel=1e-9)  # + (e)'s sweep (rel: rounding only)
    assert arms["d"]["member_steps"] == res["tune"]["member_steps"] > 0
    assert res["tune"]["probe_member_steps"] > 0  # tune estimates η_FFT itself (TrainConfig's default is not "given")
    b_sweep = {round(x["lr"], 12): x["ema"] for x in arms["b"]["sweep"]}
    assert arms["b"]["lr"] == min(b_sweep, key=b_sweep.get)  # the best of the sweep on mean EMA loss
    for k in ("a", "b", "c", "c+", "d", "e"):
        assert len(arms[k]["val_loss"]) == 2 and arms[k]["eval_metric"] == "val_accuracy"
    assert [p.compute for p in headline_points(res)] == [2 * T, 36, 36, 36, res["tune"]["member_steps"], 18]
    # (b), (c) and (c+) spent the same 36: drawn 6% apart on the log axis, so none hides another
    assert [p.x for p in headline_points(res)][1:4] == pytest.approx([36, 36 * 1.06, 36 * 1.06**2], rel=1e-12)
    info = headline_info(res)
    assert info.a_with_e.compute == 5 * T and info.a_with_e.mean == info.points[0].mean  # (a) paying for (e)'s sweep
    md = (tmp_path / "h" / "headline.md").read_text()
    assert md.count("\n| (") == 6 and "Targets" in md
    gap = res["targets"]["d"]["val_loss_gap_vs_b"]  # the mean gap and the seed-std are reported apart
    assert f"better in the mean **{'yes' if gap < 0 else 'no'}** (gap {gap:+.4f}" in md
    from statistics import fmean, stdev

    from scipy import stats

    d_loss, b_loss = arms["d"]["val_loss"], arms["b"]["val_loss"]  # the gap's interval from the seeds themselves
    assert stdev(d_loss) > 0 and stdev(b_loss) > 0  # seeds differ, so the interval has a width to check
    ci = stats.ttest_ind(d_loss, b_loss, equal_var=False).confidence_interval(0.95)
    assert res["targets"]["d"]["gap_ci95"] == pytest.approx([ci.low, ci.high], rel=1e-9)  # float rounding only
    assert res["targets"]["d"]["gap_ci95"][0] <= fmean(d_loss) - fmean(b_loss) <= res["targets"]["d"]["gap_ci95"][1]
    # paired by seed (seed s of (d) against seed s of (b)): scipy's paired t-interval
    rel = stats.ttest_rel(d_loss, b_loss).confidence_interval(0.95)
    assert res["targets"]["d"]["gap_ci95_paired"] == pytest.approx([rel.low, rel.high], rel=1e-9)  # float rounding only
    lo, hi = res["targets"]["d"]["gap_ci95_paired"]
    assert f"; paired by seed [{lo:+.3f}, {hi:+.3f}]" in md
    assert (tmp_path / "h" / "headline.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "h" / "headline.json").read_text())["lr_fft"] == res["lr_fft"]
    # every arm's run timed, within this call's wall time (tune's search is not among them), +1 for rounding
    assert res["runs_untimed"] == 0 and 0 < res["run_seconds"] <= res["seconds"] + 1
    assert f"the arms' runs: {res['runs']} runs, {res['run_seconds']} s" in md
    # (d) carries tune's edge warnings into the table; the compute cap (0.4 × 6 runs) leaves 2 candidates, α = 1
    # (the prior) and 0.1 (alpha_min), so either answer is an edge: 0.1 the box's, 1 the short path's
    answer = json.loads((tmp_path / "h" / "d-tune" / "tune.json").read_text())
    # rel=1e-9: float rounding only
    assert sorted(c["alpha"] for c in answer["search"]["candidates"]) == pytest.approx([0.1, 1.0], rel=1e-9)
    assert arms["d"]["at_edge"] == answer["at_edge"]
    expected = "alpha_min" if answer["alpha"] == pytest.approx(0.1, rel=1e-9) else "candidates"  # float rounding only
    assert expected in {w["field"] for w in answer["at_edge"]}
    for w in answer["at_edge"]:
        assert f"* d's answer is at an edge of its search (`{w['field']}`): {w['message']}; {w['fix']}." in md

    # resumable: a second call reads every finished run back; an unfinished one is trained afresh
    import lorascale.train as train_mod
    import lorascale.train.members as members_mod

    summary = tmp_path / "h" / "b" / "lr-6-s1" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "status": "interrupted"}))
    calls = []
    real_pack, real_one = members_mod.train_members, train_mod.train  # packs on a GPU, one by one on a CPU
    monkeypatch.setattr(members_mod, "train_members", lambda cfgs, **kw: calls.append([c.out_dir for c in cfgs]) or real_pack(cfgs, **kw))
    monkeypatch.setattr(train_mod, "train", lambda cfg, **kw: calls.append([cfg.out_dir]) or real_one(cfg, **kw))
    again = run_headline(req, progress=False)
    assert calls == [[str(summary.parent)]]  # only the interrupted member of (b) trains; tune resumes from its study
    for k in ("a", "b", "c", "c+", "e"):
        assert again["arms"][k]["lr"] == arms[k]["lr"]
    import torch

    if torch.cuda.is_available():  # packed at first, alone when retrained, and GPU kernels are not deterministic
        assert again["arms"]["b"]["val_loss"] == pytest.approx(arms["b"]["val_loss"], abs=1e-6)
    else:
        assert again["arms"]["b"]["val_loss"] == arms["b"]["val_loss"]  # retrained: CPU-deterministic, the same float

    # a report from what has finished, training nothing: an unfinished (c) is left out; tune's answer and its
    # runs are read back as stored (tune.json, the runs' own configs)
    running = tmp_path / "h" / "c" / "lr-8-s0" / "summary.json"  # as another process's run in progress looks
    running.write_text(json.dumps({**json.loads(running.read_text()), "status": "running"}))
    calls.clear()
    part = run_headline(req.model_copy(update={"report_only": True}), progress=False)
    assert calls == [] and sorted(part["arms"]) == ["a", "b", "c+", "d", "e"] and part["missing"] == ["c"]
    assert json.loads(running.read_text())["status"] == "running"  # a report deletes nothing (it cleared it before)
    assert part["arms"]["b"]["val_loss"] == again["arms"]["b"]["val_loss"] and set(part["targets"]) == {"a", "d"}
    for key in ("val_loss", "lr", "label", "member_steps", "eval_member_steps", "at_edge"):
        assert part["arms"]["d"][key] == again["arms"]["d"][key]
    assert part["tune"] == again["tune"] and part["targets"]["d"] == again["targets"]["d"]
    md = (tmp_path / "h" / "headline.md").read_text()
    assert md.count("\n| (") == 5 and "partial report" in md and "(d) equals" in md
    # a tune answer that is not what d/ trained (rewritten since) is refused, not reported over the old runs
    answer_file = tmp_path / "h" / "d-tune" / "tune.json"
    answer = json.loads(answer_file.read_text())
    answer_file.write_text(json.dumps({**answer, "alpha": answer["alpha"] * 2}))
    with pytest.raises(ConfigError, match="would label the old runs with the new answer"):
        run_headline(req.model_copy(update={"report_only": True}), progress=False)
    # without tune's answer (a folder from before it ran) the report leaves (d) out
    (tmp_path / "h" / "d-tune" / "tune.json").unlink()
    part = run_headline(req.model_copy(update={"report_only": True}), progress=False)
    assert calls == [] and part["missing"] == ["c", "d"] and set(part["targets"]) == {"a"}


def test_a_diverged_seed_misses_the_target_and_compute_counts_steps_taken():
    from types import SimpleNamespace

    from lorascale.repro.headline import _arm, _targets
    from lorascale.repro.runs import steps_done

    def run(val, status="complete", steps=10):
        return SimpleNamespace(val_loss=val, eval_value=None, final_ema_loss=val, eval_metric="val_nll",
                               status=status, summary={"steps_done": steps, "total_steps": 10})

    b = _arm("b", "(b)", 1e-3, [run(1.00), run(1.01), run(1.02), run(1.01)], 80, [])
    a = _arm("a", "(a)", 1e-4, [run(1.00), run(1.01), run(1.02), run(None, "diverged", 4)], 0, [])
    a.eval_member_steps = 40
    t = _targets({"a": a, "b": b})["a"]
    # the three finished seeds equal (b)'s: their mean alone would meet the target
    assert t["val_loss_gap_vs_b"] == pytest.approx(1.01 - 1.01, abs=1e-12) and t["unfinished_seeds"] == 1  # rounding
    assert t["within_one_std_or_better"] is False
    a.statuses[-1] = "complete"
    assert _targets({"a": a, "b": b})["a"]["within_one_std_or_better"] is True
    # a diverged run costs the steps it took: 10 + 4, not 2 × 10
    assert steps_done([run(1.0), run(None, "diverged", 4)]) == 14


def test_the_headline_refuses_a_given_rate_each_arm_finds_its_own():
    """A given lr_fft would skip (d)'s η_FFT probe (tune reads it as given) and (d) would neither estimate
    η_FFT nor pay for it; a given lr would be ignored by every sweep. Both are refused, together."""
    from lorascale.errors import ConfigErrors

    with pytest.raises(ConfigErrors) as e:
        HeadlineRequest(lr_fft=1e-4, lr=1e-3)
    assert sorted(x.field for x in e.value.errors) == ["lr", "lr_fft"]
    assert all(x.fix == f"drop `{x.field}`" for x in e.value.errors)  # backquoted: the CLI names the flag
    assert "lr_fft" not in HeadlineRequest(model="minilm-l6").run.model_fields_set  # the default passes


def test_the_arms_own_rules_refuse_a_given_rule_or_knob_but_share_c():
    """Every arm sets its rule and starts its multiplier where its method says: a given one would be ignored."""
    from lorascale.errors import ConfigErrors

    with pytest.raises(ConfigErrors) as e:
        HeadlineRequest(rule="rslora", alpha=2.0, lora_alpha=32.0, gamma=0.5)
    assert [x.field for x in e.value.errors] == ["rule", "alpha", "lora_alpha", "gamma"]
    assert HeadlineRequest(c=512.0).run.adapter.scaling.c == 512.0  # (a) and (d) are LoRA-α at this C


def test_epochs_get_the_headlines_own_answer_and_errors_name_flags(capsys, tmp_path, monkeypatch):
    """`--epochs 1` said "steps/epochs: both are set" (against the default run's steps 150, which the user
    never set); `--lr-fft` said "drop lr_fft", a field, not this command's flag."""
    from lorascale.errors import ConfigErrors

    with pytest.raises(ConfigErrors) as e:
        HeadlineRequest(epochs=1)
    assert [(x.field, x.fix) for x in e.value.errors] == [("epochs", "give `steps` instead of `epochs`")]
    monkeypatch.chdir(tmp_path)
    assert main(["repro", "headline", "--epochs", "1", "--lr-fft", "1e-4"]) == 2
    err = capsys.readouterr().err
    assert "error: --epochs: the headline compares its arms at one step budget" in err
    assert "give --steps instead of --epochs" in err and "drop --lr-fft" in err
    assert "both are set" not in err and "lr_fft" not in err
    assert list(tmp_path.iterdir()) == []


def test_tunes_compute_leaves_out_interrupted_attempts_as_the_sweeps_do():
    """A Ctrl-C halfway through tune's search made it train 60 member-steps twice: (d)'s compute is what
    the method spends (the sweeps' interrupted runs are deleted and never counted either)."""
    from lorascale.repro.headline import _tune_arm

    answer = {"alpha": 0.1, "lr": 1e-3, "compute": {"member_steps": 924}, "probe": None,
              "search": {"rerun_member_steps": 60}, "confirm": {"rerun_member_steps": 0}}
    assert _tune_arm(answer, [], 100).member_steps == 864


def test_sweep_rates_are_listed_once_and_fractional_rates_get_their_own_folders(tmp_path):
    from lorascale.errors import ConfigErrors

    with pytest.raises(ConfigErrors) as e:
        HeadlineRequest(lora_log2_lr=[-14, -13, -14], fft_log2_lr=[-12, -12])
    assert [x.field for x in e.value.errors] == ["lora_log2_lr", "fft_log2_lr"]
    from lorascale.repro.headline import _lora_sweep
    from lorascale.train import TrainConfig

    seen = []

    def runs(cfgs):
        seen.extend(c.out_dir for c in cfgs)
        return [None] * len(cfgs)  # unfinished: the sweep stops before scoring

    _lora_sweep("b", "(b)", TrainConfig(model="tiny-bert", steps=2), [-14.5, -13.5, -13], [0], tmp_path, runs, 0)
    assert seen == [str(tmp_path / f) for f in ("lr-14.5-s0", "lr-13.5-s0", "lr-13-s0")]  # "{:+.0f}": -14, -14, -13


def test_headline_bad_input_names_the_flag(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["repro", "headline", "--seeds", "0", "--candidates", "1", "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "--seeds" in err and "--candidates" in err and "--batch-size" in err
    assert err.count("--seeds") == 1  # reported once: the request checks its own seeds (twice, worded twice, before)


def test_headline_flags_keep_the_default_budget():
    """Giving --model/--data must not reset the headline's budget to TrainConfig's defaults (a found bug:
    `--model minilm-l6` silently ran 100 steps × 8 × 128 with saved models instead of 150 × 16 × 64)."""
    req = HeadlineRequest(model="minilm-l6", data="shakespeare-genre")
    assert (req.run.steps, req.run.batch_size, req.run.seq_len, req.run.max_val_batches) == (150, 16, 64, 16)
    assert req.run.save_model is False and req.run.adapter.rank == 16
    req = HeadlineRequest(steps=7, rank=4)  # flat keys still win inside the default
    assert (req.run.steps, req.run.batch_size, req.run.adapter.rank) == (7, 16, 4)


def _fake_sweep(score, finished=lambda x: True):
    """``_swept``'s inputs over a made-up loss ``score(log2 η)`` (2 seeds per rate), recording each call."""
    from types import SimpleNamespace

    calls = []

    def configs(x):
        return [(x, s) for s in (0, 1)]

    def runs(cfgs):
        calls.append(sorted({x for x, _ in cfgs}))
        return [SimpleNamespace(final_ema_loss=score(x), status="complete") if finished(x) else None for x, _ in cfgs]

    return configs, runs, calls


@pytest.mark.parametrize("score, extension, rates, best, calls", [
    (lambda x: -x, 2, [-10, -9, -8, -7, -6], -6, [[-10, -9, -8], [-7], [-6]]),  # still falling: 2 more, then stop
    (lambda x: (x + 9) ** 2, 2, [-10, -9, -8], -9, [[-10, -9, -8]]),  # a valley inside: the grid as given
    (lambda x: x, 1, [-11, -10, -9, -8], -11, [[-10, -9, -8], [-11]]),  # best at the bottom: extends down
    (lambda x: -x if x <= -8 else math.inf, 2, [-10, -9, -8, -7], -8, [[-10, -9, -8], [-7]]),  # the next diverged
    (lambda x: -x, 0, [-10, -9, -8], -8, [[-10, -9, -8]]),  # extension 0: the grid as given, edge and all
])
def test_a_sweep_goes_past_its_edge_while_its_best_lies_there(score, extension, rates, best, calls):
    from lorascale.repro.headline import _swept

    configs, runs, seen = _fake_sweep(score)
    by_lr, scores, got = _swept([-10, -9, -8], configs, runs, extension)
    assert scores == {x: score(x) for x in rates}  # the mean over both seeds of one made-up loss
    assert list(by_lr) == rates and got == best and seen == calls
    assert all(len(rs) == 2 for rs in by_lr.values())  # every rate at every seed


def test_report_only_keeps_an_unfinished_extension_out_and_an_unfinished_grid_unreported():
    from lorascale.repro.headline import _swept

    configs, runs, _ = _fake_sweep(lambda x: -x, finished=lambda x: x <= -8)  # -7 was never trained
    by_lr, _, best = _swept([-10, -9, -8], configs, runs, 2)
    assert list(by_lr) == [-10, -9, -8] and best == -8
    configs, runs, _ = _fake_sweep(lambda x: -x, finished=lambda x: x != -9)
    assert _swept([-10, -9, -8], configs, runs, 2) is None


def test_the_report_names_the_rates_a_sweep_added():
    from lorascale.repro.headline_report import _extension

    result = {"request": {"lora_log2_lr": [-10, -9, -8], "fft_log2_lr": [-12, -11, -10]},
              "arms": {"b": {"sweep": [{"lr": 2.0**x} for x in (-10, -9, -8, -7, -6)]},
                       "e": {"sweep": [{"lr": 2.0**x} for x in (-13, -12, -11, -10)]},
                       "c": {"sweep": [{"lr": 2.0**x} for x in (-10, -9, -8)]}}}
    assert _extension(result, "b") == [-7, -6] and _extension(result, "e") == [-13] and _extension(result, "c") == []
