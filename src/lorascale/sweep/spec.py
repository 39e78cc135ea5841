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
import os
from dataclasses import dataclass
from pathlib import Path

from ..adapters.spec import AdapterSpec
from ..config_files import read_mapping
from ..errors import ConfigError, ConfigErrors
from ..rules import ALL_KNOBS, RULE_KNOBS, Finetune, ScaleRule, rules_reading, unread_knobs
from ..schema import leaf_fields
from ..train.config import FLAT_KEYS, TrainConfig
from ..schema import validate_partial
from .collector import Collector
from .records import PointCoords
from .spec_schema import GridSpec, PathsSpec, Resources, SweepFile  # Resources: the spec's own, re-exported
from .rule_facts import ALPHA_KNOB, default_label, rule_facts

__all__ = ["Point", "Resources", "SweepSpec", "load_spec", "parse_spec", "point_key"]

TOP_KEYS = tuple(SweepFile.model_fields)
AXIS_FIELDS = {"lr": "log2_lr", "rank": "ranks", "seed": "seeds"}  # set per point, never in base/configs
ADAPTER_FIELDS = tuple(k for k in leaf_fields(AdapterSpec) if k != "rank")  # rank is an axis
PATHS_RULE = ScaleRule.FIXED_ALPHA.value  # the paths' rule unless they give one: α is PEFT's lora_alpha, as in LoRA-α
SPEC_DEFAULTS = {"save_model": False}  # a sweep keeps results in storage, not one adapter per point
# where outputs go, checkpoints and recomputed activations (bitwise the same numbers) do not change the run
KEY_IGNORES = ("out_dir", "save_model", "save_every", "gradient_checkpointing")
TRAIN_FIELDS = FLAT_KEYS


@dataclass(frozen=True)
class Point:
    """One training run of the sweep. ``paths``: its LoRA-α path memberships ("eta"|"alpha", m)."""

    key: str
    label: str  # the configuration's name, e.g. "Init[A] α=1" (stored under the key "config")
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

    def coords(self) -> PointCoords:
        """The point's coordinates as stored with its trial (the records module defines the keys)."""
        return PointCoords(
            key=self.key, config=self.label, rank=self.rank, log2_lr=self.log2_lr, alpha_mult=self.alpha_mult,
            seed=self.seed, finetune=self.train.finetune.value, paths=self.paths, init=self.init,
            gamma_eff=self.gamma_eff, predicted_slope=self.predicted_slope, peft_alpha=self.peft_alpha,
        )

    def attrs(self) -> dict:
        return self.coords().to_dict()


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
    """Validate a spec mapping and expand it into points; raises ConfigErrors listing every problem.

    The file's shape is checked by :class:`~lorascale.sweep.spec_schema.SweepFile`; each point's run
    settings by TrainConfig as the points are expanded. Both kinds of problem are reported together.
    """
    c = Collector()
    spec, shape_errors = validate_partial(SweepFile, data)
    c.errors += shape_errors
    if spec is None and not isinstance(data.get("base"), dict):  # no base (or not a mapping): still check the rest
        spec, _ = validate_partial(SweepFile, {**data, "base": {}})  # its errors are the ones reported above
    if spec is None:
        c.errors += _name_errors(data, c)
        c.raise_if_any()
    name = spec.name or default_name
    base = _without_unread_knobs(_base(spec.base, c), spec, c)
    if not spec.grid and not spec.paths and "grid" not in data and "paths" not in data:
        c.add("grid/paths", "the spec sweeps nothing", "declare a grid:, a paths: section, or both")
    points: dict[str, Point] = {}
    labels = _expand_grid(spec.grid, base, c, points) if spec.grid else {}
    if spec.paths:
        if spec.paths.name in labels:  # the fit tells runs apart by label: a shared one would merge two curves
            c.add("paths.name", f"{spec.paths.name!r} is also the label of grid.configs[{labels[spec.paths.name]}]",
                  "give the paths a name of their own")
        _expand_paths(spec.paths, base, c, points)
    elif isinstance(data.get("paths"), dict):  # its own keys were refused; still check its run settings
        _path_settings({k: v for k, v in data["paths"].items() if k not in PathsSpec.model_fields}, c)
    if c.errors:  # a misspelt model or data name is reported with the rest, not after they are fixed
        c.errors += _name_errors(data, c)
    c.raise_if_any()
    ordered = sorted(points.values(), key=lambda p: p.seed)  # stable: all of seed 0 first, then seed 1, ...
    return SweepSpec(name, tuple(ordered), spec.resources, data, source, spec.description)


