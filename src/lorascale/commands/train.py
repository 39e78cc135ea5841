"""lorascale train: fine-tune with LoRA (any rule, Init[A]/Init[B]) or fully, on the μA recipe.

Configuration comes from --config YAML and flags (one flag per TrainConfig setting); flags override
the file; every error is reported at once before anything runs.
"""

from __future__ import annotations

import argparse
import logging
import os

from ..errors import ConfigError, ConfigErrors, collecting
from ..diagnostics import DiagnosticsSettings
from ..train.config import TrainConfig
from .common import with_name_errors
from .flags import add_settings_args, given

log = logging.getLogger("lorascale")


def register(sub) -> None:
    p = sub.add_parser("train", help="fine-tune a model with LoRA (any rule/init) or fully, on the μA recipe")
    add_train_args(p)
    p.set_defaults(run=run)


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of TrainConfig keys; flags override it")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint (see --save-every),"
                   " with the settings in its config.json")
    add_settings_args(p, TrainConfig, title="run settings (YAML keys: the flag names with _)")
    p.add_argument("--no-save", dest="save_model", action="store_false", default=argparse.SUPPRESS,
                   help="don't save the adapter/model (same as --no-save-model)")
    add_settings_args(p, DiagnosticsSettings, title="diagnostics (monitors; not YAML run settings)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args) -> TrainConfig:
    if getattr(args, "resume", None):
        from ..errors import ConfigError, ConfigErrors
        from ..train.checkpoint import resume_config

        changed = ["config"] * bool(args.config) + sorted(given(args, TrainConfig))
        errors = [ConfigError(k, "a resumed run keeps the settings in its config.json", "drop it, or start a new run")
                  for k in changed]
        try:  # the folder's own problems are reported with the flags' (all at once)
            cfg = resume_config(args.resume)
        except ConfigErrors as e:
            errors = e.errors + errors
        except ConfigError as e:
            errors = [e] + errors
        ConfigErrors.raise_if_any(errors)
        return cfg
    return TrainConfig.from_sources(getattr(args, "config", None), given(args, TrainConfig))


def _raw_values(args) -> dict:
    """The settings as given, the --config file's under the flags', before they validate."""
    from ..config_files import read_mapping

    try:
        file = read_mapping(args.config, "config", "a YAML file of TrainConfig keys") if args.config else {}
    except ConfigError:
        file = {}  # its own error is already in the list
    return {**file, **given(args, TrainConfig)}


def with_out_dir_error(errors: list[ConfigError], values: dict) -> list[ConfigError]:
    """``errors`` plus the problem of the run folder ``values`` name (``out_dir``: new or empty), unless it is
    already among them; a run with no out_dir gets a new folder of its own."""
    from ..outputs import check_output_dir

    out = values.get("out_dir")
    if not isinstance(out, str) or "out_dir" in {e.field for e in errors}:
        return errors
    if os.environ.get("RANK", "0") != "0":  # another process of a distributed launch: the main one checks it, and
        return errors  # may already have created it
    try:
        check_output_dir(out, "out_dir", fresh=True, what="run")
    except ConfigError as e:
        return [*errors, e]
    return errors


def with_run_errors(errors: list[ConfigError], values: dict) -> list[ConfigError]:
    """``errors`` (the settings' own) plus what the run's data, model and adapter would refuse
    (:func:`~lorascale.train.build.check_run`, no weights loaded), judged on the settings that did validate:
    a task mismatch is reported with a bad ``--rank``, not after it is fixed. A run whose settings all
    validate is checked by ``train`` itself."""
    from ..schema import validate_partial
    from ..train.build import check_run

    if not errors or "config" in {e.field for e in errors}:  # without the file, defaults stand in for its settings
        return errors
    partial, _ = validate_partial(TrainConfig, values)
    if partial is None:  # a cross-field problem: nothing to judge the rest on
        return errors
    refused = {e.field for e in errors}
    found: list[ConfigError] = []
    with collecting(found):
        check_run(partial, unchecked=refused)
    return errors + [e for e in found if e.field not in refused]


def make_diagnostics(args) -> list:
    from ..diagnostics import make_callbacks

    s = DiagnosticsSettings(**given(args, DiagnosticsSettings))  # --diag-every is checked even alone
    return make_callbacks(list(s.diagnostics), every=s.diag_every)


def run(args) -> int:
    from ..interrupts import describe, exit_code
    from ..train import train
    from ..rlvr.train import check_rlvr
    from ..train.loop import is_rlvr
    from ..vocabulary import RunStatus

    errors, cfg, callbacks = [], None, []
    with collecting(errors):  # the file's, the flags' and the monitors' problems at once
        cfg = config_from_args(args)
    if not getattr(args, "resume", None):  # and what the run would read and write (found by looking only)
        errors = with_out_dir_error(with_name_errors(errors, values := _raw_values(args)), values)
        errors = with_run_errors(errors, values)
    with collecting(errors):
        callbacks = make_diagnostics(args)
    if cfg is not None and is_rlvr(cfg):  # with the rest, not later from train_rlvr (looking only: no model loads)
        with collecting(errors):
            check_rlvr(cfg)
        # --diagnostics as given (the monitors may have failed to build), named by its flag, not as train_rlvr's
        # flagless `callbacks`
        if given(args, DiagnosticsSettings).get("diagnostics"):
            errors.append(ConfigError("diagnostics", "the rlvr task trains inside TRL's GRPOTrainer, where lorascale's"
                                      " monitors do not attach", "drop `diagnostics` (in Python, lorascale.attach(trainer,"
                                      " ...) attaches them to a GRPOTrainer you build)"))
    ConfigErrors.raise_if_any(errors)
    try:
        result = train(cfg, callbacks, progress=not args.quiet, resume=bool(getattr(args, "resume", None)))
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM
        log.warning("train: interrupted by %s; the run directory is marked interrupted", describe(e))
        return exit_code(e)
    except OSError as e:  # the disk filled up (or failed) while the run wrote its files
        where = f" writing {e.filename}" if e.filename else ""
        log.error("train: %s%s; the run stopped and its summary.json records it as failed", e.strerror or e, where)
        return 1
    metric = f"{result.eval_metric} {result.eval_value:.4f}" if result.eval_value is not None else "no eval"
    print(f"{result.status}: EMA loss {result.final_ema_loss:.4f}, {metric}, {result.wall_time:.1f}s -> {result.run_dir}")
    if result.status is RunStatus.DIVERGED:
        log.warning("train: run diverged: %s", result.message)
    return 0
