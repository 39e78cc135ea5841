"""``lorascale tune``: the best α and learning rate for a model, rank and data, at a fraction of a grid.

1. η_FFT: given, or estimated by an Init[B] α = 1 probe (μA Cor. 4.6: its optimal η is full finetuning's),
   a 6-point log2 grid (every other octave) trained as members with successive halving (always plain LoRA: the transfer is
   μA's statement about LoRA, whatever method is tuned).
2. The search: LoRA-α's α-path at η = η_FFT (``lr_span`` 0, the default: α log-evenly over
   the knob's box (``TuneRequest.alpha_box``, [0.1, 10] around the prior α = 1), the prior among them), or with ``lr_span`` > 0 the prior plus Sobol points
   in (log α, log η) (Optuna's ``QMCSampler``); trained as members with successive halving (:mod:`.halving`). A method that cannot be a member
   (DoRA, PiSSA, OLoRA) trains its candidates one after another, halved by Optuna's
   ``SuccessiveHalvingPruner`` at the same rungs.
   No candidate is cut before ``first_rung`` of the budget.
3. The seed check: the best ``confirm_top`` candidates that ran the whole budget train again at
   ``confirm_seeds − 1`` more seeds (as members).
4. The answer: among the finalists, the gentlest (smallest η·α) whose final EMA(0.1) training loss (μA's
   selection score), averaged over its seeds when they were checked, is within one standard error of the
   best (:mod:`.selection`; the probe picks η_FFT by the same rule); its ``LoraConfig``, learning rate and
   recipe, the cost, and a warning for each edge of the search it sits on (:mod:`.edges`).

Each stage is an Optuna study (``tune-lr-fft``, ``tune-search``, ``tune-confirm``): every candidate a trial
with its EMA losses at the rungs as intermediate values, cut candidates PRUNED. A stage whose study holds its
result is not run again, so an interrupted ``tune`` resumes at the stage it was in.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ConfigError, ConfigErrors, collecting
from ..outputs import json_text
from ..train.config import TrainConfig
from ..vocabulary import RunStatus
from .edges import probe_edges, search_edges
from .folder import TUNE_DB, check_tune_dir, claim_tune_dir, remove_stage
from .halving import (HalvingCoordinator, TrialRungs, deal, pack_sizes, planned_finalists, planned_member_steps,
                      rung_steps)
from .request import FFT_PROBE_LOG2_LR, REFERENCE_GRID_LRS, REFERENCE_GRID_SEEDS, TuneRequest
from .selection import ema_noise, one_se_choice

__all__ = ["Candidate", "StageResult", "TuneResult", "tune", "destination_errors", "run_stage", "check_seeds", "search_space",
           "planned_cost"]

log = logging.getLogger(__name__)
MAX_MEMBERS = 32
SELECTION = ("among the finalists, the smallest η·α whose final EMA(0.1) training loss (mean over the checked seeds)"
             " is within one standard error of the best")


@dataclass
class Candidate:
    number: int  # the Optuna trial number
    lr: float
    alpha: float  # the α knob (LoRA-α's α, or lora_alpha for fixed-alpha/rslora)
    status: RunStatus | str = ""  # a RunStatus once the candidate has run
    steps_done: int = 0
    pruned_at: int | None = None
    final_ema_loss: float | None = None
    val_loss: float | None = None
    eval_metric: str | None = None
    eval_value: float | None = None
    curve: list = field(default_factory=list)  # (step, EMA loss)
    seed: int | None = None  # the run's seed (None: the request's)
    seed_ema: list = field(default_factory=list)  # a finalist's final EMA loss at every checked seed, its own first
    mean_ema: float | None = None  # their mean (inf when one diverged): what the answer is chosen on


@dataclass
class StageResult:
    name: str
    total_steps: int
    reduction: int
    candidates: list[Candidate]
    member_steps: int  # what the stage spent
    full_member_steps: int  # every candidate run to the end
    best: int  # index into candidates
    rungs: list = field(default_factory=list)  # the steps at which candidates were cut
    rerun_member_steps: int = 0  # of member_steps: what interrupted attempts trained before the stage ran again

    @property
    def chosen(self) -> Candidate:
        return self.candidates[self.best]

    def to_dict(self) -> dict:
        return {**asdict(self), "chosen": asdict(self.chosen)}

    @classmethod
    def from_dict(cls, d: dict) -> "StageResult":
        """From :meth:`to_dict` as tune.json holds it, where a non-finite number is null: a checked seed's
        null EMA loss was a divergence (inf), a curve's null an EMA that was not a number."""
        d = {k: v for k, v in d.items() if k != "chosen"}
        return cls(**{**d, "candidates": [Candidate(**_from_json(c)) for c in d["candidates"]]})


