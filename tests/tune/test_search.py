"""`lorascale tune` end to end on tiny-llama: the answer's JSON, the compute it spent, resume."""

import json
import math

import optuna
import pytest

from lorascale.cli import main
from lorascale.errors import ConfigError, ConfigErrors
from lorascale.tune import TuneRequest, tune
from lorascale.tune.halving import planned_member_steps
from lorascale.train import train
from lorascale.tune.search import planned_cost, search_space

RUN = dict(model="tiny-llama", data="shakespeare", rank=4, steps=9, batch_size=2, seq_len=32, max_examples=40,
           max_val_batches=1)


def test_search_space_starts_at_the_prior_and_stays_in_the_box():
    req = TuneRequest(**RUN, lr_fft=1e-3, candidates=12, lr_span=2.0)
    pts = search_space(req, 1e-3)
    assert pts[0] == (1e-3, 1.0)  # LoRA-α's prior: η = η_FFT, α = 1
    assert len(pts) == 12 and len(set(pts)) == 12
    assert all(1e-3 / 4 <= lr <= 1e-3 * 4 and 0.1 <= a <= 10 for lr, a in pts)  # ±2 octaves, α ∈ [0.1, 10]


def test_every_point_after_the_prior_is_scipys_scrambled_sobol_sequence():
    """Independently: scipy's scrambled Sobol' points at the run's seed, mapped log-linearly onto the box
    (dimensions in Optuna's name order: α, then η). Optuna's QMCSampler draws the first point of an empty study
    at random to learn the space; tune seeds the study with the prior so that none is."""
    from scipy.stats import qmc

    req = TuneRequest(**RUN, lr_fft=1e-3, candidates=9, lr_span=2.0)
    u = qmc.Sobol(2, scramble=True, seed=req.run.seed).random(8)
    box = [(math.log(0.1), math.log(10.0)), (math.log(1e-3 / 4), math.log(1e-3 * 4))]
    alpha, lr = ([math.exp(lo + x * (hi - lo)) for x in u[:, d]] for d, (lo, hi) in enumerate(box))
    pts = search_space(req, 1e-3)[1:]
    assert [a for _, a in pts] == pytest.approx(alpha, rel=1e-12)  # the same exp/log arithmetic: rounding only
    assert [x for x, _ in pts] == pytest.approx(lr, rel=1e-12)


@pytest.mark.parametrize("rule, prior", [("fixed-alpha", 512.0), ("rslora", 256.0)])
def test_a_lora_alpha_knobs_box_is_around_lora_alphas_default_multiplier(rule, prior):
    """fixed-alpha and rslora search PEFT's lora_alpha: unset, the prior is the lora_alpha giving LoRA-α's default
    s = C·√r/r = 256·2/4 = 128 at r = 4 (fixed: s = lora_alpha/4 → 512; rsLoRA: s = lora_alpha/2 → 256), and
    the box is [0.1, 10] times it, not α's own [0.1, 10] (s ≤ 2.5 or 5, far below any useful multiplier)."""
    req = TuneRequest(**RUN, lr_fft=1e-3, candidates=5, rule=rule)
    assert req.knob == "lora_alpha" and req.prior == pytest.approx(prior, rel=1e-12)  # √4 = 2 exactly; ×256
    assert req.alpha_box == pytest.approx((prior / 10, prior * 10), rel=1e-12)
    # 5 log-even points over two decades: prior·10^(−1, −½, 0, ½, 1), the prior itself in the middle
    pts = search_space(req, 1e-3)
    assert [lr for lr, _ in pts] == [1e-3] * 5
    assert [a for _, a in pts] == pytest.approx([prior] + [prior * 10.0**e for e in (-1, -0.5, 0.5, 1)],
                                                rel=1e-12)  # exp/log rounding


