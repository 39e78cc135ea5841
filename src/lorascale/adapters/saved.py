"""Read a saved PEFT LoRA adapter's files without the base model: the fields of ``adapter_config.json``
that decide each layer's scale, checked, and the LoRA factor shapes in ``adapter_model.safetensors``.

A hand-edited or foreign file is reported as a :class:`~lorascale.errors.ConfigError` about the
adapter folder (``adapter_dir``) naming the key and the value PEFT expects, never as a traceback: PEFT's
own ``LoraConfig`` accepts ``lora_alpha="abc"`` and only fails when a layer divides by it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, ValidationError, field_validator

from ..config_files import read_mapping
from ..errors import ConfigError, ConfigErrors
from ..schema import PositiveFloat, PositiveInt, errors_from_validation

__all__ = ["SavedLoraConfig", "read_lora_config", "factor_shapes", "CONFIG_FILE", "WEIGHTS_FILE"]

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
FIELD = "adapter_dir"
# lora_A/B of a linear or convolution layer (".weight"), lora_embedding_A/B of an embedding (a bare parameter)
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<which>[AB]|embedding_[AB])(?:\.[^.]+)?(?:\.weight)?$")
_FIX = {
    "lora_alpha": "set lora_alpha to a positive number, e.g. 16 (0 switches the update off; PEFT's default is 8)",
    "alpha_pattern": 'give a mapping of module-name regex to a positive number, e.g. {"q_proj": 32}',
    "rank_pattern": 'give a mapping of module-name regex to a positive integer rank, e.g. {"q_proj": 8}',
    "use_rslora": "set use_rslora to true or false",
    "peft_type": 'set peft_type to "LORA"',
}


class SavedLoraConfig(BaseModel):
    """The keys of ``adapter_config.json`` that set each layer's rank and scale (others are ignored),
    with PEFT's defaults. Pattern keys are regexes that PEFT matches as ``(.*\\.)?(KEY)$``."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    flat_keys: ClassVar[bool] = False  # errors name the JSON key as written

    peft_type: StrictStr = "LORA"
    lora_alpha: PositiveFloat = 8.0
    alpha_pattern: dict[str, PositiveFloat] = {}
    rank_pattern: dict[str, PositiveInt] = {}
    use_rslora: StrictBool = False

    @field_validator("alpha_pattern", "rank_pattern", mode="before")
    @classmethod
    def _null_is_empty(cls, v):
        return {} if v is None else v  # PEFT writes {} but older versions wrote null

    @field_validator("alpha_pattern", "rank_pattern")
    @classmethod
    def _keys_are_regexes(cls, v: dict) -> dict:
        for key in v:
            try:
                re.compile(rf"(.*\.)?({key})$")  # as peft.utils.other.get_pattern_key matches it
            except re.error as e:
                raise ValueError(f"key {key!r} is not a valid regular expression ({e.msg})") from None
        return v


def read_lora_config(root: Path) -> tuple[dict, SavedLoraConfig]:
    """The raw mapping of ``root/adapter_config.json`` and its checked scale fields; every bad key at once."""
    raw = read_mapping(root / CONFIG_FILE, FIELD, "a folder written by PEFT's save_pretrained")
    try:
        cfg = SavedLoraConfig.model_validate(raw)
    except ValidationError as e:
        errors = [ConfigError(FIELD, f"{root / CONFIG_FILE}: {x.field} {x.message}", _FIX.get(x.field.split(".")[0]))
                  for x in errors_from_validation(e, SavedLoraConfig)]
        raise (errors[0] if len(errors) == 1 else ConfigErrors(errors)) from None
    if cfg.peft_type != "LORA":
        raise ConfigError(FIELD, f"{root / CONFIG_FILE} is a {cfg.peft_type} adapter config, not LoRA",
                          "only LoRA adapters can be checked")
    return raw, cfg


def factor_shapes(root: Path) -> dict[str, dict[str, tuple[int, ...]]]:
    """module name → {"A": shape, "B": shape} of its LoRA factors (an embedding's under "embedding_A" and
    "embedding_B"), from the safetensors header alone."""
    from safetensors import SafetensorError, safe_open

    weights = root / WEIGHTS_FILE
    if not weights.is_file():
        raise ConfigError(FIELD, f"{root} has no {WEIGHTS_FILE}", "re-save with save_pretrained(..., safe_serialization=True)")
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    try:
        with safe_open(str(weights), framework="pt") as f:
            for key in f.keys():
                m = _KEY.match(key)
                if m:
                    shapes.setdefault(m["module"], {})[m["which"]] = tuple(f.get_slice(key).get_shape())
    except SafetensorError as e:  # empty, truncated or not safetensors at all
        size = weights.stat().st_size
        raise ConfigError(FIELD, f"{weights} ({size} bytes) is not a readable safetensors file: {e}",
                          "the file is truncated or damaged; save the adapter again") from None
    if not shapes:
        raise ConfigError(FIELD, f"{WEIGHTS_FILE} holds no lora_A/lora_B weights", "pass the folder of a LoRA adapter")
    return shapes