def _from_json(c: dict) -> dict:
    c = dict(c)
    if c.get("seed_ema"):
        c["seed_ema"] = [math.inf if v is None else v for v in c["seed_ema"]]
        c["mean_ema"] = math.inf if c.get("mean_ema") is None else c["mean_ema"]
    c["curve"] = [p if p[1] is not None else type(p)((p[0], math.nan)) for p in c.get("curve", [])]
    return c


@dataclass
class TuneResult:
    lr_fft: float
    lr_fft_source: str
    probe: StageResult | None
    search: StageResult
    confirm: StageResult | None  # the finalists at the other seeds
    config: TrainConfig  # the chosen run
    peft_config: dict
    storage: str
    out_dir: Path
    figure: Path | None = None
    edges: list = field(default_factory=list)  # ConfigWarning: the answer at an edge of what was searched
    cap_member_steps: int | None = None  # ``compute`` in member-steps (None: no cap)

    @property
    def member_steps(self) -> int:
        return sum(st.member_steps for st in (self.probe, self.search, self.confirm) if st is not None)

    def to_dict(self) -> dict:
        cfg = self.config
        chosen = self.search.chosen
        grid = REFERENCE_GRID_LRS * REFERENCE_GRID_SEEDS * cfg.steps
        ad = cfg.adapter
        return {
            "model": cfg.model, "data": cfg.data, "rank": ad.rank, "rule": ad.scaling.rule.value,
            "peft_config": self.peft_config, "lr": cfg.lr, "alpha": chosen.alpha,
            # what LoraConfig cannot say: μA's Init[A]/Init[B] draw (lorascale.init_after_wrap after get_peft_model)
            # and the method (LoRA+ is an optimizer: lr is A's rate, B's is loraplus_lr_ratio × lr)
            "init": ad.init.value, "method": ad.method.value, "loraplus_lr_ratio": ad.loraplus_ratio(),
            "recipe": {"optimizer": "AdamW", "betas": [cfg.beta1, cfg.beta2], "eps": cfg.eps,
                       "weight_decay": cfg.weight_decay, "grad_clip": cfg.grad_clip, "warmup_frac": cfg.warmup_frac,
                       "schedule": "cosine", "min_lr_ratio": cfg.min_lr_ratio, "steps": cfg.steps,
                       "batch_size": cfg.batch_size, "grad_accum": cfg.grad_accum, "seq_len": cfg.seq_len,
                       **({"head_lr": cfg.head_lr} if self.peft_config.get("task_type") == "SEQ_CLS" else {})},
            "lr_fft": self.lr_fft, "lr_fft_source": self.lr_fft_source, "selection": SELECTION,
            "chosen": {"final_ema_loss": chosen.final_ema_loss, "val_loss": chosen.val_loss,
                       chosen.eval_metric or "eval": chosen.eval_value, "seed_ema": chosen.seed_ema,
                       "mean_ema": chosen.mean_ema},
            "compute": {"member_steps": self.member_steps, "search_member_steps": self.search.member_steps,
                        "probe_member_steps": self.probe.member_steps if self.probe else 0,
                        "confirm_member_steps": self.confirm.member_steps if self.confirm else 0,
                        "search_to_the_end_member_steps": self.search.full_member_steps,
                        "reference_grid": {"learning_rates": REFERENCE_GRID_LRS, "seeds": REFERENCE_GRID_SEEDS,
                                           "member_steps": grid},
                        "runs_equivalent": self.member_steps / cfg.steps, "cap_member_steps": self.cap_member_steps},
            "compute_fraction": self.member_steps / grid,
            "at_edge": [w.to_dict() for w in self.edges],
            "storage": self.storage, "out_dir": str(self.out_dir), "figure": str(self.figure) if self.figure else None,
            "search": self.search.to_dict(), "probe": self.probe.to_dict() if self.probe else None,
            "confirm": self.confirm.to_dict() if self.confirm else None,
        }


