"""The run directory: config.json, metrics.jsonl (one line per logged step), summary.json, adapter/.

summary.json is written atomically (temp file + rename) so a crash or Ctrl-C never leaves a torn file.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from pathlib import Path

from ..errors import ConfigError
from ..rules import Finetune
from ..vocabulary import RunStatus

__all__ = ["RunWriter", "default_run_dir", "json_safe"]


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

    def start(self, config: dict) -> None:
        if not self.enabled:
            return
        if (self.dir / "summary.json").exists():
            raise ConfigError("out_dir", f"{self.dir} already holds a run", "pass a new out_dir (runs are never overwritten)")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        self._metrics = (self.dir / "metrics.jsonl").open("a", buffering=1)  # line-buffered: each step lands
        self.summary({"status": RunStatus.RUNNING})

    def log(self, record: dict) -> None:
        if self._metrics is not None:
            self._metrics.write(json.dumps(json_safe(record)) + "\n")

    def summary(self, summary: dict) -> None:
        if not self.enabled:
            return
        RunStatus(summary.get("status"))  # an unknown status is a bug: ValueError names it
        tmp = self.dir / "summary.json.tmp"
        tmp.write_text(json.dumps(json_safe(summary), indent=2) + "\n")
        tmp.replace(self.dir / "summary.json")

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None


def json_safe(d: dict) -> dict:
    """JSON has no NaN/inf: write them as null so every file stays standard JSON (one rule for all writers)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