def test_a_given_lora_alpha_or_bound_is_kept():
    """The user's lora_alpha is the prior; a bound given is absolute (knob units), the other still relative."""
    mine = TuneRequest(**RUN, lr_fft=1e-3, rule="fixed-alpha", lora_alpha=32.0)
    assert mine.prior == 32.0 and mine.alpha_box == pytest.approx((3.2, 320.0), rel=1e-12)
    floor = TuneRequest(**RUN, lr_fft=1e-3, rule="rslora", alpha_min=100.0)
    assert floor.alpha_box == pytest.approx((100.0, 2560.0), rel=1e-12)
    lora_alpha_rule = TuneRequest(**RUN, lr_fft=1e-3, lora_alpha=64.0)  # LoRA-α's α: lora_alpha is not its knob
    assert lora_alpha_rule.prior == 1.0 and lora_alpha_rule.alpha_box == (0.1, 10.0)
    doubled = TuneRequest(**RUN, lr_fft=1e-3, alpha=2.0)  # a given α is the prior, as a given lora_alpha is
    assert doubled.prior == 2.0 and doubled.alpha_box == pytest.approx((0.2, 20.0), rel=1e-12)
    assert search_space(doubled, 1e-3)[0] == (1e-3, 2.0)
    with pytest.raises(ConfigErrors) as e:  # a bound past the derived other one: named, with a box that fits
        TuneRequest(**RUN, lr_fft=1e-3, rule="rslora", alpha_min=3000.0)
    (err,) = e.value.errors
    assert (err.field, err.message) == ("alpha_min", "3000 is not below the largest α searched (2560)")
    assert err.fix == "lower `alpha_min` or raise `alpha_max`, e.g. 25.6 and 2560"
    with pytest.raises(ConfigErrors) as e:  # only the top given, below the default bottom: the top is named
        TuneRequest(**RUN, lr_fft=1e-3, rule="rslora", alpha_max=20.0)
    (err,) = e.value.errors
    assert (err.field, err.message) == ("alpha_max", "20 is not above the smallest α searched, 25.6 (0.1 × the prior 256)")


def test_by_default_the_search_is_lora_alphas_alpha_path_at_lr_fft():
    pts = search_space(TuneRequest(**RUN, lr_fft=1e-3, candidates=6), 1e-3)
    # 6 log-even α over [0.1, 10]: 10^(−1 + 0.4j) = 0.1, 0.251, 0.631, 1.585, 3.98, 10; α = 1 lies midway
    # (in log) between 0.631 and 1.585, and the tie replaces the larger, so the gentler neighbour stays
    assert [lr for lr, _ in pts] == [1e-3] * 6
    assert [a for _, a in pts] == pytest.approx([1.0, 0.1, 10**-0.6, 10**-0.2, 10**0.6, 10.0], rel=1e-12)
    odd = search_space(TuneRequest(**RUN, lr_fft=1e-3, candidates=5), 1e-3)  # 0.1, 0.316, 1, 3.16, 10: 1 is on it
    assert [a for _, a in odd] == pytest.approx([1.0, 0.1, 10**-0.5, 10**0.5, 10.0], rel=1e-12)


