"""Config validation reports every error at once, naming fields; YAML + flag precedence."""

import json

import pytest

from lorascale.cli import main
from lorascale.commands.train import config_from_args
from lorascale.errors import ConfigErrors
from lorascale.rules import recommended_lr
from lorascale.train.config import TrainConfig


def fields_of(**flat) -> set[str]:
    with pytest.raises(ConfigErrors) as e:
        TrainConfig(**flat)
    return {x.field for x in e.value.errors}


def test_all_errors_at_once():
    fields = fields_of(rank=0, batch_size=0, lr=-1.0, warmup_frac=2.0, steps=10, epochs=1.0)
    assert {"rank", "batch_size", "lr", "warmup_frac", "steps/epochs"} <= fields


def test_a_cross_field_check_never_judges_a_dropped_values_default():
    with pytest.raises(ConfigErrors) as e:  # epochs 0 is refused; "neither steps nor epochs is set" would be ours
        TrainConfig(steps=None, epochs=0)
    assert [x.field for x in e.value.errors] == ["epochs"]
    with pytest.raises(ConfigErrors) as e:  # a cross-field problem of other keys is still reported with it
        TrainConfig(rank=0, steps=None, epochs=None)
    assert [x.field for x in e.value.errors] == ["rank", "steps/epochs"]


def test_peak_lr_follows_rule():
    assert TrainConfig(rule="lora-alpha", lr_fft=3e-5).peak_lr() == 3e-5
    assert TrainConfig(rule="alpha-r", lr_fft=3e-5).peak_lr() == pytest.approx(3e-4, rel=1e-9)  # float rounding only
    assert TrainConfig(rule="mua", init="B", gamma=0.0).peak_lr() == 2e-5  # Init[B], α=1 ↔ FFT
    assert fields_of(rule="mua", init="A") == {"lr"}


def test_yaml_then_flags_override(tmp_path):
    import argparse

    from lorascale.commands.train import add_train_args

    y = tmp_path / "c.yaml"
    y.write_text("model: tiny-llama\nrank: 4\nsteps: 7\nlr: 0.01\ntargets: [q_proj]\n")
    p = argparse.ArgumentParser()
    add_train_args(p)
    cfg = config_from_args(p.parse_args(["--config", str(y), "--rank", "8"]))
    assert (cfg.model, cfg.adapter.rank, cfg.steps, cfg.lr) == ("tiny-llama", 8, 7, 0.01)
    cfg = config_from_args(p.parse_args(["--config", str(y), "--epochs", "2"]))
    assert cfg.steps is None and cfg.epochs == 2.0
    cfg = config_from_args(p.parse_args(["--config", str(y), "--lr", "none", "--targets", "none"]))
    assert cfg.lr is None and cfg.adapter.targets is None  # `none` unsets what the file set
    assert cfg.peak_lr() == recommended_lr(cfg.adapter.scaling, cfg.lr_fft, cfg.adapter.init, cfg.adapter.method)
    with pytest.raises(ConfigErrors) as e:  # a setting that cannot be unset reads "none" as a bad value
        config_from_args(p.parse_args(["--config", str(y), "--rank", "none"]))
    assert [x.field for x in e.value.errors] == ["rank"]


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
    assert (cfg.lr, cfg.warmup_frac, cfg.adapter.rank) == (2e-5, 0.05, 8)
    errs = fields_of(lr="fast", steps=1.5, batch_size=0)
    assert errs == {"lr", "steps", "batch_size"}  # type errors and value errors, all at once
    y = tmp_path / "c.yaml"
    y.write_text("model: tiny-llama\nwarmup_frac: soon\n")
    assert main(["train", "--config", str(y)]) == 2
    assert "warmup_frac" in capsys.readouterr().err


def test_flat_round_trip_and_composition():
    cfg = TrainConfig(model="tiny-llama", rank=8, rule="mua", init="B", alpha=2.0, targets=["q_proj"])
    assert cfg.adapter.rank == 8 and cfg.adapter.scaling.alpha == 2.0 and cfg.adapter.targets == ("q_proj",)
    assert TrainConfig.from_flat(cfg.to_flat()) == cfg  # saved config.json == loaded
    assert cfg.replace(rank=4).adapter.rank == 4 and cfg.adapter.rank == 8  # frozen: replace copies


def test_replace_keeps_what_was_given_apart_from_defaults():
    """A found bug: replace() marked every field as given, so `tune` took TrainConfig's default η_FFT
    (2e-5, LoRA-α's Llama value) for the user's and skipped its own estimate inside the headline."""
    cfg = TrainConfig(model="tiny-llama", rank=8)
    copy = cfg.replace(lr=None, steps=7)
    assert "lr_fft" not in copy.model_fields_set and copy.lr_fft == cfg.lr_fft == 2e-5
    assert {"model", "adapter", "lr", "steps"} <= copy.model_fields_set
    assert copy.replace(lr_fft=1e-4).model_fields_set >= {"lr_fft", "adapter"}
    assert copy.to_flat() == {**cfg.to_flat(), "lr": None, "steps": 7}  # the values are unchanged otherwise


