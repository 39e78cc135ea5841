"""Sweep specs: one YAML file declares μA's learning-rate grids and LoRA-α's scaling paths.

    name: sweep-tiny                   # the Optuna study name (default: the file's stem)
    base: {model: tiny-llama, data: shakespeare, steps: 20}   # any TrainConfig keys: model, data, budget
    grid:                              # μA §5.1 / App. B.6: configurations × ranks × log2 η grid × seeds
      configs:                         # TrainConfig keys per configuration, full finetuning included
        - {name: "Init[A] α=1", rule: mua, init: A, gamma: 0}
        - {name: FFT, finetune: full}
      ranks: [4, 16, 64]
      log2_lr: {from: -14, to: -8}     # every integer exponent (step 1), or a list
      alpha_multipliers: [1]           # multiply the rule's α knob (alpha or lora_alpha)
      seeds: [0, 1]
    paths:                             # LoRA-α §2 eq. (2): L(r, m·η_FFT, α₀) and L(r, η_FFT, m·α₀)
      ranks: [4, 16]
      lr_fft: 2.0e-4
      alpha0: 16
      multipliers: {from: -2, to: 4}   # log2 m
    resources: {cpus: 1, gpus: 0}      # per trial, for --backend ray

A configuration may override ``ranks``, ``log2_lr`` and ``alpha_multipliers`` (μA Table 6 uses a
different learning-rate range per configuration). Every problem is reported at once, before
anything is stored. Each point's key hashes its resolved TrainConfig, so identical runs (the
m = 1 point shared by both paths) run once and re-running a spec finds its finished points.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..adapters.spec import AdapterSpec
from ..config_files import read_mapping
from ..errors import ConfigError, ConfigErrors
from ..rules import Finetune, ScaleRule
from ..schema import leaf_fields
from ..train.config import FLAT_KEYS, TrainConfig
from .axes import Collector, log2_axis, number_list, take_mapping
from .configs import ALPHA_KNOB, default_label, rule_facts

__all__ = ["Point", "Resources", "SweepSpec", "load_spec", "parse_spec", "point_key"]

TOP_KEYS = ("name", "description", "base", "grid", "paths", "resources")
GRID_KEYS = ("configs", "ranks", "log2_lr", "alpha_multipliers", "seeds")
CONFIG_AXES = ("ranks", "log2_lr", "alpha_multipliers")
PATH_KEYS = ("name", "ranks", "lr_fft", "alpha0", "multipliers", "which", "seeds")
AXIS_FIELDS = {"lr": "log2_lr", "rank": "ranks", "seed": "seeds"}  # set per point, never in base/configs
ADAPTER_FIELDS = tuple(k for k in leaf_fields(AdapterSpec) if k != "rank")  # rank is an axis
SPEC_DEFAULTS = {"save_model": False}  # a sweep keeps results in storage, not one adapter per point
KEY_IGNORES = ("out_dir", "save_model")  # where outputs go does not change the run
TRAIN_FIELDS = FLAT_KEYS


@dataclass(frozen=True)
class Point:
    """One training run of the sweep. ``paths``: its LoRA-α path memberships ("eta"|"alpha", m)."""

    key: str
    config: str
    rank: int | None  # None for full finetuning
    log2_lr: float
    alpha_mult: float
    seed: int
    train: TrainConfig
    paths: tuple[tuple[str, float], ...] = ()
    init: str | None = None
    gamma_eff: float | None = None
    predicted_slope: float | None = None
    peft_alpha: float | None = None

    def attrs(self) -> dict:
        """The point's coordinates as JSON values (stored with its trial; the fit reads them back)."""
        return {
            "key": self.key, "config": self.config, "rank": self.rank, "log2_lr": self.log2_lr,
            "alpha_mult": self.alpha_mult, "seed": self.seed, "finetune": self.train.finetune.value,
            "paths": [list(p) for p in self.paths], "init": self.init, "gamma_eff": self.gamma_eff,
            "predicted_slope": self.predicted_slope, "peft_alpha": self.peft_alpha,
        }


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class SweepSpec:
    name: str
    points: tuple[Point, ...]
    resources: Resources
    raw: dict  # the spec as written, stored with the study
    source: Path | None = None
    description: str = ""


