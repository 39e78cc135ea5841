"""The headline benchmark: LoRA-α's default and ``tune``'s answer against tuned baselines, with their compute.

One model, data, rank, step budget and held-out set for every arm, ``seeds`` seeds each:

(a) LoRA-α (Variant I, α = 1) at η_FFT — one run per seed, no search.
(b) standard LoRA (lora_alpha = r) — the best of an 8-point log2 learning-rate sweep.
(c) rsLoRA (lora_alpha = 16, s = α/√r), and (c+) LoRA+ (α = r, B at λ = 16 × A's rate, PEFT's
    ``create_loraplus_optimizer``) — each the best of the same sweep.
(d) ``tune``'s choice (it estimates η_FFT itself) under a cap of ``tune_compute`` × (b)'s member-steps,
    and what it spent.
(e) full finetuning — the best of its own 8-point sweep; its optimum is the η_FFT that (a) uses.

A sweep's best learning rate is chosen on the mean final EMA(0.1) training loss over seeds (μA's rule),
then reported on the held-out set. A best rate on the grid's first or last point is a bound, not an
optimum, so the sweep goes on one grid step past that edge, up to ``edge_extension`` rates, as a sweep
spec's grid extends (the baselines are not held back by where the default grid happens to end; their
compute counts every rate). Compute is counted in member-steps (one LoRA or FFT step of one
configuration): a sweep of 8 rates × S seeds costs 8·S·T. LoRA arms train as members of packs on a GPU, one by one on a CPU (``runs.CPU_PACK``).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from pathlib import Path

from pydantic import StrictBool, StrictStr, field_validator, model_validator

from ..adapters.spec import AdapterSpec
from ..errors import ConfigError, ConfigErrors
from ..outputs import json_text
from ..schema import Float, NonNegativeInt, PositiveFloat, PositiveInt, Settings, flatten, same_setting, setting
from ..sweep.stats import paired_interval, welch_interval
from ..train.config import TrainConfig
from ..vocabulary import RunStatus
from ..tune.request import REFERENCE_GRID_LRS, REFERENCE_GRID_SEEDS, TuneRequest, step_budget_only
from .headline_report import ORDER
from .runs import ema_score, finished_run, finite, steps_done, train_all
from .timing import run_timing

log = logging.getLogger(__name__)

__all__ = ["HeadlineRequest", "Arm", "run_headline", "LORA_LOG2_LR", "FFT_LOG2_LR"]

# the grid tune's compute_fraction is measured against: 3.1e-5 … 3.9e-3, around 10 × η_FFT (the folk rule)
LORA_LOG2_LR = tuple(float(x) for x in range(-15, -15 + REFERENCE_GRID_LRS))
FFT_LOG2_LR = tuple(float(x) for x in range(-18, -10))  # 3.8e-6 … 4.9e-4


class HeadlineRequest(Settings):
    run: TrainConfig = setting(TrainConfig(model="minilm-l6", data="shakespeare-genre", steps=150, batch_size=16,
                                           seq_len=64, max_val_batches=16, rank=16, save_model=False),
                               "the shared budget, data and held-out set")
    seeds: PositiveInt = setting(REFERENCE_GRID_SEEDS, "seeds per arm")
    lora_log2_lr: list[Float] = setting(list(LORA_LOG2_LR), "log2 learning rates of the LoRA/rsLoRA sweeps", min_length=2,
                                        fix="list two or more rates, each once, e.g. -15 -14 -13")
    fft_log2_lr: list[Float] = setting(list(FFT_LOG2_LR), "log2 learning rates of the FFT sweep", min_length=2,
                                       fix="list two or more rates, each once, e.g. -18 -17 -16")
    edge_extension: NonNegativeInt = setting(2, "rates a sweep adds past its grid's edge while its best rate lies on"
                                             " that edge (0: the grid as given)")
    candidates: PositiveInt = same_setting(TuneRequest, "candidates",
                                           description="tune's starting candidates at most (fewer when tune_compute caps them)")
    tune_compute: PositiveFloat = setting(0.4, "tune's whole planned cost as a fraction of (b)'s sweep (the issue's"
                                          " target: (d) at ≤ 40% of (b)'s compute)", le=1.0)
    out: StrictStr | None = setting(None, "output folder (default repro-headline)")
    report_only: StrictBool = setting(False, "train nothing: report the arms whose runs have all finished under `out`")

    @field_validator("lora_log2_lr", "fft_log2_lr")
    @classmethod
    def _each_rate_once(cls, v):
        if len(set(v)) != len(v):
            raise ValueError(f"repeats rates {v}; list each once")
        return v

    @model_validator(mode="before")
    @classmethod
    def _step_budget(cls, data: Any) -> Any:
        """Epochs are refused below in the headline's words, not as "both are set" against the default run's
        steps (150), which the nesting of flat keys puts beside them."""
        return step_budget_only(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _rates_are_the_arms_own(self) -> "HeadlineRequest":
        """Each arm finds its rate: a given ``lr`` would be ignored by every sweep, and a given ``lr_fft`` would
        skip (d)'s η_FFT probe, so tune would neither estimate η_FFT nor pay for it as the benchmark says. A given
        rule or α knob would be overridden by every arm's own. The
        arms are compared at one step budget, which tune's rungs need too."""
        why = {"lr": "each arm sweeps or searches its own learning rate",
               "lr_fft": "the headline finds η_FFT itself: (e)'s sweep gives it to (a), and tune's probe estimates it for (d)"}
        errors = [ConfigError(k, why[k], f"drop `{k}`") for k in ("lr", "lr_fft") if k in self.run.model_fields_set]
        errors += [ConfigError(k, "each arm sets its own scaling rule and multiplier ((a) and (d) LoRA-α from α = 1,"
                               " (b) α = r, (c) rsLoRA's sweep); only LoRA-α's `c` is shared", f"drop `{k}`")
                   for k in ("rule", "alpha", "lora_alpha", "gamma") if k in self.run.adapter.scaling.model_fields_set]
        if self.run.epochs is not None:
            errors.append(ConfigError("epochs", "the headline compares its arms at one step budget, which tune's rungs"
                                      " are cut from", "give `steps` instead of `epochs`"))
        ConfigErrors.raise_if_any(errors)
        return self


