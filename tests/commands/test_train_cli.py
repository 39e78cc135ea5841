"""`lorascale train` and `lorascale demo` end to end on tiny models."""

import json

import torch

from lorascale.cli import main


def test_train_cli_writes_run_and_diverged_exit_0(tmp_path, capsys):
    argv = ["train", "--model", "tiny-llama", "--data", "kjv", "--steps", "6", "--batch-size", "2", "--seq-len", "32",
            "--max-examples", "40", "--rule", "alpha-r", "--lr", "1e-3", "--quiet", "--out", str(tmp_path / "ok")]
    assert main(argv) == 0
    assert json.loads((tmp_path / "ok" / "summary.json").read_text())["status"] == "complete"
    argv[argv.index("1e-3")] = "1e5"
    argv[-1] = str(tmp_path / "boom")
    assert main(argv) == 0  # a sweep must carry on past a diverged run
    assert json.loads((tmp_path / "boom" / "summary.json").read_text())["status"] == "diverged"
    assert "diverged" in capsys.readouterr().err


def test_train_cli_missing_column_fails_before_training(tmp_path, capsys):
    f = tmp_path / "d.jsonl"
    f.write_text('{"body": "x"}\n')
    assert main(["train", "--model", "tiny-llama", "--data", str(f), "--out", str(tmp_path / "r")]) == 2
    assert "lacks column" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing written


def test_demo_table_and_png(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--model", "tiny-llama", "--steps", "3", "--out", str(out), "--quiet", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["rule"] for r in res["rows"]] == ["alpha-r", "lora-alpha"]
    assert all(r["statuses"] == ["complete"] for r in res["rows"])
    assert (out / "loss_curves.png").stat().st_size > 10_000
    assert main(["demo", "--model", "tiny-llama", "--out", str(out)]) == 2  # never overwrites a demo


def test_train_cli_resume_continues_and_refuses_changed_settings(tmp_path, capsys, monkeypatch):
    from lorascale.train import Callback

    class StopAt4(Callback):
        def on_step_end(self, ctx, logs):
            if ctx.step == 4:
                raise KeyboardInterrupt  # before step 4 is logged or checkpointed: the last checkpoint is step 2's

    run = tmp_path / "r"
    argv = ["train", "--model", "tiny-llama", "--data", "kjv", "--steps", "5", "--batch-size", "2", "--seq-len", "32",
            "--max-examples", "40", "--rule", "alpha-r", "--lr", "1e-3", "--save-every", "2", "--quiet", "--out", str(run)]
    with monkeypatch.context() as m:
        m.setattr("lorascale.commands.train.make_diagnostics", lambda args: [StopAt4()])
        assert main(argv) == 130
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"

    assert main(["train", "--resume", str(run), "--lr", "1e-2"]) == 2  # a resumed run keeps its settings
    assert "--lr: a resumed run keeps the settings in its config.json" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["steps_done"] == 5
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert steps == [1, 2, 3, 4, 5]  # the first run's step 3 came after its checkpoint at 2: replaced, not repeated


def test_train_cli_refuses_a_precision_the_launcher_contradicts(tmp_path, capsys, monkeypatch):
    argv = ["train", "--model", "tiny-llama", "--data", "kjv", "--steps", "2", "--quiet", "--out", str(tmp_path / "r")]
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # as `accelerate launch --mixed_precision fp16` sets it
    assert main(argv + ["--precision", "bf16"]) == 2
    err = capsys.readouterr().err
    assert "--precision: the launcher set --mixed_precision fp16" in err and "Traceback" not in err
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    if not torch.cuda.is_available():
        assert main(argv + ["--precision", "fp16"]) == 2
        assert "--precision: fp16 needs a GPU" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # refused before anything was written
