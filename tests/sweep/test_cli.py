"""`lorascale sweep | fit | report` through the command table: output values and exit codes.

The end-to-end test runs the real `train` on a four-point tiny grid in about 7–13 s, nearly all of
it the first run's imports and model build."""

import json
import math
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState
from sweep_fakes import BASE

from lorascale.cli import main
from lorascale.sweep.storage import SweepStore


CONFIGS = Path(__file__).resolve().parents[2] / "configs"
E2E_BUDGET = {"steps": 10, "batch_size": 2, "seq_len": 32, "max_examples": 100, "max_val_batches": 1}


def tiny_spec(tmp_path):
    """configs/sweep-tiny.yaml reduced to 4 points: Init[A] α=1 at r = 4 and FFT, two learning rates."""
    d = yaml.safe_load((CONFIGS / "sweep-tiny.yaml").read_text())
    d["name"] = "cli"
    d["base"].update(E2E_BUDGET)
    g = d["grid"]
    g.update(configs=[g["configs"][0], g["configs"][3]], ranks=[4], log2_lr=[-8, -6], seeds=[0])
    del d["paths"]
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(d, allow_unicode=True))
    return p


def write_spec(tmp_path, **over):
    d = {"name": "cli", "base": {**BASE, **E2E_BUDGET},
         "grid": {"configs": [{"name": "A1", "rule": "mua", "init": "A", "gamma": 0}, {"name": "FFT", "finetune": "full"}],
                  "ranks": [4], "log2_lr": [-8, -6], "seeds": [0]}}
    d.update(over)
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(d, allow_unicode=True))
    return p