@dataclass
class Arm:
    key: str
    label: str
    lr: float
    member_steps: int  # what finding this setting cost (search included)
    eval_member_steps: int  # the seeds reported (for (a), (b), (c) and (e) part of the search)
    val_loss: list[float] = field(default_factory=list)
    eval_metric: str = ""
    eval_value: list[float] = field(default_factory=list)
    ema_loss: list[float] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    sweep: list[dict] = field(default_factory=list)  # per lr: mean EMA over seeds
    at_edge: list[dict] = field(default_factory=list)  # (d): tune's warnings that its answer is a bound (tune/edges.py)

    def stat(self, name: str) -> tuple[float, float]:
        xs = self._finite(name)
        if not xs:
            return math.nan, math.nan
        return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)

    def count(self, name: str) -> int:
        """How many seeds gave ``name`` a finite value (what :meth:`stat` averaged)."""
        return len(self._finite(name))

    def _finite(self, name: str) -> list[float]:
        return [x for x in getattr(self, name) if x is not None and math.isfinite(x)]


def run_headline(req: HeadlineRequest, progress: bool = True) -> dict:
    """Every arm, resumable: a run whose folder already holds a finished run of the same config is read
    back, not trained again (an unfinished one is trained afresh). The report is rewritten after each arm,
    so an interrupted benchmark leaves the arms it finished; ``report_only`` trains nothing and reports
    the arms whose runs have all finished."""
    from ..train.build import check_run

    check_run(req.run)  # data, model and the LoRA arms' targets, before the first folder or run
    out = Path(req.out or "repro-headline")
    out.mkdir(parents=True, exist_ok=True)
    base, seeds, T = req.run, list(range(req.seeds)), req.run.steps
    started = time.time()
    arms: dict[str, Arm] = {}
    finished: dict[str, object] = {}  # per run folder, its finished run: their training time (timing.run_timing)

    def runs(cfgs: list) -> list:
        rs = _runs(cfgs, progress=progress, train=not req.report_only)
        finished.update({c.out_dir: r for c, r in zip(cfgs, rs) if r is not None})
        return rs

    def report(tune_compute: dict | None = None) -> dict:
        timing = {"seconds": round(time.time() - started), **run_timing(finished.values())}
        return _report(req, out, arms, lr_fft, seeds, T, timing, tune_compute)

    # (e) full finetuning: the sweep at seed 0, then its best rate at the other seeds
    fft = base.replace(finetune="full", **flatten(AdapterSpec()))  # no adapter: its settings at their defaults
    swept = _swept(req.fft_log2_lr, lambda x: [fft.replace(lr=2.0**x, seed=0, out_dir=str(out / "fft" / f"lr{x:+g}-s0"))],
                   runs, req.edge_extension)
    if swept is None:
        raise ConfigError("report_only", f"the full-finetuning sweep under {out / 'fft'} has not finished; every other arm"
                          " starts from its optimum", "run the headline without `report_only` first")
    by_lr, scores, x_fft = swept
    sweep = {x: rs[0] for x, rs in by_lr.items()}
    lr_fft = 2.0**x_fft
    rest = runs([fft.replace(lr=lr_fft, seed=s, out_dir=str(out / "fft" / f"best-s{s}")) for s in seeds[1:]])
    if None not in rest:
        arms["e"] = _arm("e", "(e) full finetuning, best of sweep", lr_fft, [sweep[x_fft], *rest],
                         steps_done([*sweep.values(), *rest]), [{"lr": 2.0**x, "ema": v} for x, v in scores.items()])
    report()

    # (a) LoRA-α at η_FFT, no search (right after (e): it needs nothing else, and costs 1/8 of a sweep)
    cfg_a = base.replace(rule="lora-alpha", alpha=1.0, lr=lr_fft)
    runs_a = runs([cfg_a.replace(seed=s, out_dir=str(out / "a" / f"s{s}")) for s in seeds])
    if None not in runs_a:
        arms["a"] = _arm("a", "(a) LoRA-α at η_FFT, α = 1", lr_fft, runs_a, 0, [])
        arms["a"].eval_member_steps = len(seeds) * T
    report()

    # (b) the baseline every target is measured against
    arm = _lora_sweep("b", "(b) standard LoRA (α = r), best of sweep", base.replace(rule="alpha-r"), req.lora_log2_lr,
                      seeds, out / "b", runs, req.edge_extension)
    if arm is not None:
        arms["b"] = arm
    report()

    # (d) tune, then its answer at every seed (a report-only call reads both back, or leaves (d) out);
    # before (c): its target is against (b), and the (c) sweeps only add context
    tune_compute = None
    if req.report_only:
        stored = _stored_tune(out, seeds, runs)
        if stored is not None:
            arms["d"], tune_compute = stored
            report(tune_compute)
    else:
        from ..tune import tune

        cap = req.tune_compute * len(req.lora_log2_lr) * len(seeds)  # in full runs, as (b) spends them
        # α = 1: LoRA-α's prior, whatever α the headline's run gives (arm (a) is at α = 1 too)
        tr = tune(TuneRequest(run=base.replace(rule="lora-alpha", lr=None, alpha=1.0), candidates=req.candidates, compute=cap,
                              tune_dir=str(out / "d-tune")), progress=progress)
        runs_d = runs([tr.config.replace(seed=s, out_dir=str(out / "d" / f"s{s}"), save_model=False) for s in seeds])
        answer = tr.to_dict()
        arms["d"], tune_compute = _tune_arm(answer, runs_d, T), answer["compute"]
        report(tune_compute)

    # (c), (c+): the other tuned baselines, every rate × seed (as packs on a GPU, one by one on a CPU)
    for key, folder, label, changes in (
            ("c", "c", "(c) rsLoRA (lora_alpha = 16), best of sweep", {"rule": "rslora", "lora_alpha": 16.0}),
            ("c+", "c-loraplus", "(c+) LoRA+ (α = r, λ = 16), best of sweep", {"rule": "alpha-r", "method": "loraplus"})):
        arm = _lora_sweep(key, label, base.replace(**changes), req.lora_log2_lr, seeds, out / folder, runs,
                          req.edge_extension)
        if arm is not None:
            arms[key] = arm
        report(tune_compute)
    return report(tune_compute)


