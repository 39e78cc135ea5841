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
from .config_files import read_mapping
from .errors import ConfigError
from .outputs import check_output_dir, mark_output, read_output_marker
from .vocabulary import Task

__all__ = ["export_adapter", "check_export_dir"]

EXPORT = "export"  # the command named in an export folder's marker (outputs.OUTPUT_MARKER)


def export_adapter(run_dir: str | Path, out: str | Path | None = None, merge: bool = False) -> Path:
    """Write ``run_dir``'s adapter (or, with ``merge``, the merged model and its tokenizer) to ``out``
    (default ``RUN/export`` or ``RUN/merged``); returns the folder."""
    from peft import PeftModel

    from .models import load_model

    run = Path(run_dir)
    adapter_dir, model_name = _locate(run)
    out = Path(out) if out is not None else run / ("merged" if merge else "export")
    kind = "merged" if merge else "adapter"
    check_export_dir(out, run, adapter_dir, kind)  # before the base model loads
    task = _task(adapter_dir)
    # the base the run trained on: training never passes its seed to load_model (the tiny models' weights are
    # TINY_BASE_SEED's; a classification head is in the adapter), so neither does the export
    loaded = load_model(model_name, task=task, num_labels=_num_labels(adapter_dir), quiet=True)
    peft_model = PeftModel.from_pretrained(loaded.model, adapter_dir)
    if merge:  # merged in float32, then stored in the base checkpoint's dtype (a bf16 base stays bf16-sized)
        import torch

        merged = peft_model.merge_and_unload().to(getattr(torch, loaded.stored_dtype))
        _claim(out, run, kind)
        merged.save_pretrained(out)
        loaded.tokenizer.save_pretrained(out)
        return out
    meta = read_metadata(adapter_dir, "run_dir") or {"model": model_name}
    _claim(out, run, kind)
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
        raise ConfigError("run_dir", f"{run} holds no adapter (no adapter_config.json)", "train with `save_model` on")
    config = run / "config.json"
    if config.exists() and adapter_dir != run:
        flat = read_mapping(config, "run_dir", "a run folder of `lorascale train`")  # TrainConfig.to_flat()
        model = flat.get("model")  # the base; no default: another model's weights would not fit the adapter
        if not isinstance(model, str) or not model:
            raise ConfigError("run_dir", f"{config} names no base model (no model key): it is not the config.json"
                              " `lorascale train` writes", f"restore the run's config.json, or export {adapter_dir}"
                              " itself (its lorascale.json names the model)")
        return adapter_dir, model
    meta = read_metadata(adapter_dir, "run_dir") or {}
    if not meta.get("model"):
        raise ConfigError("run_dir", f"{adapter_dir} names no base model (no config.json beside it, no model in lorascale.json)",
                          "export a run folder of `lorascale train`")
    return adapter_dir, meta["model"]


def check_export_dir(out: Path, run: Path, adapter_dir: Path, kind: str) -> Path:
    """``out`` if the export may be written there: a new or empty folder, or one this same run's export of
    the same ``kind`` (adapter or merged) wrote earlier, which is written again. Never the run's own folder
    or its adapter: a merged model's config.json would replace the run's (and ``train --resume`` with it)."""
    target = out.resolve()
    for folder, name in ((run, "the run folder"), (adapter_dir, "the adapter folder")):
        if target == folder.resolve():
            raise ConfigError("out", f"{out} is {name} itself; the export's files would replace the run's",
                              f"export to a new folder (the default is {run / ('merged' if kind == 'merged' else 'export')})")
    return check_output_dir(out, "out", fresh=True, what="export", own=lambda p: _exported_here(p, run, kind))


def _exported_here(folder: Path, run: Path, kind: str) -> bool:
    marker = read_output_marker(folder)
    return marker == {"command": EXPORT, "run": str(run.resolve()), "kind": kind}


def _claim(out: Path, run: Path, kind: str) -> None:
    """Mark ``out`` as this run's export before its files are written: an export cut midway can be run again."""
    mark_output(out, EXPORT, run=str(run.resolve()), kind=kind)


def _task(adapter_dir: Path) -> Task:
    task_type = json.loads((adapter_dir / "adapter_config.json").read_text()).get("task_type")
    return next((t for t in Task if t.peft_task_type == task_type), Task.LM)  # the first task of a PEFT type


def _num_labels(adapter_dir: Path) -> int:
    """A classification adapter saves its trained head (PEFT's modules_to_save): the rows of its output layer
    are the labels. That layer is the head itself (BERT, Llama: ``classifier``/``score``) or the head's
    ``out_proj`` (RoBERTa, XLM-R, ELECTRA: a dense layer, then ``out_proj``)."""
    from safetensors import safe_open

    from .train.build import HEAD_NAMES

    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.exists():
        return 2
    ends = [f"{head}{part}.weight" for part in ("", ".out_proj") for head in HEAD_NAMES]
    with safe_open(str(weights), framework="pt") as f:
        for end in ends:
            for key in f.keys():
                if key.endswith(end):
                    return int(f.get_slice(key).get_shape()[0])
    return 2
