"""Flags come from the settings' fields; errors name the flag; every problem of every command at once."""

import argparse

import pytest

from lorascale.cli import build_parser, main
from lorascale.commands.flags import add_settings_args, given
from lorascale.schema import leaf_fields
from lorascale.train.config import TrainConfig


def test_every_train_setting_has_exactly_one_flag():
    p = argparse.ArgumentParser()
    add_settings_args(p, TrainConfig)
    dests = [a.dest for a in p._actions if a.option_strings and a.dest != "help"]
    assert sorted(dests) == sorted(leaf_fields(TrainConfig))
    args = p.parse_args(["--rank", "8", "--out", "x", "--targets", "q_proj", "v_proj", "--no-save-model"])
    assert given(args, TrainConfig) == {"rank": "8", "out_dir": "x", "targets": ["q_proj", "v_proj"], "save_model": False}
    assert TrainConfig(**given(args, TrainConfig)).adapter.targets == ("q_proj", "v_proj")


def test_help_comes_from_the_field_description():
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "AdamW weight decay (default 0.01)" in text and "LoRA-α knob α (default 1)" in text


def test_a_flag_shows_its_choices_and_a_number_beside_a_word():
    sub = build_parser()._subparsers._group_actions[0].choices
    usage = sub["sweep"].format_usage()
    assert "[--members MEMBERS|auto]" in usage and "[--backend {local,ray}]" in usage  # int | "auto"; a Literal alone
    assert "[--init {kaiming,A,B}]" in sub["train"].format_usage()  # an enum


@pytest.mark.parametrize("argv, flags", [
    (["train", "--rank", "0", "--batch-size", "x", "--seed", "-1", "--lr", "nan", "--rule", "nope"],
     ["--rank", "--batch-size", "--seed", "--lr", "--rule"]),
    (["recommend", "--model", "tiny-llama", "--rank", "0", "--alpha", "-1", "--rule", "x", "--lr-fft", "0"],
     ["--rank", "--alpha", "--rule", "--lr-fft"]),
    (["transfer", "--lr", "-1", "--from-width", "0", "--from-config", "C"], ["--lr", "--from-width", "--from-config"]),
    (["repro", "nope", "--seeds", "0", "--d", "0", "--steps", "-1"], ["EXPERIMENT", "--seeds", "--d", "--steps"]),
    (["sweep", "missing.yaml", "--workers", "0", "--backend", "x"], ["SPEC.yaml", "--workers", "--backend"]),
    (["fit", "--storage", "sqlite:///nope.db", "--metric", "x", "--bootstrap", "-1"], ["--metric", "--bootstrap"]),
    (["diagnose", "nope", "--lanczos-steps", "0", "--hutchinson-samples", "1"], ["--lanczos-steps", "--hutchinson-samples"]),
    (["demo", "--seeds", "0", "--steps", "0", "--lr", "0"], ["--seeds", "--steps", "--lr"]),
    (["check", "nope", "--c", "0"], ["--c"]),
    (["check", "nope"], ["ADAPTER_DIR"]),
    (["export", "nope"], ["RUN"]),
    (["report", "--storage", "sqlite:///nope.db", "--out", "r", "--bootstrap", "-1"], ["--bootstrap", "--storage"]),
    (["fit", "--storage", "sqlite:///nope.db", "--bootstrap", "100000000"], ["--bootstrap"]),
])
def test_each_command_reports_every_bad_flag_at_once(argv, flags, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for flag in flags:
        assert f"error: {flag}" in err, (flag, err)
    assert list(tmp_path.iterdir()) == []  # a refusal writes nothing


def test_a_setting_named_in_a_fix_becomes_this_commands_flag():
    from lorascale.commands.flags import describe
    from lorascale.errors import ConfigError

    sweep = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "sweep")[1]
    err = ConfigError("name", "holds another spec", "use a new name, or extend it (`extend_study`); see `no_such_setting`")
    text = describe(err, sweep)
    assert text == "SPEC.yaml key name: holds another spec; use a new name, or extend it (--extend-study); see `no_such_setting`"
    assert err.fix.endswith("(`extend_study`); see `no_such_setting`")  # the library's error is left as it was


def test_a_switch_is_named_by_its_positive_flag_and_only_options_replace_text():
    from lorascale.commands.flags import describe, flag_for
    from lorascale.errors import ConfigError

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    sweep = build_parser()._subparsers._group_actions[0].choices["sweep"]
    assert flag_for(train, "save_model") == "--save-model"  # BooleanOptionalAction: not --no-save-model
    err = ConfigError("rank", "must be > 0", "see `help`, `spec` and `save_model`")
    assert describe(err, train) == "--rank: must be > 0; see `help`, `spec` and --save-model"
    # `spec` is sweep's positional SPEC.yaml: a name in prose stays prose, only options become flags
    assert describe(err, sweep).endswith("see `help`, `spec` and `save_model`")


def test_a_setting_named_in_a_message_becomes_this_commands_flag_too():
    from lorascale.commands.flags import describe
    from lorascale.errors import ConfigError

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    err = ConfigError("lr", "is set, and so is `lr_fft`", "drop `lr_fft`")
    assert describe(err, train) == "--lr: is set, and so is --lr-fft; drop --lr-fft"


@pytest.mark.parametrize("argv, targets", [
    (["--targets", ".*\\.(q_proj|v_proj)"], ".*\\.(q_proj|v_proj)"),  # one pattern: kept a string, PEFT's regex
    (["--targets", "q_proj", "v_proj"], ["q_proj", "v_proj"]),  # names: a list of suffixes
    (["--targets", "model.layers.0.self_attn.q_proj"], ["model.layers.0.self_attn.q_proj"]),  # a full name's dots are not a pattern
    (["--targets", "none"], None),  # unset: μA's placement
])
def test_targets_on_the_command_line_take_names_or_one_regular_expression(argv, targets):
    p = argparse.ArgumentParser()
    add_settings_args(p, TrainConfig)
    assert given(p.parse_args(argv), TrainConfig)["targets"] == targets


def test_library_notes_name_this_commands_flags():
    """A library note names settings in backquotes (sweep.fit: "fit with `metric` ema"); the CLI prints the
    command's flag for each it has, and leaves the rest as written."""
    from lorascale.commands.flags import flags_in_text

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = "nothing was fitted; fit with `metric` ema (`storage` and `no_such` stay settings elsewhere)"
    assert flags_in_text(text, sub.choices["fit"]) == ("nothing was fitted; fit with --metric ema (--storage and"
                                                      " `no_such` stay settings elsewhere)")
    assert flags_in_text(text, None) == text


def test_an_error_about_two_settings_names_both_flags():
    from lorascale.commands.flags import describe
    from lorascale.errors import ConfigError

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    assert describe(ConfigError("steps/epochs", "neither is set", "give `steps` or `epochs`"), train) == (
        "--steps/--epochs: neither is set; give --steps or --epochs")