def _report(req, out: Path, arms: dict, lr_fft: float, seeds, T: int, timing: dict, tune_compute: dict | None) -> dict:
    """headline.json, .md and .png from the arms measured so far (all five once the benchmark ends)."""
    result = {"request": json.loads(req.model_dump_json()), "lr_fft": lr_fft, "steps": T, "seeds": seeds,
              "arms": {k: {**asdict(a), "val_loss_mean_std": a.stat("val_loss"), "eval_mean_std": a.stat("eval_value"),
                           "ema_mean_std": a.stat("ema_loss")} for k, a in sorted(arms.items())},
              "targets": _targets(arms), **timing, "tune": tune_compute,
              "missing": [k for k in ORDER if k not in arms]}
    (out / "headline.json").write_text(json_text(result) + "\n")  # standard JSON: a diverged run's inf is null
    from .headline_report import render_headline, write_headline_md

    result["figure"] = str(render_headline(result, out / "headline.png"))
    write_headline_md(result, out / "headline.md")
    return result


def _stored_tune(out: Path, seeds, runs) -> tuple[Arm, dict] | None:
    """Arm (d) as an earlier call left it: tune's answer (``d-tune/tune.json``) and its runs under ``d/``,
    each run's own config read back; None unless all of them finished."""
    from ..sweep.rule_facts import ALPHA_KNOB

    try:
        answer = json.loads((out / "d-tune" / "tune.json").read_text())
        flat = json.loads((out / "d" / f"s{seeds[0]}" / "config.json").read_text())
        cfg = TrainConfig.from_flat(flat)
    except (OSError, ValueError, ConfigError):
        return None
    knob = ALPHA_KNOB.get(cfg.adapter.scaling.rule)
    if flat.get("lr") != answer.get("lr") or (knob is not None and flat.get(knob) != answer.get("alpha")):
        raise ConfigError("report_only", f"{out / 'd'} holds runs at lr {flat.get('lr')!r}, {knob} {flat.get(knob)!r},"
                          f" but tune's answer in {out / 'd-tune' / 'tune.json'} is lr {answer.get('lr')!r}, α"
                          f" {answer.get('alpha')!r}: the report would label the old runs with the new answer",
                          "run the headline without `report_only`, which trains the answer's runs")
    runs_d = runs([cfg.replace(seed=s, out_dir=str(out / "d" / f"s{s}")) for s in seeds])
    if None in runs_d:
        return None
    from ..tune.plots import render_search, search_info_from_dict

    try:  # by today's renderer; a figure that cannot be drawn (a read-only folder) does not stop the report
        render_search(search_info_from_dict(answer), out / "d-tune" / "search.png")
    except (OSError, TypeError, KeyError, ValueError) as e:
        log.warning("headline: tune's search figure not redrawn (%s)", e)
    return _tune_arm(answer, runs_d, cfg.steps), answer["compute"]


