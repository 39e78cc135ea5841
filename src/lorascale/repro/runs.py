"""Training many configs for a benchmark, resumably: finished runs are read back, the rest train as
members of packs where they can (:mod:`lorascale.train.members`), else one by one.

Every config carries its own ``out_dir``. A folder that holds a finished run of the same config (compared
as validated :class:`~lorascale.train.config.TrainConfig`, so settings added since take their defaults) is
read back; an unfinished run of it is cleared and trained again; a run of another config is an error.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from ..errors import ConfigError
from ..train.config import TrainConfig
from ..vocabulary import RunStatus

__all__ = ["train_all", "finished_run", "ema_score", "steps_done", "finite", "held_out_metrics", "MAX_PACK", "CPU_PACK"]

MAX_PACK = 32  # members per pack on a GPU: bounds a pack's memory (K × the batch's activations)
# On a CPU a pack saves nothing (compute-bound matmuls) and loses where the batch is large: MiniLM 8×128
# ran 1.04× separate runs at K = 4 and 0.78× at K = 8 (docs/results/members); SmolLM2 4×128 at K = 4 about
# 0.8× (2.95 s per member-step against 2.3 s alone, read off the progress bars of one compare run, not a
# bench: its 49k-token LM head's logits stacked K times). So one by one.
CPU_PACK = 1


def train_all(cfgs, progress: bool = True, max_pack: int | None = None) -> list:
    """One :class:`~lorascale.train.RunResult` per config, in order; packs of at most ``max_pack``
    members (default: :data:`MAX_PACK` on a GPU, :data:`CPU_PACK` on a CPU)."""
    from ..train import train
    from ..train.members import pack_key, train_members
    from ..train.members.pack import packable

    if max_pack is None:
        import torch

        max_pack = MAX_PACK if torch.cuda.is_available() else CPU_PACK
    results: list = [finished_run(c) for c in cfgs]
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cfgs):
        if results[i] is None:
            groups.setdefault(pack_key(c) if packable(c) else ("alone", i), []).append(i)
    for key, idx in groups.items():
        if key[0] == "alone" or max_pack == 1:
            for i in idx:
                results[i] = train(cfgs[i], progress=progress)
            continue
        for start in range(0, len(idx), max_pack):
            chunk = idx[start:start + max_pack]
            for i, r in zip(chunk, train_members([cfgs[i] for i in chunk], progress=progress)):
                results[i] = r
    return results


def finished_run(cfg: TrainConfig, clear: bool = True):
    """The finished run of ``cfg`` in its out_dir, or None. An unfinished run's folder is cleared for the
    run that follows, unless ``clear`` is False (a report that trains nothing: the folder may be another
    process's run in progress)."""
    from ..train.loop import RunResult
    from ..vocabulary import FINISHED

    d = Path(cfg.out_dir)
    try:
        summary = json.loads((d / "summary.json").read_text())
    except (OSError, ValueError):
        summary = None
    try:  # read on its own: a run cut before its first summary still says what it was
        stored = TrainConfig.from_flat(json.loads((d / "config.json").read_text()))
        same = stored.replace(out_dir=cfg.out_dir) == cfg  # a folder moved (e.g. committed) is still the same run
    except (OSError, ValueError, ConfigError):
        stored, same = None, False
    if summary is not None and same and summary.get("status") in FINISHED:
        return RunResult.from_summary(summary, [], d, "read back from an earlier run of this benchmark")
    if (summary is not None or stored is not None) and not same:  # never delete another configuration's run
        raise ConfigError("out", f"{d} holds a run of another configuration", "use a new `out` folder for a changed budget")
    if clear and d.exists():
        shutil.rmtree(d)  # an unfinished run of this very config: it has no result to keep
    return None


def steps_done(runs) -> int:
    """The member-steps runs took (a diverged run stops early), as tune counts its own."""
    return sum(r.summary.get("steps_done") or 0 for r in runs)


def ema_score(r) -> float:
    """μA's selection score: the final EMA(0.1) training loss of a complete run; +inf otherwise."""
    x = r.final_ema_loss
    return x if r.status == RunStatus.COMPLETE and x is not None and math.isfinite(x) else math.inf


def held_out_metrics(r) -> dict[str, float]:
    """Every held-out metric of run ``r``'s last evaluation (``val_loss``, ``val_recall_at_1``, ``val_mrr``…).

    Read from the last evaluation row of its ``metrics.jsonl``, which holds them all; ``summary.json``
    keeps only the task's own metric and ``val_loss``, the fallback when the log cannot be read.
    """
    last: dict = {}
    try:
        with open(Path(r.run_dir) / "metrics.jsonl") as f:
            for line in f:
                if '"val_' in line:
                    last = json.loads(line)
    except (OSError, TypeError, ValueError):
        last = {}
    if not last:
        last = {k: v for k, v in (r.summary or {}).items() if k.startswith("val_")}
    return {k: v for k, v in last.items() if k.startswith("val_") and finite(v) is not None}


def finite(x):
    return float(x) if x is not None and math.isfinite(float(x)) else None

