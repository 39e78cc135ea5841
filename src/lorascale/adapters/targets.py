"""Which linear layers of a model a set of PEFT target names selects, with their shapes.

Matching is PEFT's own (``check_target_module_exists``), so what we plan is what PEFT will wrap.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["TargetLayer", "find_target_layers", "layer_type", "strip_peft_prefix"]


@dataclass(frozen=True)
class TargetLayer:
    name: str  # module path relative to the base model, as PEFT sees it
    d_in: int
    d_out: int


PEFT_PREFIX = "base_model.model."


def strip_peft_prefix(name: str) -> str:
    return name[len(PEFT_PREFIX) :] if name.startswith(PEFT_PREFIX) else name


def layer_type(name: str) -> str:
    """The module path after its last block index: ``...layers.3.self_attn.q_proj`` → ``self_attn.q_proj``,
    ``...layer.0.attention.output.dense`` → ``attention.output.dense``. A path ending in an index
    (``layers.3`` of a plain MLP) is its own type. The PEFT wrapper prefix is ignored.

    This is the unit lorascale groups layers by (tables, alpha_pattern keys, diagnostics).
    """
    name = strip_peft_prefix(name)
    parts = name.split(".")
    last_index = max((i for i, p in enumerate(parts) if p.isdigit()), default=-1)
    tail = parts[last_index + 1 :]
    return ".".join(tail) if tail else name


def _linear_shape(module) -> tuple[int, int] | None:
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "weight"):  # GPT-2 style, weight (in, out)
        d_in, d_out = module.weight.shape
        return int(d_in), int(d_out)
    return None


def find_target_layers(model, targets: tuple[str, ...] | list[str]) -> list[TargetLayer]:
    """Linear layers whose names PEFT would match with ``target_modules=targets``.

    Raises ConfigError naming ``targets`` when a target matches no linear layer (PEFT would either
    fail later with a less helpful message, or silently ignore it when another target matches).
    """
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    targets = list(targets)
    if not targets:
        raise ConfigError("targets", "no target modules given", "e.g. targets: [q_proj, v_proj]")
    linears = {name: shape for name, m in model.named_modules() if (shape := _linear_shape(m)) is not None}
    layers: list[TargetLayer] = []
    unmatched = []
    for t in targets:
        cfg = LoraConfig(target_modules=[t], r=1)
        hits = [n for n in linears if check_target_module_exists(cfg, n)]
        if not hits:
            unmatched.append(t)
    examples = ", ".join(sorted({n.rsplit(".", 1)[-1] for n in linears})[:12])
    if unmatched:
        raise ConfigError(
            "targets",
            f"{', '.join(map(repr, unmatched))} match no linear layer of this model; its linear layers end in: {examples}",
            "name linear layers by these suffixes (or full names), e.g. targets: [q_proj, v_proj]",
        )
    cfg = LoraConfig(target_modules=targets, r=1)
    # PEFT wraps every module a target matches, convolutions and embeddings too, with the config's one
    # lora_alpha; lorascale plans linear layers only, so such a match would get an adapter at a scale no
    # rule chose (Variant II's √(3·d_in·r) with another layer's d_in)
    others = [f"{name} ({type(m).__name__})" for name, m in model.named_modules()
              if name and name not in linears and check_target_module_exists(cfg, name)]
    if others:
        raise ConfigError("targets", f"the targets also match modules that are not linear layers: {', '.join(others[:6])}"
                          f"{' …' if len(others) > 6 else ''}", "name the linear layers alone, by a longer suffix or their"
                          f" full names (this model's linear layers end in: {examples})")
    tied = _tied_to_input_embeddings(model, [n for n in linears if check_target_module_exists(cfg, n)])
    if tied:
        raise ConfigError("targets", f"{', '.join(tied)} shares its weight with the input embeddings (tied): merging"
                          " the adapter (export with `merge`, or merge_and_unload) would change the embeddings too",
                          "leave it out of the targets, or untie the weights first")
    for name, (d_in, d_out) in linears.items():
        if check_target_module_exists(cfg, name):
            layers.append(TargetLayer(name, d_in, d_out))
    return layers


def _tied_to_input_embeddings(model, names: list[str]) -> list[str]:
    """The layers among ``names`` whose weight is the input embedding matrix itself (a tied ``lm_head``)."""
    get = getattr(model, "get_input_embeddings", None)
    try:
        emb = get() if callable(get) else None
    except (NotImplementedError, AttributeError):
        emb = None
    weight = getattr(emb, "weight", None)
    if weight is None:
        return []
    modules = dict(model.named_modules())
    return [n for n in names if modules[n] is not emb and getattr(modules[n], "weight", None) is weight]
