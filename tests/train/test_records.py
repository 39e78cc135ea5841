"""The run directory's files: metrics.jsonl belongs to one run."""

import json

import pytest

from lorascale.train.records import RunWriter, keep_records_through


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_a_new_run_never_appends_to_old_metrics(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n{"step": 2, "loss": 8.0}\n')  # no summary.json
    w = RunWriter(tmp_path)
    assert w.start({"rank": 4}) == []
    w.log({"step": 1, "loss": 5.0})
    w.close()
    assert lines(tmp_path / "metrics.jsonl") == [{"step": 1, "loss": 5.0}]


def test_a_resumed_run_continues_after_its_checkpoint_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    # steps 1-3 and an evaluation at 2; step 3 came after the checkpoint at 2; the last line was torn by a kill
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 2, "val_loss": 1.5}\n{"step": 3}\n{"step": 4, "lo')
    w = RunWriter(tmp_path)
    kept = w.start({"rank": 4}, resume_step=2)
    assert kept == [{"step": 1}, {"step": 2}, {"step": 2, "val_loss": 1.5}]
    w.log({"step": 3, "loss": 1.0})
    w.close()
    assert [r["step"] for r in lines(path)] == [1, 2, 2, 3] and lines(path)[-1]["loss"] == 1.0


def test_only_the_last_line_may_be_torn(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"st\n{"step": 2}\n')
    with pytest.raises(json.JSONDecodeError):
        keep_records_through(path, 5)