def search_space(req: TuneRequest, lr_fft: float) -> list[tuple[float, float]]:
    """(lr, α) of every candidate: LoRA-α's prior first; then the rest of the α-path at η_FFT (``lr_span``
    0), or Sobol points in (log α, log η)."""
    import optuna
    from optuna.distributions import FloatDistribution

    n = _n_candidates(req)
    box = req.alpha_box
    prior_alpha = min(max(req.prior, box[0]), box[1])
    if req.lr_span == 0:  # log-even α over the box, the point nearest the prior replaced by the prior itself
        lo, hi = math.log(box[0]), math.log(box[1])
        path = [math.exp(lo + (hi - lo) * j / (n - 1)) for j in range(n)]
        # a tie (the prior midway between two points, as α = 1 is for an even n) replaces the larger α,
        # keeping the gentler neighbour
        nearest = min(range(n), key=lambda j: (round(abs(math.log(path[j] / prior_alpha)), 9), -path[j]))
        return [(lr_fft, prior_alpha)] + [(lr_fft, a) for j, a in enumerate(path) if j != nearest]
    space = {"alpha": FloatDistribution(*box, log=True),
             "lr": FloatDistribution(lr_fft * 2.0**-req.lr_span, lr_fft * 2.0**req.lr_span, log=True)}
    with warnings.catch_warnings():  # "experimental" since Optuna 3.0; its Sobol points are what we need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=req.run.seed,
                                             warn_independent_sampling=False)
    probe = optuna.create_study(sampler=sampler)  # in memory: only the sampler's points are kept
    points = [(lr_fft, prior_alpha)]
    # the prior as the study's first trial: QMCSampler reads its search space from it, rather than drawing the
    # first asked point at random to learn the space (its documented behaviour on an empty study)
    probe.add_trial(optuna.trial.create_trial(params={"alpha": prior_alpha, "lr": lr_fft}, distributions=space,
                                              value=0.0))
    while len(points) < n:
        t = probe.ask(space)
        probe.tell(t, 0.0)
        points.append((t.params["lr"], t.params["alpha"]))
    return points


def destination_errors(tune_dir: str | None, storage: str | None) -> list[ConfigError]:
    """The problems of where tune would write (``tune_dir``, ``storage``; either None: not checked), found by
    looking only, for reporting with every other problem at once."""
    from ..sweep.backends import check_url

    errors = []
    for value, check in ((tune_dir, check_tune_dir), (storage, check_url)):
        if value is None:
            continue
        with collecting(errors):
            check(value)
    return errors


def tune(req: TuneRequest, progress: bool = True) -> TuneResult:
    from ..adapters import plan_lora
    from ..models import load_model
    from ..train.build import check_run

    cfg = req.run
    out = req.tune_dir or f"runs/tune-{cfg.model.replace('/', '_')}-r{cfg.adapter.rank}"
    errors = destination_errors(out, req.storage)  # the folder, the storage, and below the data, model and adapter,
    with collecting(errors):  # all at once, before the study is stored
        task = check_run(cfg)
    ConfigErrors.raise_if_any(errors)
    out = Path(out)
    claim_tune_dir(out)
    url = req.storage or f"sqlite:///{(out / TUNE_DB).resolve()}"
    probe = None
    if req.lr_fft_given:
        lr_fft, source = cfg.lr_fft, "given"
    else:
        probe_cfg = cfg.replace(rule="mua", init="B", gamma=0.0, rank=min(req.fft_probe_rank, cfg.adapter.rank),
                                alpha=1.0, save_model=False, method="lora", loraplus_lr_ratio=None)
        grid = [(2.0**x, 1.0) for x in FFT_PROBE_LOG2_LR]
        probe = run_stage("lr-fft", probe_cfg, grid, req, url, out, knob=None, progress=progress)
        lr_fft, source = probe.chosen.lr, f"Init[B] α=1 probe at rank {probe_cfg.adapter.rank} (μA Cor. 4.6)"
    searched = cfg.replace(lr_fft=lr_fft, save_model=False)
    search = run_stage("search", searched, search_space(req, lr_fft), req, url, out, knob=req.knob, progress=progress)
    confirm = check_seeds(search, searched, req, url, out, progress=progress)
    chosen = search.chosen
    best = cfg.replace(lr=chosen.lr, lr_fft=lr_fft, **{req.knob: chosen.alpha})
    loaded = load_model(best.model, task=task, quiet=True, weights=False)  # the shapes are enough to plan
    plan = plan_lora(loaded.model, best.adapter, loaded.default_targets, task_type=task.peft_task_type)
    # task_type makes get_peft_model wrap the model as lorascale trained it (SEQ_CLS: the head trains too)
    peft_config = {**plan.peft_kwargs(), "task_type": task.peft_task_type}
    result = TuneResult(lr_fft, source, probe, search, confirm, best, peft_config, url, out)
    if probe is not None:
        result.edges += probe_edges(lr_fft, [2.0**x for x in FFT_PROBE_LOG2_LR])
    result.edges += search_edges((chosen.lr, chosen.alpha), [(c.lr, c.alpha) for c in search.candidates], lr_fft,
                                 req.lr_span, req.alpha_box)
    for w in result.edges:
        log.warning("tune: %s", w)
    if req.compute is not None:
        result.cap_member_steps = round(req.compute * cfg.steps)
        if result.member_steps > result.cap_member_steps:  # the plan assumed one group halving at every rung
            log.warning("tune: spent %d member-steps, past the cap of %d (%.3g runs): %s", result.member_steps,
                        result.cap_member_steps, req.compute, _over_cap_reason(result))
    from .plots import render_search, search_info

    result.figure = render_search(search_info(result), out / "search.png")
    (out / "tune.json").write_text(json_text(result.to_dict()) + "\n")  # a diverged seed's inf: null
    return result


