"""Curvature of a finished run's adapter: rebuild the run, load its adapter, Lanczos + Hutchinson.

A run directory holds ``config.json`` (``TrainConfig.to_dict()``), ``metrics.jsonl`` and
``adapter/`` (the saved PEFT adapter). The model and validation data are rebuilt with
``lorascale.train.build.build_run`` from the config, the trained factors are loaded into it, and
:func:`lorascale.diagnostics.spectral.curvature_report` runs on the first validation batch.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from ..schema import PositiveInt, Settings, setting

__all__ = ["CurvatureSettings", "read_metrics", "run_curvature"]


class CurvatureSettings(Settings):
    """How the curvature of a run's adapter is estimated (:func:`run_curvature`)."""

    lanczos_steps: PositiveInt = setting(20, "Lanczos iterations for λ_max and λ_min")
    hutchinson_samples: PositiveInt = setting(10, "Hutchinson probe vectors for the trace", ge=2,
                                              fix="use 2 or more: the trace's standard error needs two")
    batch_size: PositiveInt = setting(4, "validation examples in the Hessian's batch")


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of ``RUN_DIR/metrics.jsonl``; a malformed line is an error naming its number."""
    path = Path(run_dir) / "metrics.jsonl"
    if not Path(run_dir).is_dir():
        raise ConfigError("run_dir", f"{run_dir} is not a directory", "pass a run folder written by `lorascale train`")
    if not path.exists():
        raise ConfigError("run_dir", f"{path} does not exist", "train it with the `diagnostics` setting signal-drift first (lorascale train, or lorascale.diagnostics.make_callbacks in your own loop)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError("run_dir", f"{path} is not UTF-8 text", "pass a run folder written by `lorascale train`") from None
    records = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError("run_dir", f"{path}:{i} is not valid JSON ({e.msg})",
                              "remove or repair that line (lorascale writes one JSON object per step)") from None
        if not isinstance(record, dict):
            raise ConfigError("run_dir", f"{path}:{i} is {type(record).__name__} {line.strip()[:40]!r}, not an object of"
                              " metrics", 'each line must be one step\'s metrics, e.g. {"step": 1, "loss": 2.3}')
        records.append(record)
    return records


def run_curvature(run_dir: str | Path, steps: int = 20, samples: int = 10, batch_size: int = 4, seed: int = 0, progress: bool = True) -> dict:
    """Top/bottom eigenvalues and trace of H_LoRA and H_signal of the run's trained adapter."""
    run_dir = Path(run_dir)
    cfg = _load_config(run_dir)
    from ..methods import BASE_CHANGING_METHODS
    from ..rules import Finetune
    from ..train.build import build_run

    from ..methods import Method

    if cfg.finetune is not Finetune.LORA:
        raise ConfigError("lanczos", f"{run_dir} is a full-finetuning run: H_LoRA and H_signal are the curvature of LoRA's"
                          " factors, and it has none", "estimate the curvature of a LoRA run")
    if cfg.adapter.method is Method.DORA:
        raise ConfigError("lanczos", f"{run_dir} is a DoRA run: its output columns are scaled by m/‖W₀ + s·B·A‖, so the"
                          " drift Hessian's closed form (W = W₀ + s·B·A) and H_signal = H_LoRA − H_drift do not hold",
                          "estimate the curvature of LoRA, rsLoRA or LoRA+ runs")
    if cfg.adapter.method in BASE_CHANGING_METHODS:
        raise ConfigError("lanczos", f"{run_dir} is a {cfg.adapter.method} run: its saved adapter is the plain LoRA of"
                          f" rank {2 * cfg.adapter.rank} on the original weights it was converted to when saved, not the"
                          " factors it trained on the residual weights, so its curvature would be another model's",
                          "estimate the curvature of LoRA, rsLoRA or LoRA+ runs")

    built = build_run(cfg, quiet=not progress)
    _load_adapter(built.model, run_dir / "adapter")
    batch = next(iter(built.val_loader), None)
    if batch is None:
        raise ConfigError("lanczos", "the run's validation split is empty; the curvature needs a held-out batch",
                          "retrain with a larger val_fraction or max_examples")
    from .spectral import AdapterHessian, curvature_report

    op = AdapterHessian(built.model, *_probe(built, batch, batch_size, cfg))
    report = curvature_report(op, steps=steps, samples=samples, seed=seed, progress=progress)
    return {"batch_size": batch_size, **report}


def _probe(built, batch: dict, batch_size: int, cfg) -> tuple:
    """(batch, loss_from_output) of the curvature's fixed batch: its first ``batch_size`` examples, scored by
    the model's own loss, or for a contrastive run its first ``batch_size`` pairs scored by InfoNCE."""
    from ..train.contrastive import pair_loss, take_pairs
    from ..vocabulary import Task

    if built.task is not Task.CONTRASTIVE:
        from .spectral import default_loss

        return {k: v[:batch_size] for k, v in batch.items()}, default_loss
    pairs = take_pairs(batch, batch_size)
    mask = pairs["attention_mask"]
    return {"input_ids": pairs["input_ids"], "attention_mask": mask}, lambda out: pair_loss(out.last_hidden_state, mask, cfg.temperature)


def _load_config(run_dir: Path):
    from ..config_files import read_mapping
    from ..train.config import TrainConfig, config_from_mapping

    mapping = read_mapping(run_dir / "config.json", "lanczos", "a run folder written by `lorascale train`")
    return config_from_mapping(mapping, TrainConfig())  # config.json holds exactly TrainConfig's fields


def _load_adapter(model, adapter_dir: Path) -> None:
    from peft.utils import set_peft_model_state_dict

    weights = adapter_dir / "adapter_model.safetensors"
    if weights.exists():
        from safetensors.torch import load_file

        state = load_file(str(weights))
    elif (adapter_dir / "adapter_model.bin").exists():
        import torch

        state = torch.load(adapter_dir / "adapter_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ConfigError("lanczos", f"no adapter_model.safetensors in {adapter_dir}", "train with `save_model` on")
    result = set_peft_model_state_dict(model, state)
    unexpected = getattr(result, "unexpected_keys", []) or []
    if unexpected:
        raise ConfigError("lanczos", f"{adapter_dir} does not match the rebuilt model (unexpected keys, e.g. {unexpected[0]})",
                          "pass the run folder the adapter was trained in, with its own config.json")
