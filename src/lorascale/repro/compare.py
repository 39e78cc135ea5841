"""``lorascale repro compare``: LoRA-α's Table 1/2 protocol at our scale, methods × tasks.

For every task (:data:`~.compare_setup.TASKS`) and method (:data:`~.compare_setup.METHODS`): the method at
the task's base learning rate, and its sweep ×2⁻³ … ×2³ around it (over η, or over the knob α for
LoRA-α), ``seeds`` seeds per point, on one fixed held-out split. A method's tuned point (the paper's
asterisk) is the multiplier with the lowest mean final EMA(0.1) training loss over seeds (μA's rule);
both points are reported on the held-out metric, mean ± std over seeds. Runs are resumable
(:mod:`.runs`); on a GPU LoRA, rsLoRA, LoRA+ and LoRA-α train as members of packs (on a CPU one by one), DoRA, PiSSA and full
finetuning (and every rlvr run) one by one.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from enum import StrEnum
from pathlib import Path

from pydantic import StrictStr, model_validator

from ..adapters.spec import AdapterSpec
from ..errors import ConfigError, ConfigErrors
from ..outputs import json_text
from ..rules import Finetune
from ..schema import Float, PositiveFloat, PositiveInt, Settings, flatten, setting
from ..sweep.stats import paired_interval, welch_interval
from ..train.config import TrainConfig
from ..vocabulary import RunStatus, higher_is_better
from .compare_setup import METHODS, SWEEP_LOG2, TASKS
from .runs import ema_score, finite, held_out_metrics, steps_done, train_all
from .timing import run_timing

__all__ = ["CompareRequest", "run_compare", "method_configs", "GapVerdict", "gap_verdict"]


class CompareRequest(Settings):
    tasks: list[StrictStr] = setting(["minilm-genre"], "tasks to compare on: " + ", ".join(TASKS), min_length=1)
    methods: list[StrictStr] = setting(list(METHODS), "methods: " + ", ".join(METHODS), min_length=1)
    seeds: PositiveInt = setting(3, "seeds per point")
    rank: PositiveInt = setting(8, "LoRA rank (LoRA-α Table 1 uses 8)")
    sweep_log2: list[Float] = setting(list(SWEEP_LOG2), "log2 multipliers of each method's sweep (0 is the base point)",
                                      min_length=1)
    base_lr: PositiveFloat | None = setting(None, "one base learning rate for every task (default: each task's own)")
    steps: PositiveInt | None = setting(None, "optimizer steps for every task (default: each task's budget)")
    out: StrictStr | None = setting(None, "output folder (default repro-compare)")

    @model_validator(mode="after")
    def _known(self) -> "CompareRequest":
        errors = [ConfigError("tasks", f"unknown task {t!r}", f"choose from {', '.join(TASKS)}") for t in self.tasks
                  if t not in TASKS]
        errors += [ConfigError("methods", f"unknown method {m!r}", f"choose from {', '.join(METHODS)}") for m in self.methods
                   if m not in METHODS]
        if 0.0 not in self.sweep_log2:
            errors.append(ConfigError("sweep_log2", "the sweep must hold the base point 0", "e.g. -3 -2 -1 0 1 2 3"))
        if any(abs(x) > 10 for x in self.sweep_log2):
            errors.append(ConfigError("sweep_log2", "multipliers beyond 2^±10 are not a sweep around a base point",
                                      "use values in [-10, 10]"))
        ConfigErrors.raise_if_any(errors)
        return self


def method_configs(req: CompareRequest, task: str, method: str, root: Path) -> list[tuple[float, int, TrainConfig]]:
    """(log2 multiplier, seed, config) of every run of ``method`` on ``task``."""
    t, m = TASKS[task], METHODS[method]
    flat = {**t.run, "rank": req.rank, "save_model": False, **({"steps": req.steps} if req.steps else {})}
    base = TrainConfig.from_flat(flat)
    lr0 = (req.base_lr or t.base_lr) * m.lr_factor
    if m.changes.get("finetune") == Finetune.FULL:
        base = base.replace(**flatten(AdapterSpec()), finetune=Finetune.FULL)  # no adapter: its settings at their defaults
    else:
        base = base.replace(**m.changes)
    out = []
    for x in req.sweep_log2:
        for s in range(req.seeds):
            knob = {"alpha": m.changes.get("alpha", 1.0) * 2.0**x, "lr": lr0} if m.sweeps == "alpha" else {"lr": lr0 * 2.0**x}
            out.append((x, s, base.replace(**knob, seed=s, out_dir=str(root / task / method / f"x{x:+g}-s{s}"))))
    return out


def run_compare(req: CompareRequest, progress: bool = True) -> dict:
    root = Path(req.out or "repro-compare")
    root.mkdir(parents=True, exist_ok=True)
    started = time.time()
    result = {"request": json.loads(req.model_dump_json()), "tasks": {}}
    for task in req.tasks:
        runs = [(m, x, s, c) for m in req.methods for x, s, c in method_configs(req, task, m, root)]
        trained = train_all([c for *_, c in runs], progress=progress)
        rows = {}
        for m in req.methods:
            mine = [(x, seed, r) for (mm, x, seed, _), r in zip(runs, trained) if mm == m]
            rows[m] = _summarise(m, mine, req)
        metric = next((r.eval_metric for r in trained if r.eval_metric), "")
        result["tasks"][task] = {"label": TASKS[task].label, "metric": metric, "higher_is_better": higher_is_better(metric),
                                 "base_lr": req.base_lr or TASKS[task].base_lr, "methods": rows,
                                 **run_timing(trained),
                                 "verdict": verdict(rows, higher_is_better(metric))}
    result["seconds"] = round(time.time() - started)
    (root / "compare.json").write_text(json_text(result) + "\n")  # standard JSON: a diverged run's inf is null
    from .compare_report import write_compare_md

    write_compare_md(result, root / "compare.md")
    return result


def _summarise(method: str, runs: list, req: CompareRequest) -> dict:
    by_x: dict[float, list] = {}
    for x, seed, r in runs:
        by_x.setdefault(x, []).append((seed, r))
    mean_ema = {x: statistics.fmean(ema_score(r) for _, r in rs) for x, rs in by_x.items()}
    best = min(mean_ema, key=lambda x: (mean_ema[x], abs(x)))  # ties: the point nearer the base
    return {"label": METHODS[method].label, "sweeps": METHODS[method].sweeps,
            "base": _point(0.0, by_x[0.0]), "tuned": _point(best, by_x[best]),
            "sweep": [{"log2_mult": x, "mean_ema": _num(v)} for x, v in sorted(mean_ema.items())],
            "runs": len(runs), "member_steps": steps_done(r for *_, r in runs)}


def _point(x: float, rs: list) -> dict:
    """The task's metric at one multiplier over seeds (``by_seed``: each seed's value, keyed by the seed, for
    an interval paired by seed), and (``held_out``) every held-out metric the runs logged."""
    logged = [held_out_metrics(r) for _, r in rs]
    names = sorted({k for m in logged for k in m})
    return {"log2_mult": x, **_mean_std([finite(r.eval_value) for _, r in rs]),
            "by_seed": {str(seed): finite(r.eval_value) for seed, r in rs},
            "held_out": {k: _mean_std([m.get(k) for m in logged]) for k in names},
            "statuses": [str(r.status) for _, r in rs]}


def _mean_std(vals: list) -> dict:
    vals = [v for v in vals if v is not None]
    return {"mean": statistics.fmean(vals) if vals else None,
            "std": statistics.stdev(vals) if len(vals) > 1 else (0.0 if vals else None), "n": len(vals)}


class GapVerdict(StrEnum):
    """What the seeds say about LoRA-α's gap to a baseline, read off the gap's 95% interval."""

    WIN = "win"  # the interval lies above 0: LoRA-α is better
    LOSE = "lose"  # the interval lies below 0
    TIE = "tie"  # the interval spans 0 and lies within ± the larger seed-std: equal to within seed noise
    INCONCLUSIVE = "inconclusive"  # the interval spans 0 and reaches past the seed noise, or there is none


def gap_verdict(ci: tuple[float, float] | list[float] | None, noise: float) -> GapVerdict:
    """The verdict of a gap (> 0: LoRA-α is better) from its 95% interval and the seed noise (the larger
    of the two points' seed-stds). No interval (fewer than 2 seeds), or one of zero width away from 0
    (every seed's difference equal: no spread seen, so none is claimed, as ``gap_text`` prints it):
    inconclusive, whatever the gap. A tie needs the interval inside ± the noise, which Welch's reaches
    only from about 7 + 7 seeds (its half-width is ≥ 2.0× the larger std at 3 + 3): at 3 seeds ties come
    from paired intervals."""
    if ci is None:
        return GapVerdict.INCONCLUSIVE
    lo, hi = ci
    if lo == hi != 0:
        return GapVerdict.INCONCLUSIVE
    if lo > 0:
        return GapVerdict.WIN
    if hi < 0:
        return GapVerdict.LOSE
    return GapVerdict.TIE if -noise <= lo and hi <= noise else GapVerdict.INCONCLUSIVE


def verdict(rows: dict, higher: bool) -> dict:
    """LoRA-α at the base rate against each baseline's tuned point on the held-out metric: the gap (> 0:
    LoRA-α is better), ``noise`` (the larger of the two seed-stds), ``ci95`` (the gap's 95% interval,
    Welch, from the seeds) and ``ci95_paired`` (the same gap's interval paired by seed: every method runs
    the same seeds, so the same batch order and held-out set, and a seed that is hard for one method is
    hard for all: the difference cancels that shared swing; None for points stored without per-seed values
    or with < 2 shared seeds). ``verdict`` (:func:`gap_verdict`) reads the paired interval, Welch's where
    there is no paired one. A seed that did not finish complete (diverged: no held-out value) is the worst
    outcome, not a missing one: the means and intervals cover the finished seeds only, so a point with
    such seeds loses to one without them, and where both have them the verdict is inconclusive
    (``unfinished`` counts them per point); a side none of whose seeds finished has no gap (``gap`` and
    ``noise`` None) and loses the same way."""
    if "lora-alpha" not in rows:
        return {}
    mine = rows["lora-alpha"]["base"]
    out = {}
    for m, row in rows.items():
        other = row["tuned"]
        if m == "lora-alpha" or any(p["mean"] is None and not _unfinished(p) for p in (mine, other)):
            continue  # a point with no stored runs: nothing to compare
        unfinished = {"lora-alpha": _unfinished(mine), m: _unfinished(other)}
        if mine["mean"] is None or other["mean"] is None:  # every seed of one side (or both) diverged
            verdict_ = (GapVerdict.INCONCLUSIVE if mine["mean"] is None and other["mean"] is None else
                        GapVerdict.LOSE if mine["mean"] is None else GapVerdict.WIN)
            out[m] = {"gap": None, "noise": None, "verdict": str(verdict_), "ci95": None, "ci95_paired": None,
                      "unfinished": unfinished}
            continue
        gap = (mine["mean"] - other["mean"]) * (1 if higher else -1)  # > 0: LoRA-α is better
        noise = max(mine["std"] or 0.0, other["std"] or 0.0)
        sign = 1 if higher else -1
        ci = welch_interval(mine["mean"], mine["std"] or 0.0, mine.get("n", 0), other["mean"], other["std"] or 0.0,
                            other.get("n", 0))
        shared = sorted(set(mine.get("by_seed") or {}) & set(other.get("by_seed") or {}), key=int)
        paired = paired_interval([mine["by_seed"][s] for s in shared], [other["by_seed"][s] for s in shared])
        ci = None if ci is None else sorted((sign * ci[0], sign * ci[1]))
        paired = None if paired is None else sorted((sign * paired[0], sign * paired[1]))
        verdict_ = gap_verdict(paired or ci, noise)
        if any(unfinished.values()):
            verdict_ = (GapVerdict.INCONCLUSIVE if all(unfinished.values()) else
                        GapVerdict.LOSE if unfinished["lora-alpha"] else GapVerdict.WIN)
        out[m] = {"gap": gap, "noise": noise, "verdict": str(verdict_), "ci95": ci, "ci95_paired": paired,
                  "unfinished": unfinished}
    return out


def _unfinished(point: dict) -> int:
    """How many of a point's seeds did not finish complete (a diverged run has no held-out value)."""
    return sum(s != RunStatus.COMPLETE for s in point.get("statuses") or [])


def _num(v: float):
    return v if math.isfinite(v) else None
