"""Which linear layers of a model a set of PEFT target names selects, with their shapes.

Matching is PEFT's own (``check_target_module_exists``, against the config as PEFT completes it when it
wraps the model), so what we plan is what PEFT will wrap.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["TargetLayer", "find_target_layers", "peft_target_layers", "peft_view", "layer_type", "strip_peft_prefix"]


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


def find_target_layers(model, targets: str | tuple[str, ...] | list[str], task_type: str | None = None,
                       modules_to_save: tuple[str, ...] | list[str] | None = None) -> list[TargetLayer]:
    """Linear layers PEFT would wrap with ``target_modules=targets``: a list of module names or suffixes, or
    one string, a regular expression matched against the full module name (PEFT's rule for a string).

    Raises ConfigError naming ``targets`` when a target matches no linear layer, or only layers PEFT never
    adds LoRA to (``modules_to_save``, the head of a ``task_type`` SEQ_CLS or TOKEN_CLS model): PEFT would
    either fail later with a less helpful message, or silently ignore it when another target matches.
    """
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    is_regex = isinstance(targets, str)
    names = [targets] if is_regex else list(targets)
    if not names:
        raise ConfigError("targets", "no target modules given", "name modules in `targets`, e.g. q_proj and v_proj")
    linears = {name: shape for name, m in model.named_modules() if (shape := _linear_shape(m)) is not None}

    def matches(t: str) -> list[str]:  # the linear layers one target selects, before any exclusion
        cfg = LoraConfig(target_modules=t if is_regex else [t], r=1)
        return [n for n in linears if check_target_module_exists(cfg, n)]

    unmatched = [t for t in names if not matches(t)]
    examples = ", ".join(sorted({n.rsplit(".", 1)[-1] for n in linears})[:12])
    if unmatched and is_regex:
        raise ConfigError("targets", f"{targets!r} (a string: a regular expression matched against the full module name,"
                          f" as in PEFT) matches no linear layer of this model; its linear layers end in: {examples}",
                          r"match whole names, e.g. targets: '.*\.(q_proj|v_proj)', or list suffixes: [q_proj, v_proj]")
    if unmatched:
        raise ConfigError(
            "targets",
            f"{', '.join(map(repr, unmatched))} match no linear layer of this model; its linear layers end in: {examples}",
            "name linear layers in `targets` by these suffixes (or full names), e.g. q_proj and v_proj",
        )
    cfg = LoraConfig(target_modules=targets if is_regex else names, r=1, task_type=task_type,
                     modules_to_save=list(modules_to_save) if modules_to_save else None)
    layers = peft_target_layers(model, cfg, "targets")
    wrapped = {ly.name for ly in layers}
    dropped = [t for t in names if not wrapped.intersection(matches(t))]
    if dropped:
        saved = ", ".join(peft_view(model, cfg).modules_to_save or [])
        head = f"; task_type {task_type} puts the head there" if task_type in HEAD_TASKS else ""
        raise ConfigError("targets", f"{', '.join(map(repr, dropped))} match{'es' if len(dropped) == 1 else ''} only layers"
                          f" PEFT trains in full and never adds LoRA to (modules_to_save: {saved}{head})",
                          "leave them out of the targets: those layers are trained in full already")
    tied = _tied_to_input_embeddings(model, sorted(wrapped))
    if tied:
        raise ConfigError("targets", f"{', '.join(tied)} shares its weight with the input embeddings (tied): merging"
                          " the adapter (export with `merge`, or merge_and_unload) would change the embeddings too",
                          "leave it out of the targets, or untie the weights first")
    return layers


# PEFT's wrappers for these tasks (PeftModelForSequenceClassification, ...ForTokenClassification) add the
# head's names to modules_to_save before matching: the head is trained in full and never gets LoRA
HEAD_TASKS = ("SEQ_CLS", "TOKEN_CLS")


def peft_view(model, config):
    """A copy of the ``LoraConfig`` as PEFT matches it when wrapping ``model``: ``target_modules`` None filled
    from PEFT's defaults for the model type (``LoraModel._prepare_adapter_config``), "all-linear" expanded
    (``_maybe_include_all_linear_layers``), and for task SEQ_CLS or TOKEN_CLS the head names PEFT's wrapper
    adds to ``modules_to_save``. Raises ConfigError on ``target_modules`` where PEFT has no default."""
    import copy

    from peft.tuners.tuners_utils import _maybe_include_all_linear_layers
    from peft.utils.constants import SEQ_CLS_HEAD_NAMES, TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    config = copy.deepcopy(config)  # PEFT's helpers edit the config they are given
    if config.target_modules is None:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        default = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type)
        if default is None:
            raise ConfigError("target_modules", f"is unset, and PEFT has no default targets for model type {model_type!r}",
                              "name the layers to adapt, e.g. target_modules=['q_proj', 'v_proj'], or 'all-linear'")
        config.target_modules = default if isinstance(default, str) else set(default)
    if getattr(config.task_type, "value", config.task_type) in HEAD_TASKS:
        config.modules_to_save = [*(config.modules_to_save or []), *SEQ_CLS_HEAD_NAMES]
    return _maybe_include_all_linear_layers(config, model)


def peft_target_layers(model, config, field: str = "target_modules") -> list[TargetLayer]:
    """The linear layers of ``model`` that PEFT wraps with LoRA under the ``LoraConfig`` ``config``, matched by
    PEFT's ``check_target_module_exists`` against :func:`peft_view` (so ``exclude_modules``, ``modules_to_save``,
    a classification head, ``layers_to_transform`` and "all-linear" count as PEFT counts them).

    Raises ConfigError on ``field`` when the config also matches modules that are not linear: PEFT would wrap
    them with the config's one lora_alpha, at a scale no rule chose (Variant II's √(3·d_in·r) with another
    layer's d_in).
    """
    from peft.tuners.tuners_utils import check_target_module_exists

    view = peft_view(model, config)
    wrapped = [(n, m) for n, m in model.named_modules() if n and check_target_module_exists(view, n)]
    others = [f"{n} ({type(m).__name__})" for n, m in wrapped if not _linear_shape(m)]
    if others:
        raise ConfigError(field, f"{config.target_modules!r} also match modules that are not linear layers:"
                          f" {', '.join(others[:6])}{' …' if len(others) > 6 else ''}",
                          "name the linear layers alone, by a longer suffix or their full names")
    return [TargetLayer(n, *_linear_shape(m)) for n, m in wrapped]


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