def _over_cap_reason(result: TuneResult) -> str:
    """Why tune spent more than its cap: interrupted attempts (trained, then run again), or halving that
    cut fewer candidates than planned."""
    stages = [st for st in (result.probe, result.search, result.confirm) if st is not None]
    rerun = sum(st.rerun_member_steps for st in stages)
    halving = ("the packs were too small to halve as one group, or candidates that train alone were cut by Optuna's"
               " asynchronous rule, which promotes the first to reach a rung")
    if rerun == 0:
        return halving
    if result.member_steps - rerun <= result.cap_member_steps:
        return f"{rerun} of them were trained by interrupted attempts, which ran again from the start"
    return f"{rerun} of them were trained by interrupted attempts, which ran again from the start; and {halving}"


def check_seeds(search: StageResult, base: TrainConfig, req: TuneRequest, url: str, out: Path,
                progress: bool = True) -> StageResult | None:
    """Train the best ``confirm_top`` finalists of ``search`` (by final EMA loss; the search's own pick takes the
    last place when it is not among them) at ``confirm_seeds − 1``
    more seeds and point ``search.best`` at the one-standard-error pick on their mean final EMA loss over
    seeds (a finalist that diverges at any seed is never chosen; if every one does, the search's own pick
    stands, with a warning). None when there is nothing to check (one seed asked, or a single finalist)."""
    cs = search.candidates
    finalists = sorted((i for i, c in enumerate(cs) if _ran_whole(c, search.total_steps)),
                       key=lambda i: (cs[i].final_ema_loss, i))[:req.confirm_top]
    if finalists and search.best not in finalists and _ran_whole(cs[search.best], search.total_steps):
        # the search's one-SE pick (gentler, within noise of the best) is checked too, in the last place, so the
        # check can keep it: checking only the lowest losses would lean the answer away from gentle settings
        finalists = [*finalists[:req.confirm_top - 1], search.best] if req.confirm_top > 1 else [search.best]
    if req.confirm_seeds <= 1 or len(finalists) < 2:
        return None
    seeds = [(base.seed + k) % 2**32 for k in range(1, req.confirm_seeds)]  # seeds are 32-bit: wrap past the top
    points = [(search.candidates[i].lr, search.candidates[i].alpha) for i in finalists for _ in seeds]
    confirm = run_stage("confirm", base, points, req, url, out, knob=req.knob, progress=progress,
                        seeds=seeds * len(finalists), halve=False)
    errors = {}
    for j, i in enumerate(finalists):
        c = search.candidates[i]
        runs = confirm.candidates[j * len(seeds):(j + 1) * len(seeds)]
        c.seed_ema = [c.final_ema_loss, *(r.final_ema_loss if _ran_whole(r, confirm.total_steps) else math.inf
                                          for r in runs)]
        c.mean_ema = sum(c.seed_ema) / len(c.seed_ema)
        noise = [x for x in (ema_noise(r.curve, base.ema_beta) for r in (c, *runs)) if x is not None]
        errors[i] = sum(noise) / len(noise) / math.sqrt(len(c.seed_ema)) if noise else None
    finite = [i for i in finalists if math.isfinite(cs[i].mean_ema)]
    if not finite:
        log.warning("tune: every finalist diverged at one of seeds %s; the answer stays the search's pick at seed %d,"
                    " unchecked: narrow the search (`alpha_max`, `lr_span`) toward gentler settings", seeds, base.seed)
        return confirm
    search.best = one_se_choice(finite, lambda i: cs[i].mean_ema, errors.get, lambda i: cs[i].lr * cs[i].alpha)
    log.info("tune: seed check over %d seeds chose candidate %d (mean EMA %.4f)", req.confirm_seeds,
             search.candidates[search.best].number, search.chosen.mean_ema)
    return confirm