def test_tune_answers_with_config_lr_recipe_and_compute_and_resumes(tmp_path, one_thread):
    req = TuneRequest(**RUN, lr_fft=3e-3, candidates=6, tune_dir=str(tmp_path / "t"))
    res = tune(req, progress=False)
    d = json.loads((tmp_path / "t" / "tune.json").read_text())
    assert set(d) >= {"peft_config", "lr", "recipe", "compute_fraction", "storage", "figure"}
    assert d["recipe"]["weight_decay"] == 0.01 and d["recipe"]["min_lr_ratio"] == 0.1  # μA's recipe
    assert d["peft_config"]["r"] == 4 and d["peft_config"]["task_type"] == "CAUSAL_LM"
    # LoRA-α Variant I: lora_alpha = α·C·√r (eq. 5, C = 256) with the chosen α
    assert d["peft_config"]["lora_alpha"] == pytest.approx(d["alpha"] * 256 * 2, rel=1e-9)  # float rounding only
    cands = res.search.candidates
    spent = sum(c.steps_done for c in cands)
    assert spent <= planned_member_steps(9, 6, 3, 1 / 3)  # 30 unless a member diverged
    assert sum(c.pruned_at == 3 for c in cands) == 4  # ⌈6/3⌉ = 2 go on at step 3 (none diverged at this lr)
    # the seed check: both finalists again at seed 1 (confirm_seeds = 2), 2 × 9 member-steps
    finalists = [c for c in cands if c.steps_done == 9]
    assert res.confirm is not None and [c.seed for c in res.confirm.candidates] == [1, 1]
    assert d["compute"]["confirm_member_steps"] == res.confirm.member_steps == 18
    assert d["compute"]["member_steps"] == spent + 18 == planned_cost(req, 6)  # nobody diverged at this lr
    # against the 8-rate × 3-seed grid tune replaces, each run 9 steps
    assert d["compute"]["reference_grid"] == {"learning_rates": 8, "seeds": 3, "member_steps": 8 * 3 * 9}
    assert d["compute_fraction"] == pytest.approx((spent + 18) / (8 * 3 * 9), rel=1e-9)  # float rounding only
    assert d["compute"]["search_to_the_end_member_steps"] == 6 * 9
    for f, again_at_1 in zip(sorted(finalists, key=lambda c: c.final_ema_loss), res.confirm.candidates):
        assert (again_at_1.lr, again_at_1.alpha) == (f.lr, f.alpha)
        assert f.seed_ema == [f.final_ema_loss, again_at_1.final_ema_loss]
        assert f.mean_ema == pytest.approx((f.final_ema_loss + again_at_1.final_ema_loss) / 2, rel=1e-12)
    # the answer's edges: α at the path's end (0.1 or 10, the box's own) is flagged, an inner α is not; lr_fft
    # was given, so no probe edge
    alphas = [c.alpha for c in cands]
    edge = {min(alphas): {"alpha_min"}, max(alphas): {"alpha_max"}}.get(res.search.chosen.alpha, set())
    assert {w["field"] for w in d["at_edge"]} == edge
    chosen = res.search.chosen
    # chosen on the seeds' mean, not seed 0's loss; 9 steps leave too few for a noise estimate (selection.py),
    # so the one-standard-error rule reduces to the lowest mean
    assert chosen.mean_ema == min(c.mean_ema for c in finalists)
    assert d["chosen"]["seed_ema"] == chosen.seed_ema
    # a finalist at seed 1, trained alone, ends where its seed-check member ended (tiny-llama has no dropout:
    # members are the separate runs' arithmetic; 1e-5 allows the batched kernels' summation order)
    first = res.confirm.candidates[0]
    alone = train(req.run.replace(lr=first.lr, alpha=first.alpha, lr_fft=3e-3, seed=1, save_model=False,
                                  out_dir=str(tmp_path / "alone")), progress=False)
    assert alone.final_ema_loss == pytest.approx(first.final_ema_loss, rel=1e-5)
    assert (tmp_path / "t" / "search.png").stat().st_size > 10_000
    study = optuna.load_study(study_name="tune-search", storage=res.storage)
    states = [t.state.name for t in study.trials]
    assert states.count("PRUNED") == 4 and states.count("COMPLETE") == 2

    again = tune(req, progress=False)  # resumes: the finished stages are read back, nothing trains
    assert again.search.to_dict() == res.search.to_dict() and again.confirm.to_dict() == res.confirm.to_dict()
    assert len(optuna.load_study(study_name="tune-search", storage=res.storage).trials) == 6
    assert len(optuna.load_study(study_name="tune-confirm", storage=res.storage).trials) == 2
    # another question in the same folder is refused, not answered from the old study
    with pytest.raises(ConfigError) as e:
        tune(req.model_copy(update={"run": req.run.replace(lr_fft=1e-3)}), progress=False)
    assert e.value.field == "tune_dir" and "lr_fft" in e.value.message and "new folder" in e.value.fix
    assert len(optuna.load_study(study_name="tune-search", storage=res.storage).trials) == 6  # nothing added
    with pytest.raises(ConfigError) as e:  # the same run, another set of candidates: the message says which
        tune(req.model_copy(update={"candidates": 5}), progress=False)
    assert "the stage's points" in e.value.message and "rungs" not in e.value.message


def test_candidates_split_into_even_packs_halve_as_one_group_would(tmp_path, one_thread):
    # 6 candidates, at most 4 per pack: packs of 3 + 3 (not 4 + 2), each keeping ⌈3/3⌉ = 1 at step 3, so
    # 2 finalists and the planned 6·3 + 2·6 = 30 member-steps; 4 + 2 would keep 2 + 1 and spend 36
    res = tune(TuneRequest(**RUN, lr_fft=3e-3, candidates=6, members=4, confirm_seeds=1,
                           tune_dir=str(tmp_path / "t")), progress=False)
    packs = sorted(p.name for p in (tmp_path / "t" / "search").iterdir())
    assert packs == ["pack0", "pack1"]
    assert [len(list((tmp_path / "t" / "search" / p).iterdir())) for p in packs] == [3, 3]
    cands = res.search.candidates
    assert [c.steps_done for c in cands].count(9) == 2 and sum(c.pruned_at == 3 for c in cands) == 4
    assert res.search.member_steps == planned_member_steps(9, 6, 3, 1 / 3) == 30


