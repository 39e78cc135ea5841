"""`lorascale repro compare`: LoRA-α's Table 1/2 protocol on tiny models, its configs, verdicts and resume."""

import json
import statistics

import pytest
import scipy.stats

from lorascale.cli import main
from lorascale.repro.compare import CompareRequest, gap_verdict, method_configs, run_compare, verdict
from lorascale.repro.compare_report import compare_rows
from lorascale.repro.compare_setup import TASKS


def test_each_method_sweeps_its_own_knob(tmp_path):
    req = CompareRequest(tasks=["tiny-lm"], seeds=2, rank=4, sweep_log2=[-1, 0, 1])
    base = TASKS["tiny-lm"].base_lr
    ten = {(x, s): c for x, s, c in method_configs(req, "tiny-lm", "lora-10x", tmp_path)}
    assert len(ten) == 6 and ten[(1.0, 1)].lr == pytest.approx(base * 10 * 2, rel=1e-12)  # 10× LR, then ×2 by the sweep (rel: rounding only)
    assert ten[(1.0, 1)].seed == 1 and ten[(1.0, 1)].adapter.scaling.rule == "alpha-r" and ten[(1.0, 1)].adapter.rank == 4
    la = {x: c for x, s, c in method_configs(req, "tiny-lm", "lora-alpha", tmp_path) if s == 0}
    assert [la[x].adapter.scaling.alpha for x in (-1.0, 0.0, 1.0)] == [0.5, 1.0, 2.0]  # LoRA-α sweeps α ...
    assert {la[x].lr for x in la} == {base}  # ... at the base learning rate
    fft = method_configs(req, "tiny-lm", "fft", tmp_path)[0][2]
    assert fft.finetune == "full" and fft.lr == pytest.approx(base / 2, rel=1e-9)  # float rounding only
    pissa = method_configs(req, "tiny-lm", "pissa", tmp_path)[2][2]
    assert pissa.adapter.method == "pissa" and pissa.lr == base  # every method at the same base rate
    dirs = {c.out_dir for m in ("lora", "fft", "pissa") for _, _, c in method_configs(req, "tiny-lm", m, tmp_path)}
    assert len(dirs) == 18  # one folder per run


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_builds_valid_configs_on_known_data(task, tmp_path):
    """A typo in compare_setup (a dataset, a setting) fails here, not hours into `repro compare`."""
    from lorascale.data import BUILTIN
    from lorascale.rlvr import PROBLEM_SETS

    req = CompareRequest(tasks=[task], seeds=1, rank=8, sweep_log2=[0])
    cfg = method_configs(req, task, "lora", tmp_path)[0][2]
    assert cfg.data == TASKS[task].run["data"] and cfg.data in {*BUILTIN, *PROBLEM_SETS}
    assert cfg.lr == TASKS[task].base_lr and cfg.steps == TASKS[task].run["steps"]


@pytest.mark.parametrize("ci, noise, expected", [
    ((0.01, 0.2), 0.5, "win"), ((-0.2, -0.01), 0.5, "lose"),  # an interval clear of 0 decides, whatever the noise
    ((-0.02, 0.03), 0.03, "tie"), ((-0.02, 0.031), 0.03, "inconclusive"),  # spans 0: inside ± noise or not
    ((0.0, 0.0), 0.0, "tie"),  # every seed of both agreed exactly
    ((0.01, 0.01), 0.0, "inconclusive"), ((-0.01, -0.01), 0.5, "inconclusive"),  # no spread seen: nothing claimed
    (None, 0.0, "inconclusive"), (None, 1.0, "inconclusive")])  # fewer than 2 seeds: nothing to read
def test_gap_verdict_thresholds(ci, noise, expected):
    assert gap_verdict(ci, noise) == expected