def _steps_trained(folder: Path) -> int:
    """The member-steps the runs under ``folder`` took: each run's summary.json (interrupted ones included), or
    for a run killed without one (SIGKILL, out of memory), the last step its metrics.jsonl logged."""
    total = 0
    runs = {f.parent for name in ("summary.json", "metrics.jsonl") for f in folder.rglob(name)} if folder.exists() else set()
    for run in runs:
        try:
            total += int(json.loads((run / "summary.json").read_text()).get("steps_done") or 0)
            continue
        except (OSError, ValueError, TypeError):
            pass  # no summary, or one cut mid-write: count the logged steps
        total += _last_logged_step(run / "metrics.jsonl")
    return total


def _last_logged_step(metrics: Path) -> int:
    from ..train.records import read_records  # drops the line the kill tore

    try:
        return max((int(r.get("step") or 0) for r in read_records(metrics)), default=0)
    except (OSError, ValueError, TypeError):
        return 0  # unreadable: those steps are not counted


def run_stage(name: str, base: TrainConfig, points: list[tuple[float, float]], req: TuneRequest, url: str,
              out: Path, knob: str | None, progress: bool = True, seeds: list[int] | None = None,
              halve: bool = True) -> StageResult:
    """Train ``points`` (lr, α) from ``base`` as members, with successive halving unless ``halve`` is False,
    each at its seed in ``seeds`` (default: the base's); resume a finished stage."""
    import optuna

    from ..train.members.pack import packable

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = seeds or [base.seed] * len(points)
    rungs = rung_steps(base.steps, len(points), req.reduction, req.first_rung) if halve else ()
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=rungs[0] if rungs else 1,
                                                    reduction_factor=req.reduction, min_early_stopping_rate=0)
    study = optuna.create_study(study_name=f"tune-{name}", storage=url, direction="minimize", load_if_exists=True,
                                pruner=pruner)
    inputs = json.loads(json.dumps({"run": {k: v for k, v in base.to_flat().items() if k != "out_dir"},
                                    "points": [list(p) for p in points], "seeds": seeds, "rungs": list(rungs),
                                    "reduction": req.reduction}, default=str))
    stored = study.user_attrs.get("inputs")
    if stored is not None:  # a setting added since the study was stored had its default then
        defaults = json.loads(json.dumps(TrainConfig().to_flat(), default=str))
        stored = {**stored, "run": {**{k: v for k, v in defaults.items() if k in inputs["run"]}, **stored["run"]}}
    if stored is not None and stored != inputs:
        changed = sorted(k for k in set(stored["run"]) | set(inputs["run"]) if stored["run"].get(k) != inputs["run"].get(k))
        changed += [f"the stage's {k}" for k in ("points", "seeds", "rungs", "reduction") if stored.get(k) != inputs[k]]
        what = ", ".join(changed)
        raise ConfigError("tune_dir", f"{url} holds tune's {name} stage for other settings ({what} differ: settings"
                          " changed, or a lorascale version that derived them otherwise stored it); resuming it would"
                          " answer for those", "use a new folder (or storage) for this question, or delete the old one")
    if "result" in study.user_attrs:
        log.info("tune: stage %s already finished in %s; reusing it", name, url)
        stored = StageResult.from_dict(study.user_attrs["result"])
        stored.best = _pick(stored.candidates, steps=base.steps, beta=base.ema_beta, fallback=stored.best)
        return stored  # the pick from the stored runs by today's rule
    earlier = study.user_attrs.get("earlier_member_steps", 0)
    if study.get_trials(deepcopy=False):  # an interrupted attempt: the stage runs again from a fresh study, or its
        # finished and pruned trials would meet their own reruns in the pruner's rungs; what it trained still counts
        earlier += _steps_trained(out / name)
        optuna.delete_study(study_name=f"tune-{name}", storage=url)
        study = optuna.create_study(study_name=f"tune-{name}", storage=url, direction="minimize", pruner=pruner)
        study.set_user_attr("earlier_member_steps", earlier)
    study.set_user_attr("inputs", inputs)
    remove_stage(out / name)  # an earlier attempt's run folders (tune's own scratch): the runs below need fresh ones
    steps = base.steps
    candidates, spent = [], earlier
    if packable(base):
        unit = req.reduction ** len(rungs)  # a pack of a multiple of η^cuts halves exactly as the group would
        room = req.members if isinstance(req.members, int) else _auto_members(base)  # None or "auto"
        if room < min(unit, len(points)):
            log.warning("tune: packs of %d cannot halve %d candidates as one group (that needs %d members a pack):"
                        " more of them run the whole budget than planned", room, len(points), unit)
        by_index = {}
        for j, idx in enumerate(deal(len(points), pack_sizes(len(points), room, unit))):  # each pack spans the path
            cands, used = _train_pack(study, base, [points[i] for i in idx], [seeds[i] for i in idx], rungs,
                                      req.reduction, knob, out / name / f"pack{j}", progress)
            by_index.update(zip(idx, cands))
            spent += used
        candidates = [by_index[i] for i in range(len(points))]  # in the points' order, as a single pack gives them
    else:
        log.info("tune: %s cannot train as members; its %d candidates train one after another", base.adapter.method,
                 len(points))
        candidates, used = _train_alone(study, base, points, seeds, rungs, req.reduction, knob, out / name, progress)
        spent += used
    if not any(_ran_whole(c, steps) for c in candidates) and halve:
        if knob is None:  # the η_FFT probe: its rates and α are fixed, only skipping it helps
            raise ConfigError("lr_fft", f"every rate of tune's {name} probe diverged or was cut",
                              "give `lr_fft` (your full-finetuning learning rate) to skip the probe")
        raise ConfigError("candidates", f"every candidate of tune's {name} stage diverged or was cut",
                          "widen the search (`alpha_min`, `alpha_max`, `candidates`) or lower `lr_fft`")
    best = _pick(candidates, steps, base.ema_beta, fallback=0)
    result = StageResult(name, steps, req.reduction, candidates, spent, len(points) * steps, best, list(rungs), earlier)
    study.set_user_attr("result", json.loads(json.dumps(result.to_dict(), default=_json_num)))
    return result