def test_a_stage_interrupted_midway_runs_again_on_the_next_call(tmp_path, monkeypatch, one_thread):
    """A stage stores its result only when it ends; its run folders from an interrupted attempt must not
    block the next call (each run needs a fresh folder), which trains the stage again and answers."""
    import lorascale.tune.search as search

    real = search._train_pack

    def cut_power(*a, **k):
        real(*a, **k)  # the pack's runs finish and leave their folders; the stage never records its result
        raise RuntimeError("power cut")

    monkeypatch.setattr(search, "_train_pack", cut_power)
    req = TuneRequest(**RUN, lr_fft=3e-3, candidates=3, confirm_seeds=1, tune_dir=str(tmp_path / "t"))
    with pytest.raises(RuntimeError, match="power cut"):
        tune(req, progress=False)
    cut = sum(json.loads(p.read_text())["steps_done"] for p in (tmp_path / "t" / "search").rglob("summary.json"))
    assert cut > 0
    monkeypatch.setattr(search, "_train_pack", real)
    res = tune(req, progress=False)  # before: "already holds a run; pass a new out_dir", with no such flag
    assert len(res.search.candidates) == 3 and (tmp_path / "t" / "tune.json").exists()
    import optuna

    study = optuna.load_study(study_name="tune-search", storage=f"sqlite:///{tmp_path / 't' / 'tune.db'}")
    assert len(study.trials) == 3  # the cut attempt's trials are gone: the pruner compares this attempt's alone
    # the stage's compute counts the cut attempt's steps too: this attempt's own equal the cut one's (same plan)
    assert res.search.member_steps == study.user_attrs["earlier_member_steps"] + cut == 2 * cut
    assert res.search.rerun_member_steps == cut  # kept apart, so an over-cap warning can name the cause


def test_the_over_cap_warning_names_interrupted_attempts_when_they_are_the_cause():
    from lorascale.tune.search import Candidate, StageResult, TuneResult, _over_cap_reason

    def result(rerun: int, spent: int) -> TuneResult:
        stage = StageResult("search", 9, 3, [Candidate(0, 3e-3, 1.0)], spent, 54, 0, [3], rerun)
        return TuneResult(3e-3, "given", None, stage, None, None, {}, "", None, cap_member_steps=30)

    assert _over_cap_reason(result(0, 36)).startswith("the packs were too small")  # halving alone
    assert _over_cap_reason(result(20, 50)) == ("20 of them were trained by interrupted attempts, which ran again"
                                                " from the start")  # 50 − 20 = 30: within the cap without them
    both = _over_cap_reason(result(10, 50))  # 50 − 10 = 40 > 30: halving overspent too
    assert both.startswith("10 of them were trained by interrupted attempts") and "packs were too small" in both
    old = StageResult.from_dict({k: v for k, v in result(0, 36).search.to_dict().items() if k != "rerun_member_steps"})
    assert old.rerun_member_steps == 0  # a stage stored before the field existed reads as never interrupted


def test_an_interrupted_stage_of_candidates_trained_alone_counts_its_steps(tmp_path, monkeypatch, one_thread):
    import lorascale.tune.search as search

    real = search._train_alone

    def cut_power(*a, **k):
        real(*a, **k)
        raise RuntimeError("power cut")

    monkeypatch.setattr(search, "_train_alone", cut_power)
    req = TuneRequest(**RUN, method="dora", lr_fft=3e-3, candidates=3, confirm_seeds=1, tune_dir=str(tmp_path / "t"))
    with pytest.raises(RuntimeError, match="power cut"):
        tune(req, progress=False)
    cut = sum(json.loads(p.read_text())["steps_done"] for p in (tmp_path / "t" / "search").rglob("summary.json"))
    monkeypatch.setattr(search, "_train_alone", real)
    res = tune(req, progress=False)
    assert cut > 0 and res.search.member_steps == 2 * cut  # the same plan twice: the cut attempt's steps kept


def test_a_study_stored_before_a_setting_existed_still_resumes(tmp_path, one_thread):
    import optuna

    req = TuneRequest(**RUN, lr_fft=3e-3, candidates=3, confirm_seeds=1, tune_dir=str(tmp_path / "t"))
    first = tune(req, progress=False)
    study = optuna.load_study(study_name="tune-search", storage=first.storage)
    inputs = study.user_attrs["inputs"]
    del inputs["run"]["answer_match"]  # as studies stored before the rlvr setting was added
    study.set_user_attr("inputs", inputs)
    again = tune(req, progress=False)  # its default then equals today's: the same question, read back
    assert again.search.member_steps == first.search.member_steps and again.config == first.config
    inputs["run"]["answer_match"] = "last-number"  # a value the stored study did not have is still refused
    study.set_user_attr("inputs", inputs)
    with pytest.raises(ConfigError, match="answer_match"):
        tune(req, progress=False)