def test_bad_spec_exits_2_listing_every_error_and_stores_nothing(tmp_path, capsys):
    spec = write_spec(tmp_path, base={"model": "tiny-llama", "lr": 1e-3, "steps": 0},
                      grid={"configs": [], "ranks": [4], "log2_lr": [-8]})
    assert main(["sweep", str(spec), "--workers", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert sorted(line.split(": ")[2] for line in err) == ["--workers", "SPEC.yaml key base.lr", "SPEC.yaml key grid.configs"]  # all at once
    assert not (tmp_path / "spec.db").exists()  # nothing stored, not even an empty database


def test_missing_model_or_data_and_negative_seeds_are_refused_before_storing(tmp_path, capsys):
    spec = write_spec(tmp_path)
    d = yaml.safe_load(spec.read_text())
    d["base"]["model"] = "no-such-model"
    d["grid"]["configs"][0]["data"] = str(tmp_path / "missing.jsonl")
    spec.write_text(yaml.safe_dump(d, allow_unicode=True))
    assert main(["sweep", str(spec), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "base.model: unknown model 'no-such-model'" in err
    assert f"grid.configs[0].data: {tmp_path / 'missing.jsonl'} does not exist" in err
    assert "Traceback" not in err and not (tmp_path / "spec.db").exists()  # nothing stored
    assert main(["sweep", str(spec), "--dry-run"]) == 2  # a dry run checks them too
    d = yaml.safe_load(write_spec(tmp_path).read_text())
    d["grid"]["configs"][1]["seq_len"] = 1024  # every trial of it would fail at its first forward
    spec.write_text(yaml.safe_dump(d, allow_unicode=True))
    assert main(["sweep", str(spec), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "grid.configs[1].seq_len: 1024 tokens exceed tiny-llama's 512 positions" in err and "use `seq_len` 512" in err
    assert not (tmp_path / "spec.db").exists()
    d = yaml.safe_load(write_spec(tmp_path).read_text())
    d["grid"]["seeds"] = [-1]
    spec.write_text(yaml.safe_dump(d, allow_unicode=True))
    assert main(["sweep", str(spec), "--quiet"]) == 2
    assert "grid.seeds[0]: must be ≥ 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "spec.db").exists()


def test_ray_backend_without_ray_stores_nothing(tmp_path, capsys, without_ray):
    spec = write_spec(tmp_path)
    assert main(["sweep", str(spec), "--backend", "ray", "--quiet"]) == 2
    assert "--backend: ray is not installed" in capsys.readouterr().err
    assert not (tmp_path / "spec.db").exists()  # no study, no spec, no WAITING trial


def test_another_spec_under_the_same_study_name_needs_extend_study(tmp_path, capsys):
    import sweep_fakes as F

    from lorascale.sweep.executors import run_sweep
    from lorascale.sweep.spec import load_spec

    spec = write_spec(tmp_path)
    url = f"sqlite:///{tmp_path / 'spec.db'}"
    run_sweep(load_spec(spec), url, objective=F.objective, progress=False)
    before = [(t.number, t.state) for t in SweepStore.open(url, "cli").trials()]
    d = yaml.safe_load(spec.read_text())
    d["grid"]["log2_lr"] = [-8, -7]  # same name, two points the study does not hold
    spec.write_text(yaml.safe_dump(d, allow_unicode=True))
    assert main(["sweep", str(spec), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "study 'cli'" in err and "holds 4 points of another spec" in err and "--extend-study" in err
    assert main(["sweep", str(spec), "--dry-run"]) == 2  # the dry run refuses what the sweep would refuse
    assert "holds 4 points of another spec" in capsys.readouterr().err
    assert main(["sweep", str(spec), "--dry-run", "--extend-study"]) == 0
    assert "4 points, 2 done, 0 queued or running, 2 to enqueue" in capsys.readouterr().out  # the new spec's points
    assert [(t.number, t.state) for t in SweepStore.open(url, "cli").trials()] == before  # nothing added


def test_end_of_sweep_summary_counts_points_not_duplicate_trials(tmp_path, capsys):
    import optuna
    import sweep_fakes as F

    from lorascale.sweep.executors import run_sweep
    from lorascale.sweep.spec import load_spec

    spec = write_spec(tmp_path)
    url = f"sqlite:///{tmp_path / 'spec.db'}"
    run_sweep(load_spec(spec), url, objective=F.objective, progress=False)
    store = SweepStore.open(url, "cli", "write")
    first = store.trials()[0].user_attrs
    store.study.add_trial(optuna.trial.create_trial(  # a second trial of a point, closed without running
        state=TrialState.FAIL, user_attrs={k: first[k] for k in ("key", "point", "label", "config")} | {"status": "duplicate"}))
    store.close()
    assert main(["sweep", str(spec), "--quiet"]) == 0  # everything is done: nothing runs
    out = capsys.readouterr().out
    assert "points: 4 finished (diverged runs included), 0 failed or interrupted (re-run to retry), 0 still queued" in out


def test_dry_run_lists_points_without_storing(tmp_path, capsys):
    spec = write_spec(tmp_path)
    assert main(["sweep", str(spec), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 points, 0 done, 0 queued or running, 4 to enqueue" in out
    assert out.count("log2 η=") == 4
    assert not (tmp_path / "spec.db").exists()


def test_fit_and_report_from_a_stored_study(synthetic_study, tmp_path, capsys):
    url, name, _ = synthetic_study
    assert main(["fit", "--storage", url, "--json", "--bootstrap", "50"]) == 0  # the only study: no --study needed
    d = json.loads(capsys.readouterr().out)
    a1 = next(c for c in d["configs"] if c["config"] == "A1")
    assert d["study"] == name and a1["slope"] == pytest.approx(-0.5, abs=1e-9) and a1["predicted_slope"] == -0.5
    assert set(a1) >= {"eta_star", "slope", "slope_ci", "predicted_slope"}
    assert main(["fit", "--storage", url, "--study", name, "--metric", "eval", "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    assert "slope of log η* against log r" in text and "val_nll" in text
    assert main(["report", "--storage", url, "--study", name, "--out", str(tmp_path / "rep"), "--bootstrap", "0", "--no-html"]) == 0
    assert (tmp_path / "rep" / "report.md").exists() and not (tmp_path / "rep" / "report.html").exists()


def test_fit_errors_exit_2(tmp_path, synthetic_study, capsys):
    assert main(["fit", "--storage", f"sqlite:///{tmp_path / 'none.db'}", "--study", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["fit", "--storage", synthetic_study[0], "--study", "nope", "--metric", "best"]) == 2
    err = capsys.readouterr().err
    assert "--metric" in err and "ema, val_loss or eval" in err  # the choices, from FIT_METRICS
    assert "--study: " in err  # with the flag's problem, not after it is fixed


@pytest.fixture
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP's spin-waiting threads made the
    end-to-end test take 50–100 s instead of 7 s."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_sweep_runs_the_real_train_end_to_end_and_resumes(tmp_path, capsys, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)  # run directories go under ./runs
    spec = tiny_spec(tmp_path)
    assert main(["sweep", str(spec), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "4 points; 0 were done, 4 ran now" in out
    url = f"sqlite:///{tmp_path / 'spec.db'}"
    store = SweepStore.open(url, "cli")
    trials = store.trials()
    assert len(trials) == 4 and {t.state for t in trials} == {TrialState.COMPLETE}
    for t in trials:
        a = t.user_attrs
        assert a["status"] == "complete" and a["eval_metric"] == "val_nll"  # 10 steps at 2^-8 and 2^-6 train stably
        # the store's value and eval value are the ones `train` wrote to the run's own summary
        summary = json.loads((tmp_path / a["run_dir"] / "summary.json").read_text())
        assert t.value == summary["final_ema_loss"] and math.isfinite(t.value) and a["eval_value"] == summary["val_nll"]
        assert sorted(t.intermediate_values) == list(range(1, E2E_BUDGET["steps"] + 1))  # the EMA curve, every step
        assert t.intermediate_values[E2E_BUDGET["steps"]] == t.value  # it ends at the value, the same float
        assert a["wall_time"] > 0
    assert main(["sweep", str(spec), "--quiet"]) == 0  # resume: nothing left to run
    assert "4 were done, 0 ran now" in capsys.readouterr().out
    assert main(["fit", "--storage", url, "--json", "--bootstrap", "0"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {c["config"] for c in d["configs"]} == {"Init[A] α=1", "FFT"}
    assert all(len(c["eta_star"]) == 1 for c in d["configs"])  # one rank each: η* but no slope


def test_a_contrastive_sweep_trains_packs_then_fits_and_reports_the_retrieval_metric(tmp_path, capsys, monkeypatch,
                                                                                   one_torch_thread):
    monkeypatch.chdir(tmp_path)
    pairs = tmp_path / "pairs.jsonl"  # "find the word w" -> "w": learnable by a random tiny encoder in a few steps
    pairs.write_text("".join(json.dumps({"query": f"find the word {w}", "positive": w}) + "\n"
                             for w in (f"{a}{b}{c}" for a in "abcd" for b in "efgh" for c in "ijkl")))
    spec = write_spec(tmp_path, base={"model": "tiny-bert", "data": str(pairs), "task": "contrastive", "steps": 6,
                                      "batch_size": 4, "seq_len": 24, "val_fraction": 0.25, "max_val_batches": 2},
                      grid={"configs": [{"name": "A1", "rule": "mua", "init": "A", "gamma": 0}], "ranks": [4],
                            "log2_lr": [-12, -10], "seeds": [0, 1]})
    assert main(["sweep", str(spec), "--quiet", "--members", "4"]) == 0  # one pack of four members
    url = f"sqlite:///{tmp_path / 'spec.db'}"
    trials = SweepStore.open(url, "cli").trials()
    assert len(trials) == 4 and {t.state for t in trials} == {TrialState.COMPLETE}
    assert all(t.user_attrs["eval_metric"] == "val_mrr" and 0 < t.user_attrs["eval_value"] <= 1 for t in trials)
    packs = {json.loads((tmp_path / t.user_attrs["run_dir"] / "summary.json").read_text())["pack"] for t in trials}
    assert len(packs) == 1 and None not in packs  # the four trained together, not one by one
    capsys.readouterr()
    assert main(["fit", "--storage", url, "--metric", "eval", "--json", "--bootstrap", "0"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["metric"] == "val_mrr" and d["higher_is_better"] is True
    assert main(["report", "--storage", url, "--out", str(tmp_path / "rep"), "--bootstrap", "0", "--no-html"]) == 0
    assert "Selected on validation MRR" in (tmp_path / "rep" / "report.md").read_text()
@pytest.mark.slow
def test_sigterm_of_a_sweep_process_records_the_running_trial_interrupted(tmp_path):
    """Opt-in (a `lorascale sweep` process training tiny-llama, ~15 s): what a scheduler's SIGTERM leaves."""
    import os
    import signal
    import subprocess
    import sys
    import time

    d = yaml.safe_load(write_spec(tmp_path).read_text())
    d["base"]["steps"] = 100000  # the first trial is still training when the signal comes
    d["base"]["log_every"] = 1
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(d, allow_unicode=True))
    proc = subprocess.Popen([sys.executable, "-m", "lorascale.cli", "sweep", str(spec), "--quiet"], cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"),
                                     OMP_NUM_THREADS="1"), stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not any(m.read_text().strip() for m in tmp_path.glob("runs/*/*/metrics.jsonl")):
        assert proc.poll() is None and time.monotonic() - t0 < 120, "the first trial never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err and "interrupted by SIGTERM" in err, err
    trials = SweepStore.open(f"sqlite:///{tmp_path / 'spec.db'}", "cli").trials()
    assert [(t.state, t.user_attrs.get("status")) for t in trials] == [(TrialState.FAIL, "interrupted")] + [
        (TrialState.WAITING, None)] * 3  # never a RUNNING trial with a half-written "complete"
    assert trials[0].user_attrs["message"] == "interrupted by SIGTERM"
    (run,) = tmp_path.glob("runs/*/*/summary.json")
    assert json.loads(run.read_text())["status"] == "interrupted"