# --------------------------------------------------------------------------------------------


def _name_errors(data: dict, c: Collector) -> list[ConfigError]:
    """The model and data names written in the spec (base, each configuration, paths) that resolve to
    nothing, checked without loading a model; a user's data file is read, so its columns and labels are
    checked too (against the section's task, else the base's). A field already refused is not checked again."""
    from ..data import check_data_name, load_examples
    from ..models import check_model

    base = data.get("base") if isinstance(data.get("base"), dict) else {}

    def check_data(value: str, mapping: dict) -> None:
        check_data_name(value)
        if os.path.isfile(value):  # what check_inputs would find once the spec's shape passes
            task = mapping.get("task", base.get("task"))
            load_examples(value, task if isinstance(task, str) else None)

    grid = data.get("grid") if isinstance(data.get("grid"), dict) else {}
    configs = grid.get("configs") if isinstance(grid.get("configs"), list) else []
    places = [("base", data.get("base")), ("paths", data.get("paths"))]
    places += [(f"grid.configs[{i}]", entry) for i, entry in enumerate(configs)]
    refused = {e.field for e in c.errors}
    out = []
    for where, mapping in places:
        for key, check in (("model", lambda v, m: check_model(v)), ("data", check_data)):
            value = mapping.get(key) if isinstance(mapping, dict) else None
            if isinstance(value, str) and f"{where}.{key}" not in refused:
                try:
                    check(value, mapping)
                except ConfigErrors as es:
                    out += [ConfigError(f"{where}.{key}", e.message, e.fix) for e in es.errors]
                except ConfigError as e:
                    out.append(ConfigError(f"{where}.{key}", e.message, e.fix))
    return out


def _base(base: dict, c: Collector) -> dict:
    base = dict(base)
    for k in list(base):
        if k in AXIS_FIELDS:
            c.add(f"base.{k}", f"conflicts with the sweep, which sets {k} per point", f"declare it as {AXIS_FIELDS[k]} instead")
            base.pop(k)
        elif k not in TRAIN_FIELDS:
            c.add(f"base.{k}", "unknown TrainConfig key", f"valid keys: {', '.join(TRAIN_FIELDS)}")
            base.pop(k)
    return base


def _without_unread_knobs(base: dict, spec: SweepFile, c: Collector) -> dict:
    """``base`` without the rule knobs that no run reads, each reported: a grid configuration reads its rule's
    knobs; the paths read their rule's but for the one they set (alpha0 × m)."""
    read: set[str] = set()
    for entry in spec.grid.configs if spec.grid else ():
        values = {**SPEC_DEFAULTS, **base, **entry.settings()}
        if values.get("finetune") != Finetune.FULL:
            read |= set(RULE_KNOBS.get(str(values.get("rule", ScaleRule.LORA_ALPHA)), ALL_KNOBS))  # not a rule: its error
    if spec.paths:
        rule = str(spec.paths.settings().get("rule", PATHS_RULE))  # not the base's: the paths set their own
        read |= set(RULE_KNOBS.get(rule, ALL_KNOBS)) - {ALPHA_KNOB.get(rule)}
    unread = sorted(set(base) & ALL_KNOBS - read)
    for k in unread:
        c.add(f"base.{k}", "no run's rule reads it, so it would be ignored",
              f"drop it, or give a configuration a rule that reads it ({rules_reading(k)})")
    return {k: v for k, v in base.items() if k not in unread}


def _overrides(entry: dict, where: str, c: Collector) -> dict:
    out = {}
    for k, v in entry.items():
        if k in AXIS_FIELDS:
            c.add(f"{where}.{k}", f"conflicts with the sweep, which sets {k} per point", f"use {AXIS_FIELDS[k]}")
        elif k not in TRAIN_FIELDS:
            c.add(f"{where}.{k}", "unknown key", "use TrainConfig keys or the section's own keys")
        else:
            out[k] = v
    return out


