"""The run directory: config.json, metrics.jsonl (one line per logged step), summary.json, adapter/.

summary.json is written atomically (temp file + rename) so a crash or Ctrl-C never leaves a torn file.
When the disk is full the temp file cannot be written; the summary is then rewritten in place, so
that a run that fails for lack of space is still recorded ``failed`` rather than left ``running``.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import uuid
from pathlib import Path

from ..errors import ConfigError
from ..rules import Finetune
from ..vocabulary import RunStatus

__all__ = ["RunWriter", "default_run_dir", "json_safe", "keep_records_through", "outcome_of"]


def default_run_dir(cfg) -> Path:
    lora = cfg.finetune is Finetune.LORA
    tag = f"{cfg.adapter.scaling.rule}-r{cfg.adapter.rank}" if lora else "full"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    unique = uuid.uuid4().hex[:6]  # two runs started in the same second by one process must not collide
    return Path("runs") / f"{stamp}-{cfg.model.replace('/', '_')}-{tag}-s{cfg.seed}-{unique}"


class RunWriter:
    def __init__(self, run_dir: Path | None, enabled: bool = True):
        self.dir = Path(run_dir) if run_dir is not None else None
        self.enabled = enabled and self.dir is not None
        self._metrics = None

    def start(self, config: dict, resume_step: int | None = None) -> list[dict]:
        """Begin the run's files; the metrics records kept from before (a resumed run's, through
        ``resume_step``; the lines an interrupted run wrote past its checkpoint are dropped).

        A disk that cannot take them (full, over quota, read-only) is a ConfigError naming
        ``out_dir``, and what a new run wrote is removed again: no 0-byte files are left behind.
        """
        if not self.enabled:
            return []
        kept = []
        if resume_step is None and (self.dir / "summary.json").exists():
            raise ConfigError("out_dir", f"{self.dir} already holds a run",
                              "pass a new out_dir (runs are never overwritten), or resume it")
        made = not self.dir.exists()
        try:
            if resume_step is None:
                self.dir.mkdir(parents=True, exist_ok=True)
                (self.dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
            else:
                kept = keep_records_through(self.dir / "metrics.jsonl", resume_step)
            # a run's metrics file holds that run's records only: a new run starts it afresh, never appends;
            # line-buffered, so each step lands
            self._metrics = (self.dir / "metrics.jsonl").open("w" if resume_step is None else "a", buffering=1)
            self.summary({"status": RunStatus.RUNNING})
        except OSError as e:
            if resume_step is None:
                self._undo_start(made)
            raise ConfigError("out_dir", f"cannot write the run directory {self.dir}: {e.strerror or e}",
                              "free space on that disk, or choose a run directory elsewhere") from None
        return kept

    def log(self, record: dict) -> None:
        if self._metrics is not None:
            self._metrics.write(json.dumps(json_safe(record)) + "\n")

    def summary(self, summary: dict) -> None:
        """Write summary.json atomically; on a full disk, in place over the old one (see module doc)."""
        if not self.enabled:
            return
        RunStatus(summary.get("status"))  # an unknown status is a bug: ValueError names it
        text = json.dumps(json_safe(summary), indent=2) + "\n"
        final, tmp = self.dir / "summary.json", self.dir / "summary.json.tmp"
        try:
            tmp.write_text(text)
            tmp.replace(final)
        except OSError:
            tmp.unlink(missing_ok=True)  # never leave a torn or 0-byte temp file
            if not final.exists():
                raise
            _overwrite(final, text)

    def close(self) -> None:
        if self._metrics is not None:
            try:
                self._metrics.close()
            except OSError:  # its last line could not be flushed (disk full): the run's status says why
                pass
            self._metrics = None

    def _undo_start(self, made: bool) -> None:
        self.close()
        for name in ("config.json", "metrics.jsonl", "summary.json", "summary.json.tmp"):
            (self.dir / name).unlink(missing_ok=True)
        if made:
            with contextlib.suppress(OSError):
                self.dir.rmdir()  # only if empty, and only if this run made it


def _overwrite(path: Path, text: str) -> None:
    """Rewrite ``path`` in place, without truncating it first: a summary (< 4 KiB) fits in the block the
    old one already holds, so this works on a full disk where a new temp file cannot be created. If
    the write fails, the old summary is left as it was."""
    data = text.encode()
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate(len(data))


def read_records(path: Path) -> list[dict]:
    """The records of a metrics.jsonl (none if it is missing). Only the last line may be torn (a process
    killed mid-write): it is dropped; a bad line before it raises ``json.JSONDecodeError``."""
    lines = [x for x in path.read_text().splitlines() if x.strip()] if path.exists() else []
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise
    return records


def keep_records_through(path: Path, step: int) -> list[dict]:
    """Rewrite a metrics.jsonl with only its records of steps ≤ ``step`` (atomically); returns them."""
    kept = [r for r in read_records(path) if r.get("step", 0) <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)
    return kept


def json_safe(d: dict) -> dict:
    """JSON has no NaN/inf: write them as null so every file stays standard JSON (one rule for all writers)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def outcome_of(e: BaseException, steps: int) -> tuple[RunStatus, str]:
    """The status and message a run records when ``e`` stops it after ``steps`` steps: Ctrl-C or SIGTERM
    (:mod:`lorascale.interrupts`) is ``interrupted``, anything else ``failed``."""
    from ..interrupts import describe

    if isinstance(e, KeyboardInterrupt):
        return RunStatus.INTERRUPTED, f"interrupted by {describe(e)} after {steps} steps"
    return RunStatus.FAILED, f"{type(e).__name__}: {e}"