def test_a_classification_answer_trains_the_head_in_plain_peft(tmp_path, one_thread):
    """The answer's peft_config, given to PEFT as is, wraps the model as lorascale trained it: LoRA on the
    planned layers and the fresh classification head trained and saved too (task_type SEQ_CLS)."""
    from peft import LoraConfig, get_peft_model

    from lorascale.models import load_model

    req = TuneRequest(**{**RUN, "model": "tiny-bert", "data": "shakespeare-genre"}, lr_fft=3e-3, candidates=3,
                      confirm_seeds=1, tune_dir=str(tmp_path / "t"))
    d = tune(req, progress=False).to_dict()
    assert d["peft_config"]["task_type"] == "SEQ_CLS"
    pm = get_peft_model(load_model("tiny-bert", "classification", num_labels=6).model, LoraConfig(**d["peft_config"]))
    trainable = {n for n, p in pm.named_parameters() if p.requires_grad}
    assert any("classifier" in n for n in trainable)  # without task_type PEFT leaves the head frozen
    assert all("lora_" in n or "classifier" in n for n in trainable)


def test_without_lr_fft_the_init_b_probe_estimates_it(tmp_path, one_thread):
    res = tune(TuneRequest(**RUN, candidates=3, tune_dir=str(tmp_path / "t")), progress=False)
    assert res.probe is not None and [c.lr for c in res.probe.candidates] == [2.0**x for x in range(-18, -7, 2)]
    assert res.lr_fft == res.probe.chosen.lr and "Init[B]" in res.lr_fft_source
    # 6 rates, rung at step 3 of 9 keeping ⌈6/3⌉ = 2: 6·3 + 2·6 = 30 (no probe rate diverges in 9 steps)
    assert res.to_dict()["compute"]["probe_member_steps"] == res.probe.member_steps == planned_member_steps(9, 6, 3, 1 / 3) == 30


