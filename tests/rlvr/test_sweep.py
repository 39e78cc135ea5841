"""An rlvr learning-rate grid through sweep → fit: rewards are stored and maximised."""

import json

import pytest

from lorascale.cli import main

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


def test_rlvr_sweep_and_fit(tmp_path, capsys, one_thread):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["sweep", str(spec), "--storage", url, "--members", "2"]) == 0  # rlvr points run alone, not packed
    capsys.readouterr()
    assert main(["fit", "--storage", url, "--study", "rl-tiny", "--metric", "eval", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["metric"] == "val_reward" and rep["higher_is_better"] is True
    (cfg,) = rep["configs"]
    assert [p["rank"] for p in cfg["eta_star"]] == [4] and cfg["eta_star"][0]["log2_lr"] in (-8.0, -6.0)


def test_an_rlvr_spec_its_runs_would_refuse_is_refused_before_storing(tmp_path, capsys):
    spec = tmp_path / "rl.yaml"
    # 8 problems cannot fill a step of 2 × 8 distinct prompts; an epochs budget is no GRPO budget
    spec.write_text(SPEC.replace("steps: 2,", "steps: null, epochs: 1,").replace("batch_size: 2,", "batch_size: 2, grad_accum: 8,"))
    assert main(["sweep", str(spec), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "base.epochs: an rlvr run counts optimizer steps" in err and "base.batch_size: 8 training problems" in err
    assert not (tmp_path / "rl.db").exists()  # nothing stored: before, every trial was stored and then failed