def point_key(cfg: TrainConfig) -> str:
    """Stable 12-hex key: SHA-1 of the config's non-default fields (output locations excluded).

    Only non-default fields enter, so a field added to TrainConfig later keeps old keys valid.
    """
    default = _DEFAULT_FLAT
    diff = {k: v for k, v in cfg.to_flat().items() if k not in KEY_IGNORES and v != default.get(k)}
    return hashlib.sha1(json.dumps(diff, sort_keys=True).encode()).hexdigest()[:12]


_DEFAULT_FLAT = TrainConfig().to_flat()


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a spec file; raises ConfigErrors listing every problem."""
    p = Path(path)
    data = read_mapping(p, "spec", f"a sweep YAML such as configs/sweep-tiny.yaml, with keys {', '.join(TOP_KEYS)}")
    return parse_spec(data, default_name=p.stem, source=p)


def parse_spec(data: dict, default_name: str = "sweep", source: Path | None = None) -> SweepSpec:
    """Validate a spec mapping and expand it into points; raises ConfigErrors listing every problem."""
    c = Collector()
    c.unknown(data, TOP_KEYS, "")
    name = str(data.get("name", default_name))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        c.add("name", f"{name!r} is not a valid study name; use letters, digits, '.', '_' and '-'")
    base = _base(take_mapping(data, "base", c), c)
    grid = take_mapping(data, "grid", c, required=False)
    paths = take_mapping(data, "paths", c, required=False)
    res = _resources(take_mapping(data, "resources", c, required=False) or {}, c)
    if not grid and not paths:
        c.add("grid/paths", "the spec sweeps nothing; declare a grid:, a paths: section, or both")
    points: dict[str, Point] = {}
    if grid:
        _expand_grid(grid, base, c, points)
    if paths:
        _expand_paths(paths, base, c, points)
    c.raise_if_any()
    ordered = sorted(points.values(), key=lambda p: p.seed)  # stable: all of seed 0 first, then seed 1, ...
    return SweepSpec(name, tuple(ordered), res, data, source, str(data.get("description", "")))


# --------------------------------------------------------------------------------------------


def _base(base: dict | None, c: Collector) -> dict:
    base = dict(base or {})
    for k in list(base):
        if k in AXIS_FIELDS:
            c.add(f"base.{k}", f"conflicts with the sweep, which sets {k} per point; declare it as {AXIS_FIELDS[k]} instead")
            base.pop(k)
        elif k not in TRAIN_FIELDS:
            c.add(f"base.{k}", f"unknown TrainConfig key; valid keys: {', '.join(TRAIN_FIELDS)}")
            base.pop(k)
    return base


def _resources(res: dict, c: Collector) -> Resources:
    n_errors = len(c.errors)
    c.unknown(res, ("cpus", "gpus"), "resources")
    cpus, gpus = res.get("cpus", 1.0), res.get("gpus", 0.0)
    if not _number(cpus) or cpus <= 0:
        c.add("resources.cpus", f"must be a number > 0, got {cpus!r}")
    if not _number(gpus) or gpus < 0:
        c.add("resources.gpus", f"must be a number ≥ 0, got {gpus!r}")
    return Resources(float(cpus), float(gpus)) if len(c.errors) == n_errors else Resources()


def _overrides(entry: dict, where: str, extra: tuple, c: Collector) -> dict:
    out = {}
    for k, v in entry.items():
        if k in extra:
            continue
        if k in AXIS_FIELDS:
            c.add(f"{where}.{k}", f"conflicts with the sweep, which sets {k} per point; use {AXIS_FIELDS[k]}")
        elif k not in TRAIN_FIELDS:
            c.add(f"{where}.{k}", f"unknown key; use TrainConfig keys or {', '.join(extra)}")
        else:
            out[k] = v
    return out


def _expand_grid(grid: dict, base: dict, c: Collector, points: dict) -> None:
    c.unknown(grid, GRID_KEYS, "grid")
    ranks = number_list(grid.get("ranks"), "grid.ranks", c, kind=int)
    lrs = log2_axis(grid.get("log2_lr"), "grid.log2_lr", c)
    mults = number_list(grid.get("alpha_multipliers", [1.0]), "grid.alpha_multipliers", c, kind=float)
    seeds = number_list(grid.get("seeds", [0]), "grid.seeds", c, kind=int, positive=False)
    entries = grid.get("configs")
    if not isinstance(entries, list) or not entries:
        c.add("grid.configs", "empty grid: list at least one configuration, e.g. - {rule: mua, init: B, gamma: 0}")
        return
    labels: dict[str, int] = {}
    for i, entry in enumerate(entries):
        where = f"grid.configs[{i}]"
        if not isinstance(entry, dict):
            c.add(where, f"must be a mapping of TrainConfig keys, got {entry!r}")
            continue
        over = _overrides(entry, where, ("name", *CONFIG_AXES), c)
        full = {**SPEC_DEFAULTS, **base, **over}.get("finetune") == "full"
        if full:
            clash = [k for k in (*ADAPTER_FIELDS, "ranks", "alpha_multipliers") if k in entry]
            if clash:
                c.add(where, f"conflicting options: full finetuning has no adapter, drop {', '.join(clash)}")
                continue
        c_ranks = number_list(entry["ranks"], f"{where}.ranks", c, kind=int) if "ranks" in entry else ranks
        c_lrs = log2_axis(entry["log2_lr"], f"{where}.log2_lr", c) if "log2_lr" in entry else lrs
        c_mults = (number_list(entry["alpha_multipliers"], f"{where}.alpha_multipliers", c, kind=float)
                   if "alpha_multipliers" in entry else mults)
        if full:
            c_ranks, c_mults = (None,), (1.0,)
        rule = str({**base, **over}.get("rule", ScaleRule.LORA_ALPHA))
        knob = None if full else ALPHA_KNOB.get(rule)
        if knob is None and any(m != 1.0 for m in c_mults):
            c.add(f"{where}.alpha_multipliers", f"conflicting options: rule {rule} has no α knob to multiply;"
                  f" use a rule with one ({', '.join(ALPHA_KNOB)}) or alpha_multipliers: [1]")
            continue
        # validate the configuration even when an axis is empty, so every error shows at once
        probe = _train(base, over, (c_lrs or (-10.0,))[0], (c_ranks or (8,))[0], 0, None, None, where, c)
        if probe is None or not (c_ranks and c_lrs and c_mults and seeds):
            continue  # already reported
        label = str(entry.get("name") or default_label(probe))
        if label in labels:
            c.add(f"{where}.name", f"{label!r} is also configs[{labels[label]}]; give each configuration a distinct name")
            continue
        labels[label] = i
        for seed in seeds:
            for r in c_ranks:
                for x in c_lrs:
                    for m in c_mults:
                        knob_value = None if knob is None else m * getattr(probe.adapter.scaling, knob)
                        cfg = _train(base, over, x, r, seed, knob, knob_value, where, c)
                        if cfg is not None:
                            _add(points, _point(cfg, label, r, x, m, seed, ()), where, c)


def _expand_paths(paths: dict, base: dict, c: Collector, points: dict) -> None:
    """LoRA-α eq. (2) from the base (η_FFT, α₀): the η-path scales η by m, the α-path scales α by m."""
    n_errors = len(c.errors)
    over = _overrides(paths, "paths", PATH_KEYS, c)
    over.setdefault("rule", "fixed-alpha")
    if over.get("finetune", "lora") != "lora":
        c.add("paths.finetune", "conflicting options: scaling paths vary LoRA's α; full finetuning has none")
        return
    ranks = number_list(paths.get("ranks"), "paths.ranks", c, kind=int)
    mults = log2_axis(paths.get("multipliers"), "paths.multipliers", c)
    seeds = number_list(paths.get("seeds", [0]), "paths.seeds", c, kind=int, positive=False)
    which = paths.get("which", ["eta", "alpha"])
    if not isinstance(which, list) or not which or any(w not in ("eta", "alpha") for w in which):
        c.add("paths.which", f"must list eta and/or alpha, got {which!r}")
    lr_fft, alpha0 = paths.get("lr_fft"), paths.get("alpha0")
    for k, v in (("lr_fft", lr_fft), ("alpha0", alpha0)):
        if not _number(v) or not v > 0:
            c.add(f"paths.{k}", f"must be a number > 0 (LoRA-α uses η_FFT = 2e-5, α₀ = 16), got {v!r}")
    knob = ALPHA_KNOB.get(str(over["rule"]))  # noqa: the rule's value string keys ALPHA_KNOB (a StrEnum)
    if knob is None:
        c.add("paths.rule", f"conflicting options: rule {over['rule']} has no α knob; use one of {', '.join(ALPHA_KNOB)}")
    if len(c.errors) > n_errors or not (ranks and mults and seeds):
        return
    label = str(paths.get("name") or "LoRA-α paths")
    over["lr_fft"] = float(lr_fft)
    for seed in seeds:
        for r in ranks:
            for path in which:
                for x in mults:
                    m = 2.0**x
                    lr = m * lr_fft if path == "eta" else float(lr_fft)
                    a = float(alpha0) if path == "eta" else m * alpha0
                    cfg = _train(base, over, math.log2(lr), r, seed, knob, a, "paths", c)
                    if cfg is not None:
                        am = 1.0 if path == "eta" else m
                        _add(points, _point(cfg, label, r, math.log2(lr), am, seed, ((path, m),)), "paths", c)


def _train(base, over, log2_lr, rank, seed, knob, knob_value, where, c: Collector) -> TrainConfig | None:
    if {**base, **over}.get("finetune") == Finetune.FULL:  # the base's adapter settings are for the LoRA configs
        base = {k: v for k, v in base.items() if k not in ADAPTER_FIELDS}
    values = {**SPEC_DEFAULTS, **base, **over, "lr": 2.0**log2_lr, "seed": seed}
    if rank is not None:
        values["rank"] = rank
    if knob is not None:
        values[knob] = knob_value
    try:
        return TrainConfig.from_flat(values)
    except ConfigErrors as errs:
        for e in errs.errors:  # name the section that set the bad value
            owner = where if e.field in over or e.field not in base else "base"
            c.add_once(f"{owner}.{e.field}", e.message if not e.fix else f"{e.message}; {e.fix}")
    return None


def _point(cfg: TrainConfig, label, rank, log2_lr, alpha_mult, seed, paths) -> Point:
    init, gamma_eff, slope, peft_alpha = rule_facts(cfg)
    return Point(point_key(cfg), label, rank, float(log2_lr), float(alpha_mult), int(seed), cfg, tuple(paths),
                 init, gamma_eff, slope, peft_alpha)


def _add(points: dict, p: Point, where: str, c: Collector) -> None:
    old = points.get(p.key)
    if old is None:
        points[p.key] = p
    elif p.paths:  # the m = 1 point of both paths, or a path point equal to a grid point: run it once
        points[p.key] = Point(**{**old.__dict__, "paths": old.paths + p.paths})
    else:
        c.add_once(where, f"configuration {p.config!r} repeats runs of {old.config!r}; make them differ or drop one")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
