"""Bad input of issue #14 ends in exit 2 with the flag and the fix, never a traceback, and writes nothing."""

import json
import math

import pytest

from lorascale.cli import main


def _refused(argv, capsys, tmp_path, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before  # a refusal writes nothing
    return err


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_transfer_overflow_is_refused_not_printed_as_inf(json_flag, capsys, tmp_path, monkeypatch):
    # Init[B], α = 1: η ∝ 1/n, so 1e8 → 1 in width multiplies η by 1e8: 1e308 × 1e8 overflows to inf
    err = _refused(["transfer", "--lr", "1e308", "--from-width", "100000000", "--to-width", "1", "--from-rank", "1",
                    "--from-config", "B", *json_flag], capsys, tmp_path, monkeypatch)
    assert "error: --lr: transferring η = 1e+308 gives inf, past what a float holds" in err


def test_transfer_from_fft_to_lora_without_a_rank_names_the_target_rank(capsys, tmp_path, monkeypatch):
    err = _refused(["transfer", "--lr", "2e-5", "--from-width", "576", "--from-config", "fft", "--to-config", "B"], capsys, tmp_path,
                   monkeypatch)
    assert "error: --to-rank: a LoRA target needs its rank" in err  # before: "rank", a field this command does not have


@pytest.mark.parametrize("argv, flag", [
    (["--from-config", "fft", "--from-rank", "8", "--to-config", "B", "--to-rank", "4"], "--from-rank"),
    (["--from-config", "fft", "--from-rank", "8"], "--from-rank"),
    (["--from-config", "A", "--from-rank", "8", "--to-config", "fft", "--to-rank", "4"], "--to-rank"),
    (["--from-config", "fft", "--gamma", "1"], "--gamma"),
])
def test_transfer_refuses_a_setting_a_full_finetuning_side_would_ignore(argv, flag, capsys, tmp_path, monkeypatch):
    err = _refused(["transfer", "--lr", "2e-5", "--from-width", "576", *argv], capsys, tmp_path, monkeypatch)
    assert f"error: {flag}: " in err and "would be ignored" in err and f"drop {flag}" in err
    assert err.count("error:") == 1


@pytest.mark.parametrize("argv, flags", [
    (["recommend", "--model", "tiny-llama@64", "--rule", "fixed-alpha", "--alpha", "3"], ["--alpha"]),
    (["recommend", "--model", "tiny-llama@64", "--gamma", "0.5", "--rank", "0"], ["--rank", "--gamma"]),
    (["recommend", "--model", "tiny-llama@64", "--rule", "alpha-r", "--lora-alpha", "16", "--c", "512"], ["--c", "--lora-alpha"]),
    (["tune", "--model", "tiny-llama@64", "--rule", "rslora", "--alpha", "2", "--lr-fft", "1e-4"], ["--alpha"]),
    (["train", "--model", "tiny-llama@64", "--rule", "mua", "--gamma", "1", "--c", "512", "--lr", "1e-3"], ["--c"]),
    (["recommend", "--model", "tiny-llama@64", "--rule", "alpha-r", "--gamma", "5"], ["--gamma"]),  # one fix: drop it
    # tune's prior for fixed-alpha is LoRA-α's multiplier at C (lora_alpha = C·√r): --c is read
    (["tune", "--model", "tiny-llama@64", "--rule", "fixed-alpha", "--c", "512", "--rank", "0"], ["--rank"]),
    (["tune", "--model", "tiny-llama@64", "--rule", "fixed-alpha", "--c", "512", "--lora-alpha", "32", "--rank", "0"],
     ["--rank", "--c"]),  # unless the prior is given
    (["repro", "headline", "--rule", "fixed-alpha", "--c", "300"], ["--rule"]),  # the rule refused: no knob judged
])
def test_a_knob_the_rule_ignores_is_refused_with_the_other_problems(argv, flags, capsys, tmp_path, monkeypatch):
    """`recommend --rule fixed-alpha --alpha 3` printed lora_alpha 16, the --alpha silently dropped."""
    err = _refused(argv, capsys, tmp_path, monkeypatch)
    assert [line.split(": ")[2] for line in err.splitlines() if ": error: " in line] == flags
    if {"--alpha", "--c", "--lora-alpha", "--gamma"} & set(flags):
        assert "so this would be ignored; drop " in err and "choose a rule that reads it" in err


def test_json_output_is_standard_json():
    from lorascale.commands.common import dumps

    text = dumps({"lr": math.inf, "loss": [1.0, math.nan, -math.inf], "ok": 2.5})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}")) == \
        {"lr": None, "loss": [1.0, None, None], "ok": 2.5}