def _tune_arm(answer: dict, runs_d: list, T: int) -> Arm:
    """Arm (d) from tune's answer (``TuneResult.to_dict``, or the tune.json it wrote) and its runs at the seeds.
    Its compute leaves out what interrupted attempts trained before a stage ran again, as the sweeps' arms
    count only their finished runs: an interruption is not the method's cost."""
    reruns = sum((answer.get(stage) or {}).get("rerun_member_steps", 0) for stage in ("probe", "search", "confirm"))
    arm = _arm("d", f"(d) tune (α = {answer['alpha']:.3g})", answer["lr"], runs_d,
               answer["compute"]["member_steps"] - reruns, [])
    arm.eval_member_steps = len(runs_d) * T
    arm.at_edge = answer.get("at_edge") or []
    return arm


def _lora_sweep(key, label, cfg, log2_lrs, seeds, out: Path, runs, extension: int) -> Arm | None:
    swept = _swept(log2_lrs, lambda x: [cfg.replace(lr=2.0**x, seed=s, out_dir=str(out / f"lr{x:+g}-s{s}")) for s in seeds],
                   runs, extension)
    if swept is None:
        return None
    by_lr, scores, best = swept
    return _arm(key, label, 2.0**best, by_lr[best], steps_done([r for rs in by_lr.values() for r in rs]),
                [{"lr": 2.0**x, "ema": v} for x, v in scores.items()])



