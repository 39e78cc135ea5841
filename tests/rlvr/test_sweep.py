"""An rlvr learning-rate grid through sweep → fit: rewards are stored and maximised."""

import json

import pytest

from lorascale.cli import main
from lorascale.sweep.storage import SweepStore

pytest.importorskip("trl")

SPEC = """name: rl-tiny
base: {model: tiny-llama, data: arithmetic, task: rlvr, steps: 2, batch_size: 2, num_generations: 2,
       max_completion_length: 4, train_problems: 8, val_problems: 2, eval_generations: 1, save_model: false}
grid:
  configs: [{name: "Init[B] α=1", rule: mua, init: B, gamma: 0}]
  ranks: [4]
  log2_lr: [-8, -6]
  seeds: [0]
"""


def test_rlvr_sweep_and_fit(tmp_path, capsys, monkeypatch, one_thread):
    """The stored eval value is each run's held-out reward, and fit picks the rate that maximises it. An
    untrained tiny model scores 0 everywhere (both rates would tie), so here training rewards a completion by
    its characters' codes (they vary within a group, so the adapter moves, by how much depends on the rate),
    and the held-out "reward" is a continuous function of the trained adapter (its factors' total magnitude),
    so the two rates' values differ on any machine. (Completion length would not do: tiny-llama's byte tokens
    fill all 4.)"""
    import lorascale.rlvr.evaluate as evaluate
    import lorascale.rlvr.reward as reward

    def by_codes(**_):
        return [lambda completions, **_: [float(sum(map(ord, c)) % 7) for c in completions]]

    def adapter_magnitude(model, *_, **__):
        size = sum(float(p.detach().abs().sum()) for n, p in model.named_parameters() if "lora_" in n)
        return {"val_reward": size, "val_accuracy": 0.0, "val_format": 0.0, "val_completion_length": 4.0}

    monkeypatch.setattr(reward, "trl_reward_functions", by_codes)
    monkeypatch.setattr(evaluate, "evaluate_rlvr", adapter_magnitude)
    monkeypatch.chdir(tmp_path)  # run directories go under ./runs
    spec = tmp_path / "spec.yaml"
    # 4 steps (a 2-step run spends one in warm-up) at rates 2^6 apart: the two adapters differ
    spec.write_text(SPEC.replace("steps: 2,", "steps: 4,").replace("log2_lr: [-8, -6]", "log2_lr: [-10, -4]"))
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["sweep", str(spec), "--storage", url, "--members", "2"]) == 0  # rlvr points run alone, not packed
    capsys.readouterr()
    reward_at = {}
    for t in SweepStore.open(url, "rl-tiny").trials():
        a = t.user_attrs
        summary = json.loads((tmp_path / a["run_dir"] / "summary.json").read_text())
        assert a["status"] == "complete" and a["eval_value"] == summary["val_reward"]
        reward_at[a["point"]["log2_lr"]] = a["eval_value"]
    assert sorted(reward_at) == [-10.0, -4.0] and reward_at[-10.0] != reward_at[-4.0]
    assert main(["fit", "--storage", url, "--study", "rl-tiny", "--metric", "eval", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["metric"] == "val_reward" and rep["higher_is_better"] is True
    (cfg,) = rep["configs"]
    assert [p["rank"] for p in cfg["eta_star"]] == [4]
    assert cfg["eta_star"][0]["log2_lr"] == max(reward_at, key=reward_at.get)  # the larger reward, not the smaller loss


def test_an_rlvr_spec_its_runs_would_refuse_is_refused_before_storing(tmp_path, capsys):
    spec = tmp_path / "rl.yaml"
    # 8 problems cannot fill a step of 2 × 8 distinct prompts; an epochs budget is no GRPO budget
    spec.write_text(SPEC.replace("steps: 2,", "steps: null, epochs: 1,").replace("batch_size: 2,", "batch_size: 2, grad_accum: 8,"))
    assert main(["sweep", str(spec), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "base.epochs: an rlvr run counts optimizer steps" in err and "base.batch_size: 8 training problems" in err
    assert not (tmp_path / "rl.db").exists()  # nothing stored: before, every trial was stored and then failed