def test_recommend_huge_width_is_refused_and_a_wide_one_planned_without_weights(capsys, tmp_path, monkeypatch):
    err = _refused(["recommend", "--model", "tiny-llama@100000000"], capsys, tmp_path, monkeypatch)
    assert "error: --model: width 100000000 is past the widest real transformers (16384)" in err
    # 16384 wide: ~13 GB of float32 weights if allocated; planned from the meta-device skeleton instead
    assert main(["recommend", "--model", "tiny-llama@16384", "--rank", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {(g["d_in"], g["d_out"]) for g in out["groups"]} >= {(16384, 32768), (32768, 16384), (16384, 16384)}


@pytest.mark.parametrize("width, fix", [("33", "tiny-llama@32 or tiny-llama@36"), ("0", "e.g. tiny-llama@128")])
def test_train_tiny_width_that_cannot_build_names_widths_that_do(width, fix, capsys, tmp_path, monkeypatch):
    err = _refused(["train", "--model", f"tiny-llama@{width}", "--steps", "1"], capsys, tmp_path, monkeypatch)
    assert "error: --model: " in err and fix in err, err


def test_train_config_folder_says_folder(capsys, tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    err = _refused(["train", "--config", "cfg"], capsys, tmp_path, monkeypatch)
    assert "cfg is a folder, not a file; pass a YAML file" in err and "does not exist" not in err


def test_a_missing_config_file_is_reported_with_the_flags_errors(capsys, tmp_path, monkeypatch):
    err = _refused(["train", "--config", "missing.yaml", "--rank", "0", "--lr", "-1"], capsys, tmp_path, monkeypatch)
    assert "missing.yaml does not exist" in err and "error: --rank" in err and "error: --lr" in err


def test_train_local_model_with_bad_config_json(capsys, tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{bad")
    err = _refused(["train", "--model", "m", "--steps", "1"], capsys, tmp_path, monkeypatch)
    assert "error: --model: m/config.json is not valid JSON" in err


def test_yaml_errors_name_the_flag_and_each_once(capsys, tmp_path, monkeypatch):
    (tmp_path / "c.yaml").write_text("c: -1\nlr: -1\nrank: 0\nout_dir: 7\nrule: mua\ngamma: 2\n")
    err = _refused(["train", "--config", "c.yaml"], capsys, tmp_path, monkeypatch)
    for shown in ("--c (c)", "--lr (lr)", "--rank (rank)", "--out (out_dir)", "--gamma (gamma)"):
        assert f"error: {shown}: " in err, (shown, err)
    assert sum("error: --gamma" in line for line in err.splitlines()) == 1  # the γ error once, in one wording
    assert "error: --c (c): rule mua reads only --gamma, so this would be ignored" in err  # not also "must be > 0"


@pytest.mark.parametrize("monitors", [["--diagnostics", "signal-drift"], []])  # alone it was ignored: found by the harness
def test_diag_every_names_its_flag(monitors, capsys, tmp_path, monkeypatch):
    err = _refused(["train", *monitors, "--diag-every", "0", "--steps", "1"], capsys, tmp_path, monkeypatch)
    assert "error: --diag-every: must be > 0, got '0'" in err


@pytest.mark.parametrize("argv", [["train", "--rank", "0", "--model", "smollm2-13", "--data", "nope"],
                                  ["tune", "--rank", "0", "--model", "smollm2-13", "--data", "nope"],
                                  ["repro", "headline", "--rank", "0", "--model", "smollm2-13", "--data", "nope"]])
def test_unknown_model_and_data_are_reported_with_the_settings_errors(argv, capsys, tmp_path, monkeypatch):
    """The names resolve only once the settings validate; a bad --rank must not hide a misspelt --data."""
    err = _refused(argv, capsys, tmp_path, monkeypatch)
    assert "error: --rank: must be > 0" in err
    assert "error: --model: unknown model 'smollm2-13'" in err and "error: --data: unknown dataset 'nope'" in err


def test_a_config_files_data_is_checked_with_its_settings(capsys, tmp_path, monkeypatch):
    (tmp_path / "c.yaml").write_text("rank: 0\ndata: no/such.jsonl\n")
    err = _refused(["train", "--config", "c.yaml"], capsys, tmp_path, monkeypatch)
    assert "--rank (rank)" in err and "no/such.jsonl does not exist" in err


def test_transfer_reports_every_problem_at_once(capsys, tmp_path, monkeypatch):
    """It stopped at the first: a reference rank past its width hid the target's, and a γ with no Init[B] rule
    was found only after both were fixed."""
    err = _refused(["transfer", "--lr", "1e-3", "--from-rank", "64", "--from-width", "32", "--to-rank", "128",
                    "--to-width", "64", "--gamma", "0.5"], capsys, tmp_path, monkeypatch)
    for flag in ("--from-rank", "--to-rank", "--gamma"):
        assert f"error: {flag}:" in err


def test_check_reports_a_bad_c_with_a_missing_adapter(capsys, tmp_path, monkeypatch):
    """The adapter folder was not looked at while --c was bad: the second problem came only after the first."""
    err = _refused(["check", str(tmp_path / "missing"), "--c", "-1"], capsys, tmp_path, monkeypatch)
    assert "error: --c:" in err and "error: ADAPTER_DIR:" in err


def test_diagnose_and_coord_check_report_every_problem_at_once(capsys, tmp_path, monkeypatch):
    """diagnose looked at RUN_DIR only once its flags were fixed; coord-check resolved its model names only once
    its settings validated."""
    err = _refused(["diagnose", str(tmp_path / "missing"), "--lanczos-steps", "0", "--hutchinson-samples", "1"],
                   capsys, tmp_path, monkeypatch)
    for flag in ("--lanczos-steps", "--hutchinson-samples", "RUN_DIR"):
        assert f"error: {flag}:" in err
    err = _refused(["coord-check", "--model", "nosuch", "--ranks", "4", "4", "--out", str(tmp_path / "cc")], capsys, tmp_path,
                   monkeypatch)
    assert "error: --ranks:" in err and "error: --model: unknown model 'nosuch'" in err


def test_check_reports_a_bad_c_with_every_bad_key_of_the_adapter_config(capsys, tmp_path, monkeypatch):
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "lora_alpha": "abc", "use_rslora": "yes"}))
    err = _refused(["check", str(folder), "--c", "-1"], capsys, tmp_path, monkeypatch)
    assert "error: --c: must be > 0, got '-1'" in err  # before: lost behind the adapter's two errors
    assert "lora_alpha" in err and "use_rslora" in err


def test_recommend_reports_a_misspelt_model_with_the_other_bad_flags(capsys, tmp_path, monkeypatch):
    err = _refused(["recommend", "--model", "nope-model", "--rank", "-1", "--rule", "lora-alpah"], capsys, tmp_path, monkeypatch)
    assert "--model" in err and "--rank" in err and "--rule" in err  # before: no --model until the others were fixed


def test_train_reports_its_folder_and_data_with_the_flags(capsys, tmp_path, monkeypatch):
    """`--rank 0 --out afile/x` reported only --rank; with valid flags, `--out DIR_WITH_FILES --data nosuch`
    reported only --out (the data was read after the folder was checked)."""
    (tmp_path / "afile").write_text("x")
    err = _refused(["train", "--rank", "0", "--out", "afile/x"], capsys, tmp_path, monkeypatch)
    assert "error: --rank:" in err and "error: --out: " in err and "afile is a file" in err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text("the user's own")
    err = _refused(["train", "--model", "tiny-llama", "--out", "mine", "--data", "nosuch", "--steps", "1"], capsys,
                   tmp_path, monkeypatch)
    assert "error: --out: mine is a folder of other files" in err and "error: --data: unknown dataset 'nosuch'" in err
    assert (tmp_path / "mine" / "config.json").read_text() == "the user's own"


def test_coord_check_never_writes_over_other_files(capsys, tmp_path, monkeypatch):
    """--out into a folder of the user's files would rewrite a measurements.csv of theirs after minutes of runs."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "measurements.csv").write_text("the user's own")
    (tmp_path / "mine" / "notes.txt").write_text("the user's own")
    err = _refused(["coord-check", "--model", "tiny-llama", "--ranks", "4", "8", "--steps", "1", "--out", "mine"], capsys,
                   tmp_path, monkeypatch)
    assert "error: --out: mine is a folder of other files" in err
    assert (tmp_path / "mine" / "measurements.csv").read_text() == "the user's own"


def test_a_budget_given_twice_names_both_flags(capsys, tmp_path, monkeypatch):
    err = _refused(["train", "--model", "tiny-llama", "--steps", "1", "--epochs", "1"], capsys, tmp_path, monkeypatch)
    assert "both are set; choose --steps or --epochs" in err  # the fix's settings as this command's flags


def test_an_unknown_flag_is_named_by_its_command_in_one_line(capsys, tmp_path, monkeypatch):
    """argparse answered with the top level's usage (`usage: lorascale [-h] [--version] COMMAND ...`) and
    `lorascale: error:`, not naming the command whose flags were wrong."""
    err = _refused(["train", "--bogus-flag", "1", "--rank", "4"], capsys, tmp_path, monkeypatch)
    assert err == ("lorascale train: error: unrecognized arguments: --bogus-flag 1; see `lorascale train --help` for"
                   " its flags\n")
    err = _refused(["--bogus", "train"], capsys, tmp_path, monkeypatch)  # before the command: the top level's
    assert err == "lorascale: error: unrecognized arguments: --bogus; see `lorascale --help` for its flags\n"


def test_tune_lr_reaches_tunes_own_answer_with_the_other_problems(capsys, tmp_path, monkeypatch):
    err = _refused(["tune", "--lr", "1e-3", "--first-rung", "0.9"], capsys, tmp_path, monkeypatch)
    assert "lorascale tune: error: --lr: tune searches the learning rate; drop --lr (give --lr-fft to skip its" \
           " estimate)" in err
    assert "--first-rung: 0.9 is past the first rung" in err and "unrecognized" not in err
    for value in ("none", "abc"):  # `none` would have unset it, and tune would have run
        err = _refused(["tune", "--lr", value], capsys, tmp_path, monkeypatch)
        assert err == ("lorascale tune: error: --lr: tune searches the learning rate; drop --lr (give --lr-fft to skip"
                       " its estimate)\n")


def test_an_rlvr_runs_settings_and_monitors_are_refused_together_before_any_model_loads(capsys, tmp_path, monkeypatch):
    """The monitors were refused alone, as the field `callbacks` with no flag, after TRL was imported, and
    hid the run's own rlvr problems; now every one is named by its flag at once, and nothing loads."""
    import lorascale.rlvr.train as rlvr_train

    def never(*a, **k):
        raise AssertionError("a refused run must not load a model")

    monkeypatch.setattr(rlvr_train, "load_model", never)
    err = _refused(["train", "--data", "arithmetic", "--diagnostics", "signal-drift", "--save-every", "3",
                    "--log-every", "2", "--out", str(tmp_path / "run")], capsys, tmp_path, monkeypatch)
    assert [line.split(":")[2].strip() for line in err.splitlines()] == ["--save-every", "--log-every", "--diagnostics"]
    assert "leave --save-every at 0" in err and "leave --log-every at 1" in err and "drop --diagnostics" in err
    err = _refused(["train", "--data", "arithmetic", "--diagnostics", "signal-drift", "--diag-every", "0", "--out",
                    str(tmp_path / "run")], capsys, tmp_path, monkeypatch)  # monitors that failed to build: still named
    assert [line.split(":")[2].strip() for line in err.splitlines()] == ["--diag-every", "--diagnostics"]


@pytest.mark.parametrize("argv, flags", [
    (["--model", "tiny-bert@64", "--data", "shakespeare", "--rank", "0"], ["--rank", "--data"]),
    (["--model", "tiny-llama@64", "--data", "shakespeare", "--rank", "0", "--seq-len", "100000"], ["--rank", "--seq-len"]),
    (["--model", "tiny-llama@64", "--data", "shakespeare", "--lr", "-1", "--targets", "nope_proj"], ["--lr", "--targets"]),
    (["--model", "tiny-llama@64", "--data", "nope", "--rank", "0"], ["--rank", "--data"]),  # the name check's, once
])
def test_train_reports_the_runs_own_problems_with_the_flags(argv, flags, capsys, tmp_path, monkeypatch):
    """A data/model mismatch, a seq_len past the model's positions and targets that match nothing were found only
    once every flag validated (build.check_run ran inside train): fixing --rank revealed the next problem."""
    err = _refused(["train", *argv, "--steps", "2", "--out", str(tmp_path / "run"), "--quiet"], capsys, tmp_path, monkeypatch)
    assert [line.split(": ")[2] for line in err.splitlines() if ": error: " in line] == flags