def test_verdict_reads_the_paired_interval():
    # paired differences (LoRA-α − other) and their 95% intervals, t₀.₉₇₅(2) = 4.302653 (scipy), half = t·sd/√3:
    # lora 0.10, 0.09, 0.11: sd 0.01, [0.0752, 0.1248] → win;
    # dora 0.00, 0.00, 0.01: mean 0.00333, sd 0.005774, [−0.0110, +0.0177], inside ± dora's std 0.02517 → tie;
    # pissa 0.10, 0.00, −0.01: mean 0.03, sd 0.06083, [−0.121, +0.181] → inconclusive (Welch's would too);
    # fft −0.15, −0.14, −0.15 → lose
    mine = {"mean": 0.80, "std": 0.02, "n": 3, "by_seed": {"0": 0.80, "1": 0.82, "2": 0.78}}
    rows = {"lora-alpha": {"base": mine, "tuned": mine}}
    for m, vals in {"lora": (0.70, 0.73, 0.67), "dora": (0.80, 0.82, 0.77), "pissa": (0.70, 0.82, 0.79),
                    "fft": (0.95, 0.96, 0.93)}.items():
        rows[m] = {"tuned": {"mean": statistics.fmean(vals), "std": statistics.stdev(vals), "n": 3,
                             "by_seed": {str(i): v for i, v in enumerate(vals)}}}
    v = verdict(rows, higher=True)
    assert {m: d["verdict"] for m, d in v.items()} == {"lora": "win", "dora": "tie", "pissa": "inconclusive",
                                                       "fft": "lose"}
    assert v["dora"]["noise"] == pytest.approx(0.0251661, abs=1e-7)  # dora's std, > LoRA-α's 0.02; 7-digit constant
    half = 4.302653 * 0.01 / 3  # t · sd/√3 with sd = 0.01/√3
    assert v["dora"]["ci95_paired"] == pytest.approx([0.01 / 3 - half, 0.01 / 3 + half], abs=1e-7)  # t to 7 digits
    assert verdict(rows, higher=False)["lora"]["verdict"] == "lose"  # for a loss, higher is worse


def test_verdict_falls_back_to_welch_without_per_seed_values():
    rows = {"lora-alpha": {"base": {"mean": 0.80, "std": 0.02}},
            "lora": {"tuned": {"mean": 0.70, "std": 0.03}}}
    rows["lora-alpha"]["tuned"] = rows["lora-alpha"]["base"]
    v = verdict(rows, higher=True)
    # rel=1e-9: float rounding only
    assert v["lora"]["gap"] == pytest.approx(0.10, rel=1e-9) and v["lora"]["noise"] == pytest.approx(0.03, rel=1e-9)
    assert v["lora"]["ci95"] is None and v["lora"]["verdict"] == "inconclusive"  # no seed counts: no interval
    for r in rows.values():
        for p in r.values():
            p["n"] = 3
    # Welch, 3 + 3 seeds: LoRA-α 0.80 ± 0.02 against LoRA 0.70 ± 0.03: SE = √((0.0004 + 0.0009)/3) = 0.020817,
    # df = SE⁴ / ((0.0004/3)² / 2 + (0.0009/3)² / 2) = 3.4845, t₀.₉₇₅(3.4845) = 2.94617 (scipy)
    ci = verdict(rows, higher=True)["lora"]["ci95"]
    assert verdict(rows, higher=True)["lora"]["verdict"] == "win"  # Welch's interval, clear of 0
    assert ci == pytest.approx([0.10 - 2.94617 * 0.0208167, 0.10 + 2.94617 * 0.0208167], abs=1e-6)  # 6-digit constants
    flipped = verdict(rows, higher=False)["lora"]["ci95"]
    assert flipped == pytest.approx([-ci[1], -ci[0]], rel=1e-12)  # for a loss the gap and its interval change sign
    assert verdict(rows, higher=True)["lora"]["ci95_paired"] is None  # points stored without per-seed values


def test_a_seed_that_diverged_is_the_worst_outcome_not_a_missing_one():
    # LoRA-α's finished seeds beat LoRA's by 0.05 each (paired CI clear of 0), but its seed 3 diverged
    mine = {"mean": 0.8117, "std": 0.0104, "n": 3, "by_seed": {"0": 0.80, "1": 0.815, "2": 0.82, "3": None},
            "statuses": ["complete", "complete", "complete", "diverged"]}
    other = {"mean": 0.76, "std": 0.0082, "n": 4, "by_seed": {"0": 0.75, "1": 0.76, "2": 0.77, "3": 0.76},
             "statuses": ["complete"] * 4}
    rows = {"lora-alpha": {"base": mine, "tuned": mine}, "lora": {"tuned": other}}
    v = verdict(rows, higher=True)["lora"]
    assert v["ci95_paired"][0] > 0  # the finished seeds alone would say win
    assert v["verdict"] == "lose" and v["unfinished"] == {"lora-alpha": 1, "lora": 0}
    other["statuses"][1] = "diverged"
    assert verdict(rows, higher=True)["lora"]["verdict"] == "inconclusive"  # both failed somewhere
    mine["statuses"][3] = "complete"
    assert verdict(rows, higher=True)["lora"]["verdict"] == "win"  # only the baseline failed a seed