def test_a_method_that_cannot_be_a_member_is_tuned_one_run_at_a_time(tmp_path, one_thread):
    """DoRA trains alone: each candidate reports its EMA loss at the rung (step 3 of 9) and Optuna's
    SuccessiveHalvingPruner cuts it unless it is within the best ⌊n/3⌋ (at least 1) of the n candidates that
    reached the rung so far, itself included (Optuna's asynchronous rule, recomputed here from the stored
    intermediate values). The probe that estimates η_FFT stays plain LoRA, as members."""
    res = tune(TuneRequest(**RUN, method="dora", candidates=4, tune_dir=str(tmp_path / "t")), progress=False)
    assert all(c.status == "complete" for c in res.probe.candidates)
    assert json.loads((tmp_path / "t" / "lr-fft" / "pack0" / "candidate00" / "config.json").read_text())["method"] == "lora"
    study = optuna.load_study(study_name="tune-search", storage=res.storage)
    seen, expected = [], []
    for t in sorted(study.trials, key=lambda t: t.number):
        v = t.intermediate_values[3]
        seen.append(v)
        keep = sorted(seen)[max(len(seen) // 3 - 1, 0)]
        expected.append("COMPLETE" if v <= keep else "PRUNED")
    assert [t.state.name for t in sorted(study.trials, key=lambda t: t.number)] == expected
    assert expected[0] == "COMPLETE" and "PRUNED" in expected  # the first goes on against nothing
    assert [c.steps_done for c in res.search.candidates] == [9 if e == "COMPLETE" else 3 for e in expected]
    confirmed = res.confirm.member_steps if res.confirm else 0
    assert res.member_steps - res.probe.member_steps - confirmed == res.search.member_steps \
        == 9 * expected.count("COMPLETE") + 3 * expected.count("PRUNED")
    assert confirmed == 9 * min(2, expected.count("COMPLETE")) * (expected.count("COMPLETE") >= 2)
    assert res.peft_config["use_dora"] is True and res.config.adapter.method == "dora"


def test_compute_caps_the_whole_plan_probe_and_seed_check_included():
    """The headline's budget: 40% of an 8-point sweep at 3 seeds of 150 steps = 9.6 runs = 1440 member-steps.
    By hand, with no rung before step 50: the probe's 6 rates cost 6·50 + 2·100 = 500, the seed check of two
    finalists 2·150 = 300, and n candidates n·50 + ⌈n/3⌉·100 (4 ≤ n ≤ 27), so 6 fit (500) and 7 do not (650)."""
    req = TuneRequest(model="tiny-llama", data="shakespeare", rank=4, steps=150, compute=9.6)
    assert planned_cost(req, 6) == 500 + 500 + 300 == 1300 and planned_cost(req, 7) == 500 + 650 + 300
    assert len(search_space(req, 1e-3)) == 6
    given = TuneRequest(model="tiny-llama", data="shakespeare", rank=4, steps=150, lr_fft=1e-4, compute=9.6)
    assert planned_cost(given, 12) == 12 * 50 + 4 * 100 + 300 <= 1440 < planned_cost(given, 13) == 13 * 50 + 5 * 100 + 300
    assert len(search_space(given, 1e-4)) == 12  # no probe to pay for


@pytest.mark.parametrize("flat, field", [
    ({"lr": 1e-3}, "lr"), ({"rule": "alpha-r"}, "rule"), ({"alpha_min": 5.0, "alpha_max": 1.0}, "alpha_min"),
    ({"candidates": 1}, "candidates"), ({"reduction": 1}, "reduction"), ({"finetune": "full"}, "finetune"),
    ({"first_rung": 1.0}, "first_rung"), ({"confirm_seeds": 0}, "confirm_seeds"), ({"confirm_top": 1}, "confirm_top"),
    ({"reduction": 4}, "first_rung"),  # the first rung T/4 comes before the default first_rung T/3: no cut ever
    ({"reduction": 2, "first_rung": 0.6}, "first_rung"),
    ({"log_every": 10}, "log_every"),  # the one-SE pick needs the loss at every step
])
def test_bad_requests_name_the_field(flat, field):
    run = {k: v for k, v in RUN.items() if k != "rank"} if flat.get("finetune") == "full" else RUN
    with pytest.raises(ConfigErrors) as e:
        TuneRequest(**{**run, **flat})
    assert field in {x.field for x in e.value.errors}


def test_epochs_and_a_rule_without_a_knob_get_tunes_own_answers():
    """`tune --epochs 1` said "steps/epochs: both are set" (the run's default steps, which the user never set);
    `tune --rule mua` said the run needs an explicit lr (tune has no lr flag), hiding "no α knob"."""
    budget = {k: v for k, v in RUN.items() if k != "steps"}
    with pytest.raises(ConfigErrors) as e:
        TuneRequest(**budget, epochs=1)
    assert [(x.field, x.fix) for x in e.value.errors] == [("epochs", "give `steps` instead of `epochs`")]
    with pytest.raises(ConfigErrors) as e:
        TuneRequest(**RUN, rule="mua")
    assert [x.field for x in e.value.errors] == ["rule"] and "has no α knob" in e.value.errors[0].message
    with pytest.raises(ConfigErrors) as e:  # with the request's other problems, all at once
        TuneRequest(**{**RUN, "rank": 0}, rule="mua", alpha_min=20.0)
    assert [x.field for x in e.value.errors] == ["rule", "rank", "alpha_min"]
    with pytest.raises(ConfigErrors) as e:  # the rule nested in a run mapping is found too
        TuneRequest(run={**RUN, "rule": "mua"})
    assert [x.field for x in e.value.errors] == ["rule"]


def test_cli_errors_name_tunes_flags_not_fields(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["tune", "--epochs", "1", "--rule", "mua", "--alpha-min", "20", "--first-rung", "0.9"]) == 2
    err = capsys.readouterr().err
    assert "error: --epochs: tune needs a step budget for its rungs; give --steps instead of --epochs" in err
    assert "error: --rule: rule mua has no α knob to search" in err
    assert "error: --alpha-min: 20 is not below the largest α searched (10); lower --alpha-min or raise --alpha-max" in err
    assert "lower --first-rung to at most 0.333" in err
    assert "both are set" not in err and "learning rate" not in err and "first_rung" not in err and "alpha_max" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_first_rung_at_one_over_the_reduction_is_allowed():
    TuneRequest(**RUN, reduction=4, first_rung=0.25)  # T/4 itself is a rung
    TuneRequest(**RUN, reduction=3, first_rung=1 / 3)  # the default, to float rounding


def test_cli_json(tmp_path, capsys, one_thread):
    argv = ["tune", "--model", "tiny-llama", "--data", "shakespeare", "--rank", "4", "--steps", "6", "--batch-size", "2",
            "--seq-len", "32", "--max-examples", "40", "--max-val-batches", "1", "--lr-fft", "3e-3", "--candidates", "3",
            "--tune-dir", str(tmp_path / "t"), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    # 3 candidates and 6 steps leave no rung: all 3 run 6 steps (18), the best 2 again at seed 1 (12); the
    # fraction is against the 8-rate × 3-seed grid of 6-step runs (144 member-steps)
    assert out["compute"]["search_to_the_end_member_steps"] == 18 and out["compute"]["confirm_member_steps"] == 12
    assert out["compute_fraction"] == pytest.approx(30 / 144, rel=1e-9)  # float rounding only


def test_the_seed_check_never_answers_with_a_finalist_that_diverged(monkeypatch, caplog):
    """The answer is chosen on the mean over seeds, and a finalist that diverged at a seed has mean +inf:
    the one-SE bound of the best (inf + error) admitted every such finalist, and the gentlest won."""
    import lorascale.tune.search as search
    from lorascale.tune.search import Candidate, StageResult, check_seeds

    def cand(n, lr, alpha, loss, status="complete"):
        return Candidate(n, lr, alpha, status=status, steps_done=9, final_ema_loss=loss,
                         curve=[(9, math.inf if loss is None else loss)])

    def stage(cands):
        return StageResult("s", 9, 3, cands, 9 * len(cands), 9 * len(cands), 0)

    req = TuneRequest(**RUN, lr_fft=1e-3, confirm_seeds=2)
    cfg = req.run.replace(lr=1e-3)
    # at seed 1: candidate 0 (the gentler) diverges, candidate 1 finishes
    monkeypatch.setattr(search, "run_stage", lambda *a, **k: stage([cand(10, 1e-3, 0.5, None, "diverged"),
                                                                    cand(11, 1e-3, 2.0, 1.0)]))
    found = stage([cand(0, 1e-3, 0.5, 1.00), cand(1, 1e-3, 2.0, 1.01)])
    check_seeds(found, cfg, req, "sqlite://", None, progress=False)
    assert found.best == 1 and found.candidates[0].mean_ema == math.inf
    # both diverge at seed 1: the search's own pick stands, and the log says so
    monkeypatch.setattr(search, "run_stage", lambda *a, **k: stage([cand(10, 1e-3, 0.5, None, "diverged"),
                                                                    cand(11, 1e-3, 2.0, None, "diverged")]))
    found = stage([cand(0, 1e-3, 0.5, 1.00), cand(1, 1e-3, 2.0, 1.01)])
    found.best = 1
    check_seeds(found, cfg, req, "sqlite://", None, progress=False)
    assert found.best == 1 and "every finalist diverged" in caplog.text


def test_the_seed_check_also_checks_the_searchs_own_pick(monkeypatch):
    """The search picked the gentlest finalist within noise (α = 0.5, EMA 1.02); the two lowest losses are
    α = 2 and 4. Checking only those two could never answer with the gentle pick, so it takes the last place."""
    import lorascale.tune.search as search
    from lorascale.tune.search import Candidate, StageResult, check_seeds

    def cand(n, alpha, loss):
        return Candidate(n, 1e-3, alpha, status="complete", steps_done=9, final_ema_loss=loss, curve=[(9, loss)])

    checked = []

    def run_stage(name, base, points, *a, **k):
        checked.extend(points)
        return StageResult("confirm", 9, 3, [cand(10 + i, a, 1.0) for i, (_, a) in enumerate(points)], 18, 18, 0)

    monkeypatch.setattr(search, "run_stage", run_stage)
    req = TuneRequest(**RUN, lr_fft=1e-3, confirm_seeds=2, confirm_top=2)
    found = StageResult("search", 9, 3, [cand(0, 0.5, 1.02), cand(1, 2.0, 1.00), cand(2, 4.0, 1.01)], 27, 27, 0)
    check_seeds(found, req.run.replace(lr=1e-3), req, "sqlite://", None, progress=False)
    assert [a for _, a in checked] == [2.0, 0.5]  # the lowest loss, then the search's pick in the last place
    # both score 1.0 at seed 1: means 1.01 (α 0.5) and 1.00 (α 2); the curves are too short for a noise
    # estimate (SE 0), so the lower mean wins; what this tests is that α = 0.5 was in the running at all
    assert found.candidates[0].seed_ema == [1.02, 1.0] and found.best == 1


def test_an_interrupted_attempt_killed_without_a_summary_counts_its_logged_steps(tmp_path):
    """SIGKILL or the OOM killer leave a member's metrics.jsonl but no summary.json: its steps still count."""
    from lorascale.tune.search import _steps_trained

    done = tmp_path / "pack0" / "candidate00"
    done.mkdir(parents=True)
    (done / "summary.json").write_text(json.dumps({"steps_done": 33}))
    (done / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, 34)))
    killed = tmp_path / "pack0" / "candidate01"
    killed.mkdir()
    (killed / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, 21))
                                          + '{"step": 21, "lo')  # the kill cut the last line
    assert _steps_trained(tmp_path) == 33 + 20


