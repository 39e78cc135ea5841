"""`lorascale tune` end to end on tiny-llama: the answer's JSON, the compute it spent, resume."""

import json

import optuna
import pytest

from lorascale.cli import main
from lorascale.errors import ConfigError, ConfigErrors
from lorascale.tune import TuneRequest, tune
from lorascale.tune.halving import planned_member_steps
from lorascale.tune.search import search_space

RUN = dict(model="tiny-llama", data="shakespeare", rank=4, steps=9, batch_size=2, seq_len=32, max_examples=40,
           max_val_batches=1)


def test_search_space_starts_at_the_prior_and_stays_in_the_box():
    req = TuneRequest(**RUN, lr_fft=1e-3, candidates=12)
    pts = search_space(req, 1e-3)
    assert pts[0] == (1e-3, 1.0)  # LoRA-α's prior: η = η_FFT, α = 1
    assert len(pts) == 12 and len(set(pts)) == 12
    assert all(1e-3 / 4 <= lr <= 1e-3 * 4 and 0.1 <= a <= 10 for lr, a in pts)  # ±2 octaves, α ∈ [0.1, 10]


def test_tune_answers_with_config_lr_recipe_and_compute_and_resumes(tmp_path, one_thread):
    req = TuneRequest(**RUN, lr_fft=3e-3, candidates=6, tune_dir=str(tmp_path / "t"))
    res = tune(req, progress=False)
    d = json.loads((tmp_path / "t" / "tune.json").read_text())
    assert set(d) >= {"peft_config", "lr", "recipe", "compute_fraction", "storage", "figure"}
    assert d["recipe"]["weight_decay"] == 0.01 and d["recipe"]["min_lr_ratio"] == 0.1  # μA's recipe
    assert d["peft_config"]["r"] == 4
    # LoRA-α Variant I: lora_alpha = α·C·√r (eq. 5, C = 256) with the chosen α
    assert d["peft_config"]["lora_alpha"] == pytest.approx(d["alpha"] * 256 * 2)
    cands = res.search.candidates
    spent = sum(c.steps_done for c in cands)
    assert d["compute"]["member_steps"] == spent <= planned_member_steps(9, 6, 3)  # 30 unless a member diverged
    assert d["compute_fraction"] == pytest.approx(spent / (6 * 9))
    assert sum(c.pruned_at == 3 for c in cands) == 4  # ⌈6/3⌉ = 2 go on at step 3 (none diverged at this lr)
    chosen = res.search.chosen
    assert chosen.steps_done == 9 and chosen.final_ema_loss == min(c.final_ema_loss for c in cands if c.steps_done == 9)
    assert (tmp_path / "t" / "search.png").stat().st_size > 10_000
    study = optuna.load_study(study_name="tune-search", storage=res.storage)
    states = [t.state.name for t in study.trials]
    assert states.count("PRUNED") == 4 and states.count("COMPLETE") == 2

    again = tune(req, progress=False)  # resumes: the finished stage is read back, nothing trains
    assert again.search.to_dict() == res.search.to_dict()
    assert len(optuna.load_study(study_name="tune-search", storage=res.storage).trials) == 6
    # another question in the same folder is refused, not answered from the old study
    with pytest.raises(ConfigError) as e:
        tune(req.model_copy(update={"run": req.run.replace(lr_fft=1e-3)}), progress=False)
    assert e.value.field == "tune_dir" and "lr_fft" in e.value.message and "new folder" in e.value.fix
    assert len(optuna.load_study(study_name="tune-search", storage=res.storage).trials) == 6  # nothing added


def test_without_lr_fft_the_init_b_probe_estimates_it(tmp_path, one_thread):
    res = tune(TuneRequest(**RUN, candidates=3, tune_dir=str(tmp_path / "t")), progress=False)
    assert res.probe is not None and len(res.probe.candidates) == 11  # log2 η ∈ [−18, −8]
    assert res.lr_fft == res.probe.chosen.lr and "Init[B]" in res.lr_fft_source
    assert res.to_dict()["compute"]["probe_member_steps"] == res.probe.member_steps > 0


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
    assert res.member_steps - res.probe.member_steps == res.search.member_steps == 9 * expected.count("COMPLETE") + 3 * expected.count("PRUNED")
    assert res.peft_config["use_dora"] is True and res.config.adapter.method == "dora"


@pytest.mark.parametrize("flat, field", [
    ({"lr": 1e-3}, "lr"), ({"rule": "alpha-r"}, "rule"), ({"alpha_min": 5.0, "alpha_max": 1.0}, "alpha_min"),
    ({"candidates": 1}, "candidates"), ({"reduction": 1}, "reduction"), ({"finetune": "full"}, "finetune"),
])
def test_bad_requests_name_the_field(flat, field):
    run = {k: v for k, v in RUN.items() if k != "rank"} if flat.get("finetune") == "full" else RUN
    with pytest.raises(ConfigErrors) as e:
        TuneRequest(**{**run, **flat})
    assert field in {x.field for x in e.value.errors}


def test_cli_json(tmp_path, capsys, one_thread):
    argv = ["tune", "--model", "tiny-llama", "--data", "shakespeare", "--rank", "4", "--steps", "6", "--batch-size", "2",
            "--seq-len", "32", "--max-examples", "40", "--max-val-batches", "1", "--lr-fft", "3e-3", "--candidates", "3",
            "--tune-dir", str(tmp_path / "t"), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["compute"]["full_grid_member_steps"] == 18 and 0 < out["compute_fraction"] <= 1
