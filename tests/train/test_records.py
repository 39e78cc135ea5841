"""The run directory's writer on a full disk: a clean refusal at the start, a status recorded later."""

import errno
import json
import os
from pathlib import Path

import pytest

from lorascale.errors import ConfigError
from lorascale.train.records import RunWriter


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
