"""The run directory's files: metrics.jsonl belongs to one run."""

import errno
import json
import os
from pathlib import Path

import pytest

from lorascale.errors import ConfigError
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


def full_disk_for(monkeypatch, name: str) -> None:
    """Writing a file called ``name`` fails as on a full disk: created, but its data never lands."""
    real = Path.write_text

    def write_text(self, *a, **k):
        if self.name == name:
            self.touch()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", write_text)


@pytest.mark.parametrize("full_at", ["config.json", "summary.json.tmp"])
def test_start_on_a_full_disk_refuses_and_leaves_nothing(tmp_path, monkeypatch, full_at):
    full_disk_for(monkeypatch, full_at)
    w = RunWriter(tmp_path / "new" / "run")
    with pytest.raises(ConfigError, match="cannot write the run directory .*No space left on device") as e:
        w.start({"rank": 8})
    assert e.value.field == "out_dir"
    assert not (tmp_path / "new" / "run").exists()  # made by start, removed by it
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(ConfigError):
        RunWriter(kept).start({"rank": 8})
    assert kept.is_dir() and list(kept.iterdir()) == []  # a folder the user made stays, emptied of ours


def test_a_summary_on_a_full_disk_is_rewritten_in_place(tmp_path, monkeypatch):
    w = RunWriter(tmp_path / "run")
    w.start({"rank": 8})
    full_disk_for(monkeypatch, "summary.json.tmp")
    w.summary({"status": "failed", "message": "OSError: [Errno 28] No space left on device", "steps_done": 7})
    w.close()
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == {
        "status": "failed", "message": "OSError: [Errno 28] No space left on device", "steps_done": 7}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json", "metrics.jsonl", "summary.json"]