def test_the_answer_says_what_loraconfig_cannot_and_its_file_is_standard_json(tmp_path, monkeypatch):
    """Init[B] (PEFT's LoraConfig has no such draw), LoRA+ (lr is A's rate), head_lr and grad_accum are part of
    what tune trained; and a finalist that diverged at a checked seed (mean +inf) is null in tune.json, which
    Python wrote as ``Infinity`` (jq and JavaScript refuse it), and reads back as inf for the figure."""
    from pathlib import Path

    from lorascale.outputs import json_text
    from lorascale.train.config import TrainConfig
    from lorascale.tune.plots import search_info_from_dict
    from lorascale.tune.search import Candidate, StageResult, TuneResult

    cfg = TrainConfig(model="tiny-bert", data="shakespeare-genre", rule="lora-alpha", rank=4, init="B", method="loraplus",
                      grad_accum=4, lr=1e-4, lr_fft=1e-4, steps=9)
    finalist = Candidate(0, 1e-4, 1.0, "complete", 9, None, 1.0, curve=[(9, 1.0)], seed_ema=[1.0, math.inf],
                         mean_ema=math.inf)
    stage = StageResult("search", 9, 3, [finalist], 9, 9, 0)
    answer = TuneResult(1e-4, "given", None, stage, None, cfg, {"r": 4, "task_type": "SEQ_CLS"}, "sqlite://",
                        Path(tmp_path)).to_dict()
    assert (answer["init"], answer["method"], answer["loraplus_lr_ratio"]) == ("B", "loraplus", 16.0)
    assert answer["recipe"]["grad_accum"] == 4 and answer["recipe"]["head_lr"] == cfg.head_lr
    text = json_text(answer)
    assert "Infinity" not in text and "NaN" not in text
    stored = json.loads(text)  # strict: allow_nan=False wrote it
    assert stored["search"]["candidates"][0]["mean_ema"] is None
    (line,) = search_info_from_dict(stored).lines
    assert "mean over 2 seeds inf" in line.label


