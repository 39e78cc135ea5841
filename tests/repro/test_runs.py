"""`finished_run`: what a benchmark reads back, clears or refuses in a run folder."""

import json

import pytest

from lorascale.errors import ConfigError
from lorascale.repro.runs import finished_run
from lorascale.train import TrainConfig


def _folder(path, cfg, summary=None):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(cfg.to_flat()))
    (path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    if summary is not None:
        (path / "summary.json").write_text(json.dumps(summary))


def test_an_unfinished_run_of_another_configuration_is_refused_not_deleted(tmp_path):
    mine = TrainConfig(model="tiny-llama", steps=4, lr=1e-3, out_dir=str(tmp_path / "r"))
    _folder(tmp_path / "r", mine.replace(lr=2e-3))  # cut before its first summary.json
    with pytest.raises(ConfigError) as e:
        finished_run(mine)
    assert e.value.field == "out" and (tmp_path / "r" / "metrics.jsonl").exists()


def test_an_unfinished_run_of_this_configuration_is_cleared_and_a_finished_one_read_back(tmp_path):
    mine = TrainConfig(model="tiny-llama", steps=4, lr=1e-3, out_dir=str(tmp_path / "r"))
    _folder(tmp_path / "r", mine, {"status": "interrupted"})
    assert finished_run(mine, clear=False) is None and (tmp_path / "r").exists()  # a report deletes nothing
    assert finished_run(mine) is None and not (tmp_path / "r").exists()  # cleared for the run that follows
    _folder(tmp_path / "r", mine, {"status": "complete", "final_ema_loss": 1.5, "steps_done": 4, "total_steps": 4,
                                    "eval_metric": "val_nll", "val_nll": 1.6, "val_loss": 1.6, "wall_time": 1.0})
    assert finished_run(mine).final_ema_loss == 1.5
