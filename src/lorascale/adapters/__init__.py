"""Rules applied through PEFT: plan a LoraConfig, re-initialise, inspect, save, lint."""

from .init import apply_init, lora_modules
from .inspect import LayerReport, classify_init, inspect_model
from .io import AdapterMetadata, read_metadata, save_adapter
from .plan import LayerPlan, LoraPlan, plan_for_layers, plan_lora
from .spec import AdapterSpec, PeftOptions
from .targets import TargetLayer, find_target_layers, layer_type

__all__ = [
    "AdapterSpec", "PeftOptions", "LayerPlan", "LoraPlan", "plan_lora", "plan_for_layers",
    "apply_init", "lora_modules", "LayerReport", "inspect_model", "classify_init",
    "AdapterMetadata", "save_adapter", "read_metadata", "TargetLayer", "find_target_layers", "layer_type",
]