def _swept(log2_lrs, configs, runs, extension: int) -> tuple[dict, dict, float] | None:
    """Every rate's runs (``configs(x)`` at log2 rate x), their mean final EMA loss per rate, and the best
    rate on it. While the best is the grid's first or last rate, one grid step more past it, at most ``extension``
    times. None when a rate of the given grid has not finished (report-only); an extension that has not
    finished ends the extending."""
    grid = sorted({float(x) for x in log2_lrs})
    step = min(b - a for a, b in zip(grid, grid[1:]))
    by_lr: dict[float, list] = {}
    while True:
        todo = [x for x in grid if x not in by_lr]
        cfgs = {x: configs(x) for x in todo}
        results = iter(runs([c for x in todo for c in cfgs[x]]))
        for x in todo:
            rs = [next(results) for _ in cfgs[x]]
            if None in rs:
                if x in log2_lrs:
                    return None
                grid.remove(x)  # an unfinished extension (report-only): the sweep as far as it got
                extension = 0
            else:
                by_lr[x] = rs
        score = {x: statistics.fmean(ema_score(r) for r in by_lr[x]) for x in grid}
        best = min(grid, key=lambda x: (score[x], x))
        if extension <= 0 or not math.isfinite(score[best]) or best not in (grid[0], grid[-1]):
            return {x: by_lr[x] for x in grid}, score, best
        grid = [grid[0] - step, *grid] if best == grid[0] else [*grid, grid[-1] + step]
        extension -= 1


def _runs(cfgs, progress: bool, train: bool) -> list:
    """Each config's run: trained (or read back); with ``train`` False only read back (None when unfinished)."""
    return train_all(cfgs, progress) if train else [finished_run(c, clear=False) for c in cfgs]


def _arm(key, label, lr, runs, member_steps, sweep) -> Arm:
    a = Arm(key, label, lr, member_steps, len(runs) * (runs[0].summary.get("total_steps") or 0) if runs else 0)
    a.sweep = sweep
    for r in runs:
        a.val_loss.append(finite(r.val_loss))
        a.eval_metric = r.eval_metric
        a.eval_value.append(finite(r.eval_value))
        a.ema_loss.append(finite(r.final_ema_loss))
        a.statuses.append(str(r.status))
    return a


def _targets(arms: dict[str, Arm]) -> dict:
    """The issue's targets: (a) within one seed-std of (b) at 1/8 of its compute; (d) ≤ (b) at ≤ 40% of it
    (only for the arms measured so far). A seed of (a) or (d) that did not finish complete (diverged: no
    held-out loss) misses the target, whatever the finished seeds say: their mean would leave it out.
    (a)'s compute is its own runs; ``compute_fraction_of_b_with_e`` adds the FFT sweep (e) that found its
    η_FFT, for a user who has no η_FFT yet ((d) pays for its own η_FFT probe)."""
    if "b" not in arms:
        return {}
    b_mean, b_std = arms["b"].stat("val_loss")
    b_steps = arms["b"].member_steps
    out = {}
    for k in [k for k in ("a", "d") if k in arms]:
        m, s = arms[k].stat("val_loss")
        ci = welch_interval(m, s, arms[k].count("val_loss"), b_mean, b_std, arms["b"].count("val_loss"))
        paired = paired_interval(arms[k].val_loss, arms["b"].val_loss)  # the same seeds, in the same order
        unfinished = sum(st != RunStatus.COMPLETE for st in arms[k].statuses)
        steps = arms[k].member_steps or arms[k].eval_member_steps
        out[k] = {"val_loss_gap_vs_b": m - b_mean, "b_std": b_std, "unfinished_seeds": unfinished,
                  "within_one_std_or_better": not unfinished and m <= b_mean + b_std,
                  "gap_ci95": None if ci is None else list(ci), "gap_ci95_paired": None if paired is None else list(paired),
                  "compute_fraction_of_b": steps / b_steps}
        if k == "a" and "e" in arms:
            out[k]["compute_fraction_of_b_with_e"] = (steps + arms["e"].member_steps) / b_steps
    return out