def test_a_side_none_of_whose_seeds_finished_loses_and_the_report_says_so():
    from lorascale.repro.compare_report import _gap_text, _unfinished_text

    diverged = {"mean": None, "std": None, "n": 0, "by_seed": {"0": None, "1": None, "2": None},
                "statuses": ["diverged"] * 3}
    done = {"mean": 0.76, "std": 0.01, "n": 3, "by_seed": {"0": 0.75, "1": 0.76, "2": 0.77}, "statuses": ["complete"] * 3}
    never_ran = {"mean": None, "std": None, "n": 0, "by_seed": {}, "statuses": []}
    rows = {"lora-alpha": {"base": diverged, "tuned": diverged}, "lora": {"tuned": done}, "dora": {"tuned": never_ran}}
    v = verdict(rows, higher=True)
    assert set(v) == {"lora"}  # a point with no stored run is not compared
    assert (v["lora"]["verdict"], v["lora"]["gap"], v["lora"]["unfinished"]) == ("lose", None, {"lora-alpha": 3, "lora": 0})
    assert _gap_text(v["lora"]) + _unfinished_text(v["lora"]) == "no held-out value to compare; not finished: lora-alpha 3 seeds"
    rows = {"lora-alpha": {"base": done, "tuned": done}, "lora": {"tuned": diverged}}
    assert verdict(rows, higher=False)["lora"]["verdict"] == "win"
    rows = {"lora-alpha": {"base": diverged, "tuned": diverged}, "lora": {"tuned": diverged}}
    assert verdict(rows, higher=False)["lora"]["verdict"] == "inconclusive"


def test_verdict_pairs_the_seeds_both_points_ran():
    # differences by seed 0.10, 0.09, 0.11: mean 0.10, sd 0.01, t₀.₉₇₅(2) = 4.302653 (scipy):
    # half-width 4.302653 · 0.01 / √3 = 0.0248414; seed 3 ran for LoRA-α only and is left out
    mine = {"mean": 0.80, "std": 0.02, "n": 4, "by_seed": {"0": 0.80, "1": 0.82, "2": 0.78, "3": 0.5}}
    other = {"mean": 0.70, "std": 0.03, "n": 3, "by_seed": {"0": 0.70, "1": 0.73, "2": 0.67}}
    rows = {"lora-alpha": {"base": mine, "tuned": mine}, "lora": {"tuned": other}}
    assert verdict(rows, higher=True)["lora"]["ci95_paired"] == pytest.approx([0.10 - 0.0248414, 0.10 + 0.0248414],
                                                                            abs=1e-6)  # 6-digit constant
    lower = verdict(rows, higher=False)["lora"]["ci95_paired"]  # a loss: LoRA-α's higher values are worse
    assert lower == pytest.approx([-0.10 - 0.0248414, -0.10 + 0.0248414], abs=1e-6)


def test_compare_end_to_end_and_resume(tmp_path, monkeypatch, one_thread):
    req = CompareRequest(tasks=["tiny-lm"], methods=["lora", "pissa", "lora-alpha", "fft"], seeds=2, rank=4,
                         sweep_log2=[-1, 0], out=str(tmp_path / "c"))
    res = run_compare(req, progress=False)
    task = res["tasks"]["tiny-lm"]
    assert task["metric"] == "val_nll" and task["higher_is_better"] is False
    for m, row in task["methods"].items():
        assert row["runs"] == 4 and row["member_steps"] == 4 * 6  # 2 multipliers × 2 seeds × 6 steps
        best = min(row["sweep"], key=lambda p: (p["mean_ema"], abs(p["log2_mult"])))
        assert row["tuned"]["log2_mult"] == best["log2_mult"]  # the asterisk: the best mean EMA over seeds
        assert row["base"]["n"] == 2 and row["base"]["statuses"] == ["complete", "complete"]
    assert set(task["verdict"]) == {"lora", "pissa", "fft"}
    mine = task["methods"]["lora-alpha"]["base"]["by_seed"]
    for m, d in task["verdict"].items():  # paired by seed: scipy's paired t interval of other − LoRA-α (a loss)
        theirs = task["methods"][m]["tuned"]["by_seed"]
        assert set(theirs) == set(mine) == {"0", "1"}
        ci = scipy.stats.ttest_rel([theirs[s] for s in "01"], [mine[s] for s in "01"]).confidence_interval()
        assert d["ci95_paired"] == pytest.approx([ci.low, ci.high], rel=1e-9, abs=1e-12)  # float rounding only
    assert len(compare_rows(res)) == 4
    md = (tmp_path / "c" / "compare.md").read_text()
    assert md.count("\n| ") == 10 and "LoRA-α (Variant I, α = 1)" in md  # 2 tables: header + 4 methods (rule: "|---")
    for row in task["methods"].values():  # the task's metric read back from metrics.jsonl equals the summary's
        held = row["base"]["held_out"]
        assert held["val_nll"]["mean"] == pytest.approx(row["base"]["mean"], rel=1e-12) and "val_loss" in held
    assert "Every held-out metric at the base point, tiny-llama, Shakespeare LM:" in md
    assert json.loads((tmp_path / "c" / "compare.json").read_text())["tasks"]["tiny-lm"]["methods"]["lora"]["runs"] == 4

    import lorascale.train as train_mod
    import lorascale.train.members as members_mod

    monkeypatch.setattr(members_mod, "train_members", lambda *a, **k: pytest.fail("a finished member trained again"))
    monkeypatch.setattr(train_mod, "train", lambda *a, **k: pytest.fail("a finished run trained again"))
    again = run_compare(req, progress=False)
    assert again["tasks"]["tiny-lm"]["methods"] == task["methods"]
    # the runs' own training time is read back with them: the same, though this call trained nothing; it
    # fits inside the first call's wall time (no pack counted once per member), +1 for the rounding to seconds
    first, second = (r["tasks"]["tiny-lm"] for r in (res, again))
    assert (second["runs"], second["runs_untimed"], second["run_seconds"]) == (16, 0, first["run_seconds"])
    assert 0 < first["run_seconds"] <= res["seconds"] + 1
    assert f"tiny-llama, Shakespeare LM: 16 runs, {first['run_seconds']} s" in (tmp_path / "c" / "compare.md").read_text()