def _train_pack(study, base: TrainConfig, chunk, seeds, rungs, reduction: int, knob: str | None, out: Path,
                progress: bool):
    from ..train.members import member_names, train_members

    trials, cfgs = [], []
    for i, ((lr, a), seed) in enumerate(zip(chunk, seeds)):
        study.enqueue_trial({"lr": lr, **({"alpha": a} if knob else {})})
        trials.append(study.ask(_dists(chunk, knob)))
        trials[-1].set_user_attr("seed", seed)
        cfgs.append(base.replace(lr=lr, seed=seed, out_dir=str(out / f"candidate{i:02d}"), **({knob: a} if knob else {})))
    names = member_names(len(cfgs))
    by_name = dict(zip(names, trials))

    def on_cut(name: str, step: int, value: float, kept: bool) -> None:
        if math.isfinite(value):
            by_name[name].report(value, step)

    coord = HalvingCoordinator(names, rungs, reduction, on_cut)
    results = train_members(cfgs, [[coord.callback(n)] for n in names], progress=progress)
    cands, used = [], 0
    for name, trial, (lr, a), seed, res in zip(names, trials, chunk, seeds, results):
        c = _candidate(trial.number, lr, a, res, coord.cut_at.get(name), seed)
        _tell(study, trial, c)
        used += c.steps_done
        cands.append(c)
    return cands, used


