"""The μA coordinate check: a few steps at several ranks (and widths), the feature-update sizes
against size, and whether they stay flat.

μA's rules come from one criterion (μA §3.2, Def. 3.7): the feature-update terms δ¹, δ², δ³ of
each LoRA layer (eq. 1) stay Θ(1) as width n and rank r grow. μP checks a parametrization the same
way (microsoft/mup's coordinate check): train a few steps at several widths and see whether the
per-coordinate sizes move with width. Here, for each configuration, rank, width and seed:

1. fresh PEFT adapters on the model (loaded once per width, re-wrapped for every run),
2. T steps of AdamW at the learning rate the rule prescribes, on one fixed batch per seed (μA's
   analysis is of one sample with a fixed input, App. A),
3. at every step, per layer type, the entry RMS of δ¹, δ², δ³ and Z_A (:class:`FeatureUpdateMonitor`),
   of the feature update Z_B = s·B·A·x, and of ΔA and ΔB (:class:`CoordMonitor`),

then a log–log slope of each term against rank and against width (:mod:`.coord_fit`).

The settings live in :mod:`.coord_spec`, one run in :mod:`.coord_monitor` (the optimizer and why it
has no decay, clipping or warm-up), the fits in :mod:`.coord_fit`, the figures in :mod:`.coord_plots`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from ..errors import ConfigError, ConfigErrors
from ..schema import flatten
from ..vocabulary import Task
from .aggregate import parse_metric_key
from .coord_fit import Measurement, TermFit, fit_axis
from .coord_monitor import CoordMonitor, train_steps
from .coord_spec import TERMS, CoordCheckSettings, CoordConfig, learning_rate
from .feature_updates import PREFIX

__all__ = ["CoordCheckResult", "coord_check"]

log = logging.getLogger(__name__)

DEFAULT_DATA = {Task.LM: "shakespeare", Task.CLASSIFICATION: "shakespeare-genre"}
MAX_TOKENIZED = 256  # blocks/examples tokenised to draw the seeds' batches from


@dataclass
class _Model:
    name: str
    loaded: object  # LoadedModel
    batches: list  # one fixed batch per seed


def _load_all(s: CoordCheckSettings) -> list[_Model]:
    """Every model once (widths ascending) with its batches; every rank/width problem at once."""
    from ..adapters.targets import find_target_layers
    from ..data import load_examples, make_loaders, tokenise
    from ..models import load_model

    data = s.data or DEFAULT_DATA[_task_of(s.model_names()[0])]
    examples = load_examples(data)  # bad data fails before any model loads
    if examples.kind.task not in DEFAULT_DATA:
        raise ConfigError("data", f"{data} is {examples.kind.task.value} data; the coordinate check measures a model's"
                          " own loss on language-modelling or labelled data",
                          f"use such data, e.g. {DEFAULT_DATA[Task.LM]} or {DEFAULT_DATA[Task.CLASSIFICATION]}")
    out, errors = [], []
    for name in s.model_names():
        loaded = load_model(name, task=examples.kind.task, num_labels=max(2, len(examples.label_names)), seed=0, quiet=True)
        layers = find_target_layers(loaded.model, s.targets if s.targets is not None else loaded.default_targets)
        bound = min(loaded.width, *(min(ly.d_in, ly.d_out) for ly in layers))
        too_big = sorted(r for r in s.ranks if r > bound)
        if too_big:
            errors.append(ConfigError("ranks", f"{too_big} exceed {bound} = min(width, d_in, d_out) of {name}",
                                      "drop those ranks (μA assumes r ≤ n)"))
        tokens = tokenise(examples, loaded.tokenizer, s.seq_len, MAX_TOKENIZED)
        pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
        batches = [next(iter(make_loaders(tokens, s.batch_size, 0.05, seed, pad)[0])) for seed in range(s.seeds)]
        out.append(_Model(name, loaded, batches))
    widths = [m.loaded.width for m in out]
    if len(set(widths)) != len(widths):
        errors.append(ConfigError("model", f"two models share a width: {dict(zip(s.model_names(), widths))}",
                                  "list models of different widths"))
    ConfigErrors.raise_if_any(errors)
    return sorted(out, key=lambda m: m.loaded.width)


def _task_of(name: str) -> Task:
    """The task of a model, from its name (or its folder's config.json) alone: picks the default dataset."""
    from pathlib import Path

    from ..config_files import read_mapping

    base = name.split("@")[0]
    if base in ("minilm-l6", "tiny-bert"):
        return Task.CLASSIFICATION
    cfg = Path(name) / "config.json"
    if cfg.exists() and read_mapping(cfg, "model", "a Hugging Face model folder").get("model_type") in ("bert", "roberta", "xlm-roberta"):
        return Task.CLASSIFICATION
    return Task.LM


def _run_point(m: _Model, config: CoordConfig, rank: int, seed: int, lr: float, s: CoordCheckSettings) -> list[dict]:
    """One run on fresh adapters; the model is given back unwrapped (its weights untouched)."""
    import torch
    from peft import get_peft_model

    from ..adapters import apply_init, plan_lora

    spec = config.adapter(rank, s.targets)
    plan = plan_lora(m.loaded.model, spec, m.loaded.default_targets, task_type=None)  # no task: the head stays frozen
    torch.manual_seed(seed)  # PEFT's kaiming init of A draws from the global generator
    peft_model = get_peft_model(m.loaded.model, plan.config)
    apply_init(peft_model, spec.init, seed=seed)
    try:
        monitor = CoordMonitor(probe_batch=m.batches[seed], refresh_every=s.steps + 1, seed=seed)
        return train_steps(peft_model, m.batches[seed], lr, s.steps, monitor)
    finally:
        m.loaded.model = peft_model.unload()  # the base modules back in place, for the next run


def _measurements(logs: list[dict], config: CoordConfig, width: int, rank: int, seed: int, lr: float,
                  eta_scale: float = 1.0) -> list[Measurement]:
    out = []
    for rec in logs:
        for key, value in rec.items():
            parsed = parse_metric_key(key)  # fu/<layer type>/<term>
            if parsed is not None and parsed[0] == PREFIX and parsed[2] in TERMS:
                out.append(Measurement(config.value, width, rank, seed, rec["step"], parsed[1], parsed[2], float(value), lr,
                                       eta_scale))
    return out


@dataclass
class CoordCheckResult:
    settings: CoordCheckSettings
    measurements: list[Measurement]
    fits: list[TermFit]
    widths: dict[str, int]  # model name -> width
    ref_width: int
    seconds: float  # wall time of the whole check, models loaded once included
    load_seconds: float
    runs: int = 0  # training runs, the η-order runs included
    losses: dict = field(default_factory=dict)  # (config, width, rank, seed) -> per-step training loss

    def fits_for(self, config: str, axis: str) -> list[TermFit]:
        return [f for f in self.fits if f.config == config and f.axis == axis]

    def to_dict(self) -> dict:
        """JSON: per configuration, per axis and per term, the slope, CI and verdict at the last step
        (with every step under ``by_step``), the term's order in η and the learning-rate correction."""
        s = self.settings
        configs = {}
        for config in s.configs:
            points = {(m.width, m.rank, m.lr) for m in self.measurements if m.config == config.value and m.eta_scale == 1.0}
            entry = {"label": config.label, "lrs": [{"width": w, "rank": r, "lr": lr} for w, r, lr in sorted(points)]}
            for axis in ("rank", "width"):
                fits = self.fits_for(config.value, axis)
                if fits:
                    entry[axis] = _axis_dict(fits, s.steps)
            configs[config.value] = entry
        return {
            "settings": flatten(s), "widths": self.widths,
            "reference": {"lr": s.ref_lr, "width": self.ref_width, "rank": s.ref_rank},
            "configs": configs, "runs": self.runs,
            "seconds": round(self.seconds, 2), "load_seconds": round(self.load_seconds, 2),
        }


def _axis_dict(fits: list[TermFit], last_step: int) -> dict:
    first = fits[0]
    terms: dict = {}
    for f in fits:
        entry = _fit_dict(f)
        row = terms.setdefault(f.term, {"by_step": {}})
        row["by_step"][str(f.step)] = entry
        if f.step == last_step:
            row.update(entry)
    return {"at": first.at, "sizes": list(first.sizes), "lr_exponent": round(first.lr_exponent, 6), "step": last_step,
            "terms": terms}


def _fit_dict(f: TermFit) -> dict:
    fit = f.fit
    return {
        "slope": fit.slope, "ci": list(fit.ci) if fit.ci else None, "verdict": fit.verdict.value,
        "per_seed": list(fit.per_seed), "segments": list(fit.segments),
        "eta_order": f.eta_order, "correction": f.correction, "corrected_lr_exponent": f.corrected_exponent,
    }


def coord_check(s: CoordCheckSettings) -> CoordCheckResult:
    """Run the check (module docs) and fit every term against rank (at the largest width) and against
    width (at the smallest rank), at every step."""
    started = time.perf_counter()
    models = _load_all(s)
    load_seconds = time.perf_counter() - started
    widths = [m.loaded.width for m in models]
    ref_width = s.ref_width or min(widths)
    if s.ref_rank > ref_width:
        raise ConfigError("ref_rank", f"{s.ref_rank} exceeds the reference width {ref_width}", "μA's rules assume r ≤ n")
    ranks = sorted(s.ranks)
    order_rank = ranks[len(ranks) // 2]  # where each term's order in η is measured (largest width, seed 0)
    measurements: list[Measurement] = []
    losses: dict = {}
    runs = 0
    for m in models:
        n = m.loaded.width
        for config in s.configs:
            for rank in ranks:
                lr = learning_rate(config, n, rank, s, ref_width)
                log.info("coord-check %s %s r=%d: η = %.3g, %d seed(s) × %d steps", m.name, config.value, rank, lr, s.seeds, s.steps)
                for seed in range(s.seeds):
                    logs = _run_point(m, config, rank, seed, lr, s)
                    runs += 1
                    losses[(config.value, n, rank, seed)] = [r["loss"] for r in logs]
                    measurements += _measurements(logs, config, n, rank, seed, lr)
            if n == widths[-1]:
                lr = learning_rate(config, n, order_rank, s, ref_width) * s.eta_factor
                logs = _run_point(m, config, order_rank, 0, lr, s)
                runs += 1
                measurements += _measurements(logs, config, n, order_rank, 0, lr, s.eta_factor)
    fits = []
    for config in s.configs:
        if len(ranks) >= 2:
            fits += fit_axis(measurements, config.value, "rank", widths[-1], TERMS)
        if len(widths) >= 2:
            fits += fit_axis(measurements, config.value, "width", ranks[0], TERMS)
    return CoordCheckResult(s, measurements, fits, {m.name: m.loaded.width for m in models}, ref_width,
                            time.perf_counter() - started, load_seconds, runs, losses)