def test_compare_bad_input_names_the_flags(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["repro", "compare", "--tasks", "glue", "--methods", "lora", "loram", "--sweep-log2", "1", "2"]) == 2
    err = capsys.readouterr().err
    assert "--tasks" in err and "glue" in err and "--methods" in err and "loram" in err and "--sweep-log2" in err
    assert "Traceback" not in err and not list(tmp_path.iterdir())  # nothing written


def test_a_table_of_base_points_claims_no_tuned_point():
    point = {"mean": 0.5, "std": 0.01, "n": 3, "statuses": ["complete"] * 3}
    row = {"label": "LoRA", "sweeps": "lr", "base": {**point, "log2_mult": 0.0}, "tuned": {**point, "log2_mult": 0.0}}
    result = {"request": {"sweep_log2": [0.0]}, "tasks": {"t": {"methods": {"lora": row}}}}
    assert compare_rows(result) == [["LoRA", "0.5 ± 0.01"]]
    tuned = {**row, "tuned": {**point, "mean": 0.4, "log2_mult": 1.0}}
    swept = {"request": {"sweep_log2": [0.0, 1.0]}, "tasks": {"t": {"methods": {"lora": tuned}}}}
    assert compare_rows(swept) == [["LoRA", "0.5 ± 0.01 / 0.4 ± 0.01* (η×2)"]]



def test_held_out_metrics_come_from_the_last_evaluation(tmp_path):
    from types import SimpleNamespace

    from lorascale.repro.runs import held_out_metrics

    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 1, "loss": 2.0}\n{"step": 5, "val_loss": 2.5, "val_mrr": 0.4, "val_recall_at_1": 0.25}\n'
        '{"step": 9, "loss": 1.5}\n{"step": 10, "val_loss": 2.2, "val_mrr": 0.5, "val_recall_at_1": NaN}\n')
    run = SimpleNamespace(run_dir=tmp_path, summary={"val_mrr": 0.9, "val_loss": 9.0})
    assert held_out_metrics(run) == {"val_loss": 2.2, "val_mrr": 0.5}  # the last evaluation; NaN dropped
    gone = SimpleNamespace(run_dir=tmp_path / "missing", summary={"eval_metric": "val_mrr", "val_mrr": 0.9, "val_loss": None})
    assert held_out_metrics(gone) == {"val_mrr": 0.9}  # no log: the summary's metrics


def test_held_out_table_lists_every_metric_of_each_method():
    from lorascale.repro.compare_report import held_out_tables

    def point(mrr, r1):
        return {"held_out": {"val_mrr": {"mean": mrr, "std": 0.01}, "val_recall_at_1": {"mean": r1, "std": 0.02}}}
    methods = {"lora": {"label": "LoRA", "base": point(0.6, 0.5)}, "fft": {"label": "FFT", "base": {"held_out": {}}}}
    lines = held_out_tables({"tasks": {"p": {"label": "pairs", "methods": methods}}})
    assert lines == ["", "Every held-out metric at the base point, pairs:", "",
                     "| method | val_mrr ↑ | val_recall_at_1 ↑ |", "|---|---|---|",
                         "| LoRA | 0.6 ± 0.01 | 0.5 ± 0.02 |", "| FFT | — | — |"]
    assert held_out_tables({"tasks": {"p": {"label": "pairs", "methods": {"fft": methods["fft"]}}}}) == []