def test_full_finetuning_refuses_adapter_settings():
    assert fields_of(finetune="full", rank=8, rule="mua") == {"rank"}  # one error naming what conflicts
    assert TrainConfig(finetune="full").peak_lr() == 2e-5


@pytest.mark.parametrize("flat, field", [
    ({"seed": -1}, "seed"), ({"seed": 2**32}, "seed"), ({"model": 5}, "model"), ({"out_dir": 7}, "out_dir"),
    ({"targets": {"a": 1}}, "targets"), ({"save_model": "no"}, "save_model"), ({"seq_len": 1}, "seq_len"),
])
def test_bad_values_found_by_issue_14(flat, field):
    assert fields_of(**flat) == {field}


def test_unsetting_one_budget_key_keeps_the_other(tmp_path):
    import argparse

    from lorascale.commands.train import add_train_args

    p = argparse.ArgumentParser()
    add_train_args(p)
    assert config_from_args(p.parse_args(["--epochs", "none"])).steps == 100  # the default budget stands
    y = tmp_path / "c.yaml"
    y.write_text("steps: 500\n")
    cfg = config_from_args(p.parse_args(["--config", str(y), "--epochs", "none"]))
    assert (cfg.steps, cfg.epochs) == (500, None)  # the file's budget stands
    y.write_text("epochs: 2\n")
    cfg = config_from_args(p.parse_args(["--config", str(y), "--steps", "none"]))
    assert (cfg.steps, cfg.epochs) == (None, 2.0)
    with pytest.raises(ConfigErrors, match="neither is set"):  # unsetting the only budget there is
        config_from_args(p.parse_args(["--steps", "none"]))
    out = config_from_args(p.parse_args(["--out", "none"]))
    assert out.out_dir == "none"  # a path: a folder called none, never "unset"


def test_a_knob_the_rule_ignores_is_refused_from_the_file_or_the_flags(tmp_path):
    """`rule: fixed-alpha` with `alpha: 3` used to train at lora_alpha 16 without a word. A flag's knob is judged by
    the rule in force; a file's knob by the file's own rule, and only when it leaves its default (a run's own
    config.json lists every knob); nested keys too, beside the other problems, and as the only error about it."""
    y = tmp_path / "c.yaml"
    y.write_text("rule: fixed-alpha\nalpha: 3\nlora_alpha: 32\n")
    with pytest.raises(ConfigErrors) as e:
        TrainConfig.from_sources(y)
    assert [x.field for x in e.value.errors] == ["alpha"]
    y.write_text("rule: lora-alpha\nalpha: 2\n")  # a flag's rule overrides the file's, knobs and all
    assert TrainConfig.from_sources(y, {"rule": "alpha-r"}).adapter.scaling.rule == "alpha-r"
    with pytest.raises(ConfigErrors) as e:  # a flag's knob under the file's rule
        TrainConfig.from_sources(y, {"gamma": 0.5})
    assert [x.field for x in e.value.errors] == ["gamma"]
    y.write_text("adapter: {scaling: {rule: mua, gamma: 1, alpha: 2}}\n")
    with pytest.raises(ConfigErrors) as e:
        TrainConfig.from_sources(y, {"rank": 0, "lr": 1e-3})
    assert [x.field for x in e.value.errors] == ["rank", "alpha"]
    with pytest.raises(ConfigErrors) as e:  # out of range and ignored: one error, whose fix (drop it) covers both
        TrainConfig.from_sources(None, {"rule": "alpha-r", "gamma": 5})
    assert [(x.field, x.message) for x in e.value.errors] == [("gamma", "rule alpha-r has no knob, so this would be ignored")]
    saved = TrainConfig(rule="rslora", lora_alpha=8.0, rank=4)  # what a run writes to config.json: every knob
    (tmp_path / "config.json").write_text(json.dumps(saved.to_flat()))
    assert TrainConfig.from_sources(tmp_path / "config.json") == saved
    assert TrainConfig(rule="rslora", alpha=3.0).adapter.scaling.alpha == 3.0  # not a user source: no check
    with pytest.raises(ConfigErrors) as e:  # full finetuning's own check names the adapter settings, once
        TrainConfig.from_sources(None, {"finetune": "full", "gamma": 0.5})
    assert [x.field for x in e.value.errors] == ["gamma"]
