"""What a sweep must establish before it stores anything: its models and datasets resolve.

A spec that names a model or dataset that does not exist would otherwise be stored and run, and
every one of its trials would fail. :func:`check_inputs` resolves each distinct name once (models
without loading them; builtin datasets are loaded once per process, user files every time, so
their columns and labels are checked too) and reports every problem at once, naming the section
of the spec that set the value.
"""

from __future__ import annotations

import functools

from ..errors import ConfigError, ConfigErrors
from ..vocabulary import Task

__all__ = ["check_inputs"]


def check_inputs(spec) -> None:
    """Raise ConfigErrors for every model and dataset of ``spec`` (a SweepSpec) that cannot be resolved."""
    from ..models import check_model

    errors: list[ConfigError] = []
    seen: set[tuple] = set()
    for p in spec.points:
        cfg = p.train
        task = None if cfg.task is None else str(cfg.task)
        for key, value, check in (("model", cfg.model, lambda: check_model(cfg.model)),
                                  ("data", cfg.data, lambda: _check_data(cfg, task))):
            if (key, value, task) in seen:
                continue
            seen.add((key, value, task))
            try:
                check()
            except ConfigError as e:
                errors.append(ConfigError(f"{_where(spec.raw, key, value)}.{key}", e.message, e.fix))
        if ("seq_len", cfg.model, cfg.seq_len) not in seen:
            seen.add(("seq_len", cfg.model, cfg.seq_len))
            errors += _check_positions(spec.raw, cfg)
        rl = _rlvr_settings(cfg)
        if rl is not None and rl not in seen:
            seen.add(rl)
            errors += _check_rlvr(spec.raw, cfg)
    ConfigErrors.raise_if_any(errors)


def _rlvr_settings(cfg) -> tuple | None:
    """What :func:`~lorascale.rlvr.train.check_rlvr` reads of an rlvr point (None for another task)."""
    from ..train.loop import is_rlvr

    if not is_rlvr(cfg):
        return None
    return (Task.RLVR, cfg.data, cfg.rl.train_problems, cfg.rl.val_problems, cfg.batch_size, cfg.grad_accum, cfg.steps,
            cfg.save_every, cfg.eval_every, cfg.log_every)


def _check_rlvr(raw: dict, cfg) -> list[ConfigError]:
    """The rlvr run's own refusals (problems, budget, batch), each named by the section that sets its key."""
    from ..rlvr.train import check_rlvr

    try:
        check_rlvr(cfg)
    except ConfigErrors as e:
        return [ConfigError(f"{_section_of(raw, x.field)}.{x.field}", x.message, x.fix) for x in e.errors]
    return []


def _section_of(raw: dict, key: str) -> str:
    """The last section of a spec mapping that sets ``key`` (a configuration overrides ``base``), else ``base``."""
    named = [name for name, section in _sections(raw) if key in section]
    return named[-1] if named else "base"


def _check_positions(raw: dict, cfg) -> list[ConfigError]:
    """``seq_len`` within the model's positions, read from its config (each trial would fail at build)."""
    from ..models import model_positions
    from ..train.build import seq_len_error

    limit = model_positions(cfg.model)
    if limit is None or cfg.seq_len <= limit:
        return []
    e = seq_len_error(cfg.seq_len, cfg.model, limit)
    return [ConfigError(f"{_where(raw, 'seq_len', cfg.seq_len)}.seq_len", e.message, e.fix)]


def _where(raw: dict, key: str, value) -> str:
    """The section of a spec mapping that sets ``key`` to ``value``: ``base``, ``grid.configs[i]`` or
    ``paths`` (``base`` when no section sets it: the default applies)."""
    return next((name for name, section in _sections(raw) if section.get(key) == value), "base")


def _sections(raw: dict) -> list[tuple[str, dict]]:
    """(name, mapping) of each section of a spec that sets run settings: ``base``, ``grid.configs[i]``, ``paths``."""
    grid = raw.get("grid") or {}
    sections = [("base", raw.get("base")), *((f"grid.configs[{i}]", c) for i, c in enumerate(grid.get("configs") or [])),
                ("paths", raw.get("paths"))]
    return [(name, section) for name, section in sections if isinstance(section, dict)]


def _check_data(cfg, task: str | None) -> None:
    from ..data import BUILTIN, load_examples
    from ..train.loop import is_rlvr

    data = cfg.data
    if is_rlvr(cfg):  # problems, not examples: check_rlvr draws the split the run will draw
        return
    if data in BUILTIN:
        _check_builtin(data, task)
    else:
        load_examples(data, task)  # a user's file: its columns and labels, checked every time


@functools.lru_cache(maxsize=None)
def _check_builtin(name: str, task: str | None) -> None:
    """A builtin dataset, loaded once per process: its package is installed and it fits ``task``."""
    from ..data import load_examples

    load_examples(name, task)
