"""Config validation reports every error at once, naming fields; YAML + flag precedence."""

import pytest

from lorascale.cli import main
from lorascale.commands.train import config_from_args
from lorascale.errors import ConfigErrors
from lorascale.train.config import TrainConfig


def test_all_errors_at_once():
    errs = TrainConfig(rank=0, batch_size=0, lr=-1.0, warmup_frac=2.0, steps=10, epochs=1.0).errors()
    fields = {e.field for e in errs}
    assert {"rank", "batch_size", "lr", "warmup_frac", "steps/epochs"} <= fields


def test_peak_lr_follows_rule():
    assert TrainConfig(rule="lora-alpha", lr_fft=3e-5).peak_lr() == 3e-5
    assert TrainConfig(rule="alpha-r", lr_fft=3e-5).peak_lr() == pytest.approx(3e-4)
    assert TrainConfig(rule="mua", init="B", gamma=0.0).peak_lr() == 2e-5  # Init[B], α=1 ↔ FFT
    assert any(e.field == "lr" for e in TrainConfig(rule="mua", init="A").errors())


def test_yaml_then_flags_override(tmp_path):
    import argparse

    from lorascale.commands.train import add_train_args

    y = tmp_path / "c.yaml"
    y.write_text("model: tiny-llama\nrank: 4\nsteps: 7\nlr: 0.01\n")
    p = argparse.ArgumentParser()
    add_train_args(p)
    cfg = config_from_args(p.parse_args(["--config", str(y), "--rank", "8"]))
    assert (cfg.model, cfg.rank, cfg.steps, cfg.lr) == ("tiny-llama", 8, 7, 0.01)
    cfg = config_from_args(p.parse_args(["--config", str(y), "--epochs", "2"]))
    assert cfg.steps is None and cfg.epochs == 2.0


def test_unknown_yaml_keys_are_errors(tmp_path, capsys):
    y = tmp_path / "c.yaml"
    y.write_text("modle: tiny-llama\nrnak: 4\n")
    assert main(["train", "--config", str(y)]) == 2
    err = capsys.readouterr().err
    assert "modle" in err and "rnak" in err


def test_cli_bad_flags_exit_2(capsys):
    assert main(["train", "--model", "tiny-llama", "--rank", "0", "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "--rank" in err and "--batch-size" in err


def test_yaml_numbers_as_strings_and_wrong_types(tmp_path, capsys):
    from lorascale.train.config import config_from_mapping

    # PyYAML reads 2e-5 (no dot) as a string: numeric strings are accepted for numeric fields
    cfg = config_from_mapping({"lr": "2e-5", "warmup_frac": "0.05", "rank": "8"})
    assert (cfg.lr, cfg.warmup_frac, cfg.rank) == (2e-5, 0.05, 8) and not cfg.errors()
    errs = {e.field for e in config_from_mapping({"lr": "fast", "steps": 1.5, "batch_size": 0}).errors()}
    assert errs == {"lr", "steps", "batch_size"}  # type errors and value errors, all at once
    y = tmp_path / "c.yaml"
    y.write_text("model: tiny-llama\nwarmup_frac: soon\n")
    assert main(["train", "--config", str(y)]) == 2
    assert "warmup_frac" in capsys.readouterr().err