def test_the_seed_check_wraps_past_the_largest_seed(monkeypatch):
    """A request at seed 2³² − 1 is valid; its seed check trained at 2³², which the run's config refuses after
    the whole search had run. Seeds wrap: the next one is 0."""
    import lorascale.tune.search as search
    from lorascale.tune.search import Candidate, StageResult, check_seeds

    seen = []

    def run_stage(name, base, points, *a, seeds=(), **k):
        seen.extend(seeds)
        for s in seeds:
            base.replace(seed=s)  # what run_stage does with each: validated
        return StageResult("confirm", 9, 3, [Candidate(10 + i, 1e-3, a, status="complete", steps_done=9,
                                                       final_ema_loss=1.0, curve=[(9, 1.0)])
                                             for i, (_, a) in enumerate(points)], 18, 18, 0)

    monkeypatch.setattr(search, "run_stage", run_stage)
    req = TuneRequest(**RUN, lr_fft=1e-3, confirm_seeds=2, seed=2**32 - 1)
    cands = [Candidate(i, 1e-3, a, status="complete", steps_done=9, final_ema_loss=1.0 + i / 100, curve=[(9, 1.0)])
             for i, a in enumerate((0.5, 2.0))]
    check_seeds(StageResult("search", 9, 3, cands, 18, 18, 0), req.run.replace(lr=1e-3), req, "sqlite://", None,
                progress=False)
    assert seen == [0, 0]


@pytest.mark.parametrize("name, knob, field, fix", [
    ("lr-fft", None, "lr_fft", "give `lr_fft` (your full-finetuning learning rate) to skip the probe"),
    ("search", "alpha", "candidates", "widen the search (`alpha_min`, `alpha_max`, `candidates`) or lower `lr_fft`"),
])
def test_a_stage_where_everything_diverged_says_what_would_help(tmp_path, monkeypatch, name, knob, field, fix):
    """The probe's rates and α are fixed: widening the α box cannot help it, skipping it can."""
    import lorascale.tune.search as search
    from lorascale.tune.search import Candidate, run_stage

    def diverged(study, base, points, seeds, *rest):
        return [Candidate(i, lr, a, status="diverged", steps_done=3) for i, (lr, a) in enumerate(points)], 3 * len(points)

    monkeypatch.setattr(search, "_train_pack", diverged)
    req = TuneRequest(**RUN, lr_fft=1e-3)
    with pytest.raises(ConfigError) as e:
        run_stage(name, req.run.replace(lr=1e-3), [(1e-3, 1.0), (2e-3, 1.0), (4e-3, 1.0)], req,
                  f"sqlite:///{tmp_path / 'tune.db'}", tmp_path, knob=knob, progress=False)
    assert (e.value.field, e.value.fix) == (field, fix)