def _train_alone(study, base: TrainConfig, points, seeds, rungs, reduction: int, knob: str | None, out: Path,
                 progress: bool):
    """Each candidate as its own run, cut by the study's ``SuccessiveHalvingPruner`` at ``rungs``."""
    from ..train import train

    cands, used = [], 0
    for i, ((lr, a), seed) in enumerate(zip(points, seeds)):
        study.enqueue_trial({"lr": lr, **({"alpha": a} if knob else {})})
        trial = study.ask(_dists(points, knob))
        trial.set_user_attr("seed", seed)
        rung_cb = TrialRungs(trial, rungs, reduction)
        cfg = base.replace(lr=lr, seed=seed, out_dir=str(out / f"candidate{i:02d}"), **({knob: a} if knob else {}))
        res = train(cfg, [rung_cb], progress=progress)
        cand = _candidate(trial.number, lr, a, res, rung_cb.cut_at, seed)
        _tell(study, trial, cand)
        used += cand.steps_done
        cands.append(cand)
    return cands, used


def _dists(points, knob: str | None) -> dict:
    from optuna.distributions import FloatDistribution

    lrs, alphas = [lr for lr, _ in points], [a for _, a in points]
    dists = {"lr": FloatDistribution(min(lrs), max(lrs) * (1 + 1e-12), log=True)}
    if knob:
        dists["alpha"] = FloatDistribution(min(alphas), max(alphas) * (1 + 1e-12), log=True)
    return dists


def _candidate(number: int, lr: float, a: float, res, pruned: int | None, seed: int) -> Candidate:
    s = res.summary
    return Candidate(number, lr, a, str(res.status), int(s.get("steps_done") or 0), pruned, _finite(res.final_ema_loss),
                     _finite(res.val_loss), res.eval_metric, _finite(res.eval_value), [list(p) for p in res.ema_curve],
                     seed)


def _pick(candidates: list[Candidate], steps: int, beta: float, fallback: int) -> int:
    """The one-standard-error pick among the candidates that ran the whole budget (``fallback`` if none)."""
    full = [i for i, c in enumerate(candidates) if _ran_whole(c, steps)]
    if not full:
        return fallback
    return one_se_choice(full, lambda i: candidates[i].final_ema_loss, lambda i: ema_noise(candidates[i].curve, beta),
                         lambda i: candidates[i].lr * candidates[i].alpha)


def _ran_whole(c: Candidate, total_steps: int) -> bool:
    return c.steps_done == total_steps and c.status == RunStatus.COMPLETE and c.final_ema_loss is not None


def _tell(study, trial, c: Candidate) -> None:
    import optuna

    if c.pruned_at is not None:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    elif c.status == RunStatus.COMPLETE and c.final_ema_loss is not None:
        study.tell(trial, c.final_ema_loss)
    else:
        study.tell(trial, math.inf)  # diverged: finished, and never the best


def planned_cost(req: TuneRequest, n_candidates: int) -> int:
    """Member-steps tune plans to spend with ``n_candidates`` if nobody diverges: the η_FFT probe (unless
    η_FFT is given), the search, and the seed check of its finalists."""
    T, eta, first = req.run.steps, req.reduction, req.first_rung
    probe = 0 if req.lr_fft_given else planned_member_steps(T, len(FFT_PROBE_LOG2_LR), eta, first)
    finalists = min(req.confirm_top, planned_finalists(T, n_candidates, eta, first))
    check = finalists * (req.confirm_seeds - 1) * T if finalists >= 2 else 0
    return probe + planned_member_steps(T, n_candidates, eta, first) + check


def _n_candidates(req: TuneRequest) -> int:
    """``candidates``, or fewer when ``compute`` caps the planned member-steps (in full runs)."""
    n = req.candidates
    while req.compute is not None and n > 2 and planned_cost(req, n) > req.compute * req.run.steps:
        n -= 1
    if req.compute is not None and planned_cost(req, n) > req.compute * req.run.steps:
        log.warning("tune: even %d candidates plan %d member-steps, above the cap of %.3g runs (%d)", n,
                    planned_cost(req, n), req.compute, round(req.compute * req.run.steps))
    return n


def _auto_members(cfg: TrainConfig) -> int:
    from ..sweep.packs import auto_members

    return auto_members(cfg, cap=MAX_MEMBERS)


def _finite(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _json_num(o):
    return str(o)