def _expand_grid(grid: GridSpec, base: dict, c: Collector, points: dict) -> dict[str, int]:
    """Add the grid's points; returns each configuration's label with its index in ``grid.configs``."""
    seeds = grid.seeds
    labels: dict[str, int] = {}
    for i, entry in enumerate(grid.configs):
        where = f"grid.configs[{i}]"
        over = _overrides(entry.settings(), where, c)
        full = {**SPEC_DEFAULTS, **base, **over}.get("finetune") == Finetune.FULL
        if full:
            clash = [k for k in (*ADAPTER_FIELDS, "ranks", "alpha_multipliers") if k in over or getattr(entry, k, None)]
            if clash:
                c.add(where, "conflicting options: full finetuning has no adapter", f"drop {', '.join(clash)}")
                over = {k: v for k, v in over.items() if k not in clash}  # the other settings are still checked
        c_ranks = entry.ranks or grid.ranks
        c_lrs = entry.log2_lr or grid.log2_lr
        c_mults = entry.alpha_multipliers or grid.alpha_multipliers
        if full:
            c_ranks, c_mults = [None], [1.0]
        missing = [k for k, v in (("ranks", c_ranks), ("log2_lr", c_lrs)) if not v]
        for k in missing:
            if not any(e.field.startswith(f"grid.{k}") for e in c.errors):  # not already refused as written
                c.add_once(f"grid.{k}", "empty grid", "list at least one value, here or in each configuration")
        rule = str({**base, **over}.get("rule", ScaleRule.LORA_ALPHA))
        knob = None if full else ALPHA_KNOB.get(rule)
        if not full:  # a knob the configuration gives its rule, which the rule ignores: reported, then left out
            unread = {e.field: e for e in unread_knobs({**over, "rule": rule}, where=f"{where}.")}
            for e in unread.values():
                c.add(e.field, e.message, e.fix)
            over = {k: v for k, v in over.items() if f"{where}.{k}" not in unread}
        if knob is None and any(m != 1.0 for m in c_mults):
            c.add(f"{where}.alpha_multipliers", f"conflicting options: rule {rule} has no α knob to multiply",
                  f"use a rule with one ({', '.join(ALPHA_KNOB)}) or alpha_multipliers: [1]")
            c_mults = [1.0]  # reported; the configuration's other settings are still checked
        # validate the configuration even when an axis is empty, so every error shows at once
        probe = _train(base, over, (c_lrs or [-10.0])[0], (c_ranks or [8])[0], 0, None, None, where, c)
        if probe is None or missing:
            continue  # already reported
        label = str(entry.name or default_label(probe))
        if label in labels:
            c.add(f"{where}.name", f"{label!r} is also configs[{labels[label]}]", "give each configuration a distinct name")
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
    return labels


def _expand_paths(paths: PathsSpec, base: dict, c: Collector, points: dict) -> None:
    """LoRA-α eq. (2) from the base (η_FFT, α₀): the η-path scales η by m, the α-path scales α by m."""
    n_errors = len(c.errors)
    over, knob = _path_settings(paths.settings(), c)
    if len(c.errors) > n_errors:
        return
    over["lr_fft"] = paths.lr_fft
    for seed in paths.seeds:
        for r in paths.ranks:
            for path in paths.which:
                for x in paths.multipliers:
                    m = 2.0**x
                    lr = m * paths.lr_fft if path == "eta" else paths.lr_fft
                    a = paths.alpha0 if path == "eta" else m * paths.alpha0
                    cfg = _train(base, over, math.log2(lr), r, seed, knob, a, "paths", c)
                    if cfg is not None:
                        am = 1.0 if path == "eta" else m
                        _add(points, _point(cfg, paths.name, r, math.log2(lr), am, seed, ((path, m),)), "paths", c)


def _path_settings(settings: dict, c: Collector) -> tuple[dict, str | None]:
    """The paths' TrainConfig overrides (rule fixed-alpha by default) and the α knob they scale."""
    over = _overrides(settings, "paths", c)
    over.setdefault("rule", PATHS_RULE)
    if over.get("finetune", "lora") != "lora":
        c.add("paths.finetune", "conflicting options: scaling paths vary LoRA's α; full finetuning has none",
              "drop finetune from paths (or set it to lora)")
        return over, None
    knob = ALPHA_KNOB.get(str(over["rule"]))
    if knob is None:
        c.add("paths.rule", f"conflicting options: rule {over['rule']} has no α knob", f"use one of {', '.join(ALPHA_KNOB)}")
    for e in unread_knobs(over, where="paths."):
        c.add(e.field, e.message, e.fix)
    if knob in over:
        c.add(f"paths.{knob}", "the paths set it at every point (alpha0 on the η-path, m × alpha0 on the α-path)",
              "give its starting value as alpha0")
    return {k: v for k, v in over.items() if k not in ALL_KNOBS or k in RULE_KNOBS.get(str(over["rule"]), ())}, knob


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
            c.add_once(f"{owner}.{e.field}", e.message, e.fix)
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
        c.add_once(where, f"configuration {p.label!r} repeats runs of {old.label!r}", "make them differ or drop one")
