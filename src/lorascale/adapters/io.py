"""Save adapters in the standard PEFT format, plus a small ``lorascale.json`` beside them.

The PEFT files (``adapter_config.json``, ``adapter_model.safetensors``) load with plain
``PeftModel.from_pretrained``; ``lorascale.json`` is extra information PEFT ignores: the
:class:`~lorascale.adapters.AdapterSpec` as flat keys (``rank``, ``rule``, ``alpha``, ...), the
learning rate, the model and the lorascale version.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..schema import Settings, flatten, setting
from .spec import AdapterSpec

__all__ = ["AdapterMetadata", "save_adapter", "read_metadata", "METADATA_FILE"]

METADATA_FILE = "lorascale.json"


class AdapterMetadata(Settings):
    adapter: AdapterSpec = setting(AdapterSpec(), "the adapter as planned")
    lr: float | None = setting(None, "the peak learning rate it was trained with")
    model: str | None = setting(None, "the base model's name")

    def to_dict(self) -> dict:
        from .. import __version__

        return {**flatten(self), "lorascale_version": __version__}


def save_adapter(peft_model, out_dir: str | Path, metadata: AdapterMetadata, adapter: str = "default") -> Path:
    """Write ``adapter`` of ``peft_model`` to ``out_dir`` as a one-adapter PEFT folder (it loads as "default")."""
    out = Path(out_dir)
    if adapter == "default":
        out.mkdir(parents=True, exist_ok=True)
        peft_model.save_pretrained(out)
    else:
        # PEFT writes any other adapter to <dir>/<name>/ (tensor names without the adapter name) and its model
        # card to <dir>/: move both into the layout of a one-adapter model.
        tmp = out.with_name(out.name + ".partial")
        peft_model.save_pretrained(tmp, selected_adapters=[adapter])
        (tmp / adapter).rename(out)
        for f in tmp.iterdir():
            f.rename(out / f.name)
        tmp.rmdir()
    (out / METADATA_FILE).write_text(json.dumps(metadata.to_dict(), indent=2) + "\n")
    return out


def read_metadata(adapter_dir: str | Path) -> dict | None:
    path = Path(adapter_dir) / METADATA_FILE
    return json.loads(path.read_text()) if path.exists() else None
