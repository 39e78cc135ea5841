"""Save PiSSA/OLoRA adapters so they load as plain LoRA on the *original* base model, through PEFT.

PiSSA and OLoRA start from B₀·A₀ ≠ 0 taken out of the base: the frozen weight becomes W_res = W₀ − s·B₀·A₀.
Their trained factors are meaningless on W₀, so PEFT converts them when saving
(``save_pretrained(path_initial_model_for_weight_conversion=...)``, ``LoraModel.subtract_mutated_init``):

    ΔW = s·(B·A − B₀·A₀) = s·[B | −B₀]·[A ; A₀]        a plain LoRA adapter of rank 2r, same s,

which on W₀ gives W₀ + ΔW = W_res + s·B·A, the trained model. PEFT needs the initial factors B₀, A₀ saved
before training: :func:`snapshot_initial` writes them to a temporary folder right after the adapter is
created, and :func:`~lorascale.adapters.save_adapter` hands that folder to PEFT.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

__all__ = ["InitialAdapter", "snapshot_initial", "converts_to_lora", "INITIAL_ADAPTER_NAME"]

# The inits PEFT's conversion handles (peft.tuners.lora.LoraModel._convert_state_dict_for_initial_model)
CONVERTIBLE_INITS = ("pissa", "olora", "corda", "lora_ga")
INITIAL_ADAPTER_NAME = "lorascale_initial"  # PEFT loads the snapshot under its folder's name: no clash with "default"


@contextmanager
def no_hub_lookups():
    """PEFT saves in offline mode. Its ``save_embedding_layers="auto"`` asks the Hub for the base model's
    config.json (an adapter records a Hub ID as its base) to see whether the vocabulary was resized: a
    network call per save, a stall on a machine without one, and one the PiSSA/OLoRA conversion makes
    again with no way to pass ``save_embedding_layers``. PEFT's check skips the Hub under HF_HUB_OFFLINE and
    assumes no resize, which holds: lorascale adapts Linear layers only and never resizes the vocabulary."""
    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Could not find a config file in")
            yield
    finally:
        if before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before


class InitialAdapter:
    """An adapter's factors as PEFT initialised them, in a temporary folder deleted with this object."""

    def __init__(self, peft_model, adapter: str = "default"):
        self._tmp = tempfile.TemporaryDirectory(prefix="lorascale-initial-")
        self.adapter = adapter
        self.path = Path(self._tmp.name) / INITIAL_ADAPTER_NAME
        if adapter == "default":
            with no_hub_lookups():
                peft_model.save_pretrained(self.path, selected_adapters=[adapter])
        else:  # PEFT writes any other adapter to <dir>/<name>/
            with no_hub_lookups():
                peft_model.save_pretrained(self._tmp.name, selected_adapters=[adapter])
            (Path(self._tmp.name) / adapter).rename(self.path)

    def cleanup(self) -> None:
        self._tmp.cleanup()


def snapshot_initial(peft_model, adapter: str = "default") -> InitialAdapter | None:
    """The initial factors of ``adapter`` when its PEFT init changed the base weights (PiSSA, OLoRA, ...),
    else None (a plain LoRA adapter saves as it is; LoftQ has no conversion). Call it before the first optimizer step."""
    if not converts_to_lora(peft_model.peft_config[adapter].init_lora_weights):
        return None
    return InitialAdapter(peft_model, adapter)


def converts_to_lora(init_lora_weights) -> bool:
    """Whether PEFT saves an adapter with this init as plain LoRA given its initial factors."""
    return isinstance(init_lora_weights, str) and init_lora_weights.lower().startswith(CONVERTIBLE_INITS)
