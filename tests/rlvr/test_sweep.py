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
