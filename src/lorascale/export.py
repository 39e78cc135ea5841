"""Export a trained run's adapter to a folder: the PEFT adapter (portable: it names the Hub base model), or
the model with the adapter merged in by PEFT's ``merge_and_unload`` (a plain transformers model).

A run folder (``lorascale train``) holds ``config.json`` (model, seed) and ``adapter/``; an adapter
folder written by :func:`lorascale.adapters.save_adapter` names its model in ``lorascale.json``. The
base model is rebuilt offline with :func:`lorascale.models.load_model`.
"""

from __future__ import annotations

import json
from pathlib import Path

from .adapters.io import AdapterMetadata, read_metadata, save_adapter
from .errors import ConfigError
from .outputs import check_output_dir
from .vocabulary import Task

__all__ = ["export_adapter"]


def export_adapter(run_dir: str | Path, out: str | Path | None = None, merge: bool = False) -> Path:
    """Write ``run_dir``'s adapter (or, with ``merge``, the merged model and its tokenizer) to ``out``
    (default ``RUN/export`` or ``RUN/merged``); returns the folder."""
    from peft import PeftModel

    from .models import load_model

    run = Path(run_dir)
    adapter_dir, model_name = _locate(run)
    out = Path(out) if out is not None else run / ("merged" if merge else "export")
    if out.resolve() == adapter_dir.resolve():
        raise ConfigError("out", f"{out} is the adapter folder itself", "export to another folder")
    check_output_dir(out, "out", what="export")  # before the base model loads
    task = _task(adapter_dir)
    # the base the run trained on: training never passes its seed to load_model (the tiny models' weights are
    # TINY_BASE_SEED's; a classification head is in the adapter), so neither does the export
    loaded = load_model(model_name, task=task, num_labels=_num_labels(adapter_dir), quiet=True)
    peft_model = PeftModel.from_pretrained(loaded.model, adapter_dir)
    if merge:  # merged in float32, then stored in the base checkpoint's dtype (a bf16 base stays bf16-sized)
        import torch

        merged = peft_model.merge_and_unload().to(getattr(torch, loaded.stored_dtype))
        merged.save_pretrained(out)
        loaded.tokenizer.save_pretrained(out)
        return out
    meta = read_metadata(adapter_dir, "run_dir") or {"model": model_name}
    return save_adapter(peft_model, out, AdapterMetadata(**{k: v for k, v in meta.items() if k != "lorascale_version"}))


def _locate(run: Path) -> tuple[Path, str]:
    """(adapter folder, base model name) of a run folder or an adapter folder."""
    if not run.is_dir():
        raise ConfigError("run_dir", f"{run} is not a folder", "pass a run folder written by `lorascale train`, or an adapter folder")
    if (run / "model").is_dir() and not (run / "adapter").is_dir():
        raise ConfigError("run_dir", f"{run} is a full-finetuning run: {run / 'model'} is already a complete model",
                          "load or copy that folder; there is no adapter to export")
    adapter_dir = run / "adapter" if (run / "adapter").is_dir() else run
    if not (adapter_dir / "adapter_config.json").exists():
        raise ConfigError("run_dir", f"{run} holds no adapter (no adapter_config.json)", "train with save_model: true")
    config = run / "config.json"
    if config.exists() and adapter_dir != run:
        flat = json.loads(config.read_text())  # TrainConfig.to_flat(): its model is the base
        return adapter_dir, flat.get("model", "smollm2-135m")
    meta = read_metadata(adapter_dir, "run_dir") or {}
    if not meta.get("model"):
        raise ConfigError("run_dir", f"{adapter_dir} names no base model (no config.json beside it, no model in lorascale.json)",
                          "export a run folder of `lorascale train`")
    return adapter_dir, meta["model"]


def _task(adapter_dir: Path) -> Task:
    task_type = json.loads((adapter_dir / "adapter_config.json").read_text()).get("task_type")
    return {t.peft_task_type: t for t in Task}.get(task_type, Task.LM)


def _num_labels(adapter_dir: Path) -> int:
    """A classification adapter saves its trained head (PEFT's modules_to_save): its rows are the labels."""
    from safetensors import safe_open

    from .train.build import HEAD_NAMES

    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.exists():
        return 2
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            if any(key.endswith(f"{head}.weight") for head in HEAD_NAMES):
                return int(f.get_slice(key).get_shape()[0])
    return 2
