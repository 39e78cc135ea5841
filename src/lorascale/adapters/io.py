"""Save adapters in the standard PEFT format, plus a small ``lorascale.json`` beside them.

The PEFT files (``adapter_config.json``, ``adapter_model.safetensors``) load with plain
``PeftModel.from_pretrained``; ``lorascale.json`` is extra information PEFT ignores: the
:class:`~lorascale.adapters.AdapterSpec` as flat keys (``rank``, ``rule``, ``alpha``, ...), the
learning rate, the model and the lorascale version.

``base_model_name_or_path`` (and the model card's ``base_model``) name the Hub model for the embedded
models, not the folder this machine loaded them from, so the adapter loads elsewhere with
``AutoPeftModelForCausalLM.from_pretrained(adapter_dir)``.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from ..models import HUB_IDS, hub_id  # noqa: F401  (re-exported: adapters.io.hub_id predates models.hub_id)
from ..schema import Settings, flatten, setting
from .convert import InitialAdapter, no_hub_lookups
from .spec import AdapterSpec

__all__ = ["AdapterMetadata", "save_adapter", "read_metadata", "write_metadata", "hub_id", "METADATA_FILE", "HUB_IDS"]

METADATA_FILE = "lorascale.json"

class AdapterMetadata(Settings):
    adapter: AdapterSpec = setting(AdapterSpec(), "the adapter as planned")
    lr: float | None = setting(None, "the peak learning rate it was trained with")
    model: str | None = setting(None, "the base model's name")

    def to_dict(self) -> dict:
        from .. import __version__

        return {**flatten(self), "lorascale_version": __version__}


def save_adapter(peft_model, out_dir: str | Path, metadata: AdapterMetadata, hub: str | None = None,
                 adapter: str = "default", initial: InitialAdapter | None = None) -> Path:
    """Write ``adapter`` of ``peft_model`` and ``lorascale.json`` to ``out_dir`` as a one-adapter PEFT folder
    (it loads as "default"). ``hub`` (default: the Hub ID of ``metadata.model``) is recorded as the base
    model; the in-memory model is left as it was. ``initial`` (:func:`~.convert.snapshot_initial`, for
    PiSSA/OLoRA) makes PEFT save the adapter as plain LoRA on the original base weights."""
    out = Path(out_dir)
    convert = {} if initial is None else {"path_initial_model_for_weight_conversion": str(initial.path)}
    with _base_model_named(peft_model, hub or hub_id(metadata.model)), no_hub_lookups():
        if adapter == "default":
            out.mkdir(parents=True, exist_ok=True)
            peft_model.save_pretrained(out, selected_adapters=[adapter], **convert)
        else:
            # PEFT writes any other adapter to <dir>/<name>/ (tensor names without the adapter name) and its
            # model card to <dir>/: move both into the layout of a one-adapter model.
            tmp = out.with_name(out.name + ".partial")
            peft_model.save_pretrained(tmp, selected_adapters=[adapter], **convert)
            (tmp / adapter).rename(out)
            for f in tmp.iterdir():
                f.rename(out / f.name)
            tmp.rmdir()
    write_metadata(out, metadata)
    return out


def write_metadata(out_dir: str | Path, metadata: AdapterMetadata) -> Path:
    path = Path(out_dir) / METADATA_FILE
    path.write_text(json.dumps(metadata.to_dict(), indent=2) + "\n")
    return path


def read_metadata(adapter_dir: str | Path, field: str = "adapter_dir") -> dict | None:
    """The mapping in ``lorascale.json``, None when there is none; a damaged file is a ConfigError about ``field``."""
    from ..config_files import read_mapping

    path = Path(adapter_dir) / METADATA_FILE
    return read_mapping(path, field, f"the {METADATA_FILE} lorascale writes") if path.exists() else None


@contextmanager
def _base_model_named(peft_model, name: str | None):
    """PEFT writes ``base_model_name_or_path`` from the adapter configs and the card's ``base_model`` from
    the base model's ``config._name_or_path``: name both ``name`` while saving, then restore them."""
    if name is None:
        yield
        return
    configs = list(peft_model.peft_config.values())
    model_config = getattr(peft_model.get_base_model(), "config", None)
    before = [c.base_model_name_or_path for c in configs], getattr(model_config, "_name_or_path", None)
    for c in configs:
        c.base_model_name_or_path = name
    if model_config is not None:
        model_config._name_or_path = name
    try:
        yield
    finally:
        for c, value in zip(configs, before[0]):
            c.base_model_name_or_path = value
        if model_config is not None:
            model_config._name_or_path = before[1]
