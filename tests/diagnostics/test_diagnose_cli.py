"""`lorascale diagnose RUN_DIR` on a real run of the training loop with both monitors attached."""

import json
from pathlib import Path

import pytest

from lorascale.cli import main
from lorascale.diagnostics import make_callbacks
from lorascale.train import TrainConfig, train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    cfg = TrainConfig(model="tiny-llama", data="shakespeare", batch_size=2, seq_len=32, max_examples=64, max_val_batches=1,
                      steps=4, lr=3e-3, rule="alpha-r", rank=4, init="A", targets=("gate_proj", "up_proj", "down_proj"),
                      out_dir=str(out))
    result = train(cfg, callbacks=make_callbacks(["signal-drift", "feature-updates"], every=2), progress=False)
    assert result.status == "complete"
    return out


def test_the_loop_logs_diagnostics_every_k_steps(run_dir):
    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    monitored = [r["step"] for r in recs if "sd/all/signal_norm" in r]
    assert monitored == [2, 4]
    kinds = {k.split("/")[1] for r in recs for k in r if k.startswith("sd/")}
    assert kinds == {"all", "gate_proj", "up_proj", "down_proj"}
    assert all(r["fu/all/delta2"] > 0 for r in recs if "fu/all/delta2" in r)


def test_diagnose_plots_traces_and_summarises_per_layer_type(run_dir, capsys):
    assert main(["diagnose", str(run_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["summary"]) == {"sd", "fu"}
    # the summary recomputed from the run's own records: count, median and last value of each series
    import statistics

    recs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for prefix, kind, name in (("sd", "down_proj", "signal_norm"), ("sd", "down_proj", "signal_align"), ("fu", "all", "delta2")):
        series = [r[f"{prefix}/{kind}/{name}"] for r in recs if f"{prefix}/{kind}/{name}" in r]
        got = out["summary"][prefix][kind][name]
        assert got["n"] == len(series) == 2, (prefix, kind, name)
        assert got["median"] == statistics.median(series) and got["last"] == series[-1], (prefix, kind, name)
    assert len(out["files"]) >= 2  # one figure per monitor prefix at least
    for f in out["files"].values():
        assert f.endswith(".png") and Path(f).parent == run_dir / "diagnostics" and Path(f).stat().st_size > 5_000
    assert main(["diagnose", str(run_dir)]) == 0  # the readable table
    assert "signal/drift" in capsys.readouterr().out


def test_diagnose_lanczos_estimates_the_trained_adapters_curvature(run_dir, capsys):
    assert main(["diagnose", str(run_dir), "--lanczos", "--lanczos-steps", "8", "--hutchinson-samples", "3",
                 "--batch-size", "2", "--json"]) == 0
    c = json.loads(capsys.readouterr().out)["curvature"]
    assert c["dim"] == 2 * 3 * 4 * (64 + 128)  # 2 blocks × gate/up/down × r·(d_in + d_out), r = 4
    assert c["lora"]["lambda_max"] > 0 > c["lora"]["lambda_min"]  # H_LoRA is indefinite (Prop. 2(ii))
    assert c["signal"]["lambda_max"] > 0 and c["lora"]["trace_stderr"] > 0


def test_diagnose_bad_input_exits_2(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path / "missing")]) == 2
    assert "RUN_DIR" in capsys.readouterr().err
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n')
    assert main(["diagnose", str(tmp_path)]) == 2
    assert "metrics.jsonl:2" in capsys.readouterr().err
    assert main(["diagnose", str(tmp_path), "--hutchinson-samples", "1"]) == 2


@pytest.mark.parametrize("line, kind", [("5", "int"), ("[1, 2]", "list"), ('"step"', "str"), ("null", "NoneType")])
def test_diagnose_non_object_metrics_lines_exit_2_naming_the_line(tmp_path, capsys, line, kind):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n' + line + "\n")
    before = sorted(tmp_path.iterdir())
    assert main(["diagnose", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"error: RUN_DIR: {tmp_path / 'metrics.jsonl'}:2 is {kind}" in err and "not an object" in err, err
    assert "Traceback" not in err and sorted(tmp_path.iterdir()) == before


def test_lanczos_refuses_a_pissa_run_whose_adapter_was_converted(tmp_path, capsys):
    """A PiSSA run saves plain LoRA of rank 2r on the original weights; rebuilding the run gives rank-r
    factors on the residual weights, so its saved adapter does not describe the model rebuilt."""
    out = tmp_path / "pissa"
    cfg = TrainConfig(model="tiny-llama", data="shakespeare", batch_size=2, seq_len=32, max_examples=64, max_val_batches=1,
                      steps=2, lr=1e-3, rank=4, method="pissa", out_dir=str(out))
    assert train(cfg, progress=False).status == "complete"
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["r"] == 8  # converted: 2r
    assert main(["diagnose", str(out), "--lanczos"]) == 2
    err = capsys.readouterr().err
    assert "--lanczos" in err and "pissa run" in err and "rank 8" in err


@pytest.mark.parametrize("changes, says", [(dict(method="dora", rank=4), "DoRA run"),
                                           (dict(finetune="full"), "full-finetuning run")])
def test_lanczos_refuses_runs_whose_curvature_split_does_not_hold(tmp_path, capsys, changes, says):
    """Refused from the run's config.json, before any model is built: DoRA rescales s·B·A's columns, and full
    finetuning has no factors."""
    out = tmp_path / "run"
    out.mkdir()
    cfg = TrainConfig(model="tiny-llama", data="shakespeare", steps=2, lr=1e-3, **changes, out_dir=str(out))
    (out / "config.json").write_text(json.dumps(cfg.to_flat()))
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    assert main(["diagnose", str(out), "--lanczos"]) == 2
    err = capsys.readouterr().err
    assert "--lanczos" in err and says in err and "Traceback" not in err



def test_diagnose_writes_its_figures_again_but_never_over_other_files(run_dir, tmp_path, capsys):
    """--out into a folder of the user's files rewrote any of the same name silently (train and demo refuse);
    its own figures from an earlier call are the regenerate workflow and are written again."""
    figs = tmp_path / "figs"
    assert main(["diagnose", str(run_dir), "--out", str(figs), "--json"]) == 0
    assert main(["diagnose", str(run_dir), "--out", str(figs), "--json"]) == 0  # its own folder: written again
    assert sorted(p.name for p in figs.iterdir()) == ["fu_traces.png", "sd_traces.png"]
    capsys.readouterr()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "sd_traces.png").write_text("the user's own")
    (mine / "notes.txt").write_text("the user's own")
    assert main(["diagnose", str(run_dir), "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "error: --out: " in err and "folder of other files" in err
    assert {p.name: p.read_text() for p in mine.iterdir()} == {"sd_traces.png": "the user's own", "notes.txt": "the user's own"}
