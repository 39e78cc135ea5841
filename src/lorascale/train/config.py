"""The resolved configuration of one training run: typed, frozen, validated all at once.

Defaults are the μA recipe (μA Table 2): AdamW β = (0.9, 0.999), ε = 1e-8, weight decay 0.01,
global grad-norm clip 1.0, 5% linear warm-up, cosine decay to 0.1× the peak.

The adapter settings are an :class:`~lorascale.adapters.AdapterSpec` (rank, init, targets and the
:class:`~lorascale.rules.RuleSpec`), composed, not copied. Users write flat keys (``rank: 16``,
``rule: mua`` in YAML, ``--rank 16`` on the command line): :meth:`TrainConfig.from_flat` nests them,
:meth:`TrainConfig.to_flat` writes them back, and both go through :mod:`lorascale.schema`.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from pydantic import StrictBool, StrictStr, model_validator

from ..adapters.spec import AdapterSpec
from ..config_files import read_mapping
from ..data.batches import contrastive_batch_errors
from ..data.builtin import BUILTIN
from ..errors import ConfigError, ConfigErrors
from ..rlvr.problems import PROBLEM_SETS
from ..rlvr.spec import RLSpec
from ..rules import ALL_KNOBS, DEFAULT_LR_FFT, LR_FFT_FIX, Finetune, RuleError, RuleSpec, recommended_lr, unread_knobs, with_unread
from ..schema import (Float, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Seed, Settings, flatten,
                      leaf_fields, setting, validate)
from ..vocabulary import Task
from .precision import Precision
from .contrastive import DEFAULT_TEMPERATURE

__all__ = ["TrainConfig", "Precision", "load_yaml", "config_from_mapping", "unread_knob_errors"]

BUDGET_KEYS = ("steps", "epochs")


class TrainConfig(Settings):
    # what
    model: StrictStr = setting("smollm2-135m", "smollm2-135m, minilm-l6, tiny-llama[@W], tiny-bert[@W] or a local HF folder")
    data: StrictStr = setting("shakespeare", f"{', '.join([*BUILTIN, *PROBLEM_SETS])},"
                              " or a .jsonl/.csv/.txt/saved-dataset path")
    task: Task | None = setting(None, "lm, classification, contrastive or rlvr (default: from the data)")
    finetune: Finetune = setting(Finetune.LORA, "lora, or full finetuning")
    adapter: AdapterSpec = setting(AdapterSpec(), "the LoRA adapters (unused for full finetuning)")
    # optimisation (μA recipe)
    lr: PositiveFloat | None = setting(None, "peak learning rate (default: the rule's, from lr_fft)",
                                       fix="e.g. 2e-5, or leave it unset to use the rule's recommendation")
    lr_fft: PositiveFloat = setting(DEFAULT_LR_FFT, "full-finetuning learning rate the rules start from", fix=LR_FFT_FIX)
    head_lr: PositiveFloat = setting(1e-3, "classification head learning rate (μA App. B.1 fixes it at 1e-3)")
    temperature: PositiveFloat = setting(DEFAULT_TEMPERATURE, "contrastive task: InfoNCE temperature τ on cosine"
                                         " similarity (SimCSE and sentence-transformers use 0.05)")
    weight_decay: NonNegativeFloat = setting(0.01, "AdamW weight decay", fix="μA uses 0.01")
    beta1: Float = setting(0.9, "AdamW β1", ge=0.0, lt=1.0, fix="μA uses 0.9")
    beta2: Float = setting(0.999, "AdamW β2", ge=0.0, lt=1.0, fix="μA uses 0.999")
    eps: PositiveFloat = setting(1e-8, "AdamW ε")
    grad_clip: PositiveFloat = setting(1.0, "global grad-norm clip", fix="μA clips the global norm at 1.0")
    warmup_frac: Float = setting(0.05, "linear warm-up fraction", ge=0.0, lt=1.0, fix="μA warms up over 5% (0.05)")
    min_lr_ratio: Float = setting(0.1, "cosine floor as a fraction of the peak", ge=0.0, le=1.0, fix="μA decays to 0.1")
    # budget and batches
    steps: PositiveInt | None = setting(100, "optimizer steps")
    epochs: PositiveFloat | None = setting(None, "epochs instead of steps")
    batch_size: PositiveInt = setting(8, "micro-batch size")
    grad_accum: PositiveInt = setting(1, "gradient accumulation steps")
    seq_len: PositiveInt = setting(128, "sequence length / LM block size", ge=2,
                                   fix="an LM block needs at least 2 tokens to have a next-token target")
    max_examples: PositiveInt | None = setting(None, "cap on training examples/blocks: the split draws from a fixed sample of"
                                                        " about max_examples/(1 − val_fraction) items, so the held-out set"
                                                        " changes with it")
    val_fraction: Float = setting(0.05, "held-out fraction", gt=0.0, lt=0.5)
    max_val_batches: PositiveInt = setting(8, "validation batches per evaluation")
    eval_every: NonNegativeInt = setting(0, "evaluate every k steps (0: at the end only)")
    log_every: PositiveInt = setting(1, "write metrics every k steps")
    seed: Seed = setting(0, "random seed: adapter init and data order", fix="use an integer in [0, 2³²)")
    precision: Precision = setting("auto", "auto (the launcher's --mixed_precision, else bf16 on GPU, fp32 on CPU),"
                                   " fp32, bf16, or fp16 (GPU only, loss-scaled)")
    gradient_checkpointing: StrictBool = setting(False, "recompute each layer's activations in the backward pass:"
                                                 " less memory, about one more forward pass of compute")
    ema_beta: Float = setting(0.1, "EMA smoothing of the training loss: ema ← (1-β)·ema + β·loss", gt=0.0, le=1.0,
                              fix="μA smooths with 0.1")
    # divergence: non-finite loss, or loss > factor × the early level for `patience` consecutive steps (DivergenceGuard)
    diverge_factor: Float = setting(3.0, "a loss above this × its early level (the median of the first 10 losses,"
                                    " kept between the first loss and diverge_factor × it) counts towards divergence", gt=1.0)
    diverge_patience: PositiveInt = setting(5, "consecutive steps above the factor that make a run diverged")
    out_dir: StrictStr | None = setting(None, "run directory (default runs/<time>-<model>-<rule>-...)")
    save_every: NonNegativeInt = setting(0, "write a checkpoint every k steps, to resume an interrupted run (0: never)")
    save_model: StrictBool = setting(True, "save the adapter (or model) at the end")
    rl: RLSpec = setting(RLSpec(), "task rlvr: GRPO sampling and the generated problems")

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        errors: list[ConfigError] = []
        if self.steps is not None and self.epochs is not None:
            errors.append(ConfigError("steps/epochs", "both are set", "choose `steps` or `epochs` (unset steps with"
                                      " steps: null in YAML)"))
        if self.steps is None and self.epochs is None:
            errors.append(ConfigError("steps/epochs", "neither is set", "give `steps` or `epochs`"))
        if self.task is Task.CONTRASTIVE:  # data that only turns out contrastive is checked by load_base
            errors += contrastive_batch_errors(self.batch_size, self.grad_accum)
        if self.finetune is Finetune.FULL:
            changed = sorted(k for k, v in flatten(self.adapter).items() if v != _DEFAULT_ADAPTER[k])
            if changed:
                errors.append(ConfigError(changed[0], f"conflicting options: full finetuning has no adapter, but"
                                          f" {', '.join(changed)} {'is' if len(changed) == 1 else 'are'} set",
                                          "drop them, or set `finetune` to lora"))
        elif self.lr is None:
            try:
                recommended_lr(self.adapter.scaling, self.lr_fft, self.adapter.init, self.adapter.method)
            except RuleError as e:
                errors.append(ConfigError("lr", "this μA configuration needs an explicit learning rate", e.fix))
        ConfigErrors.raise_if_any(errors)
        return self

    # ------------------------------------------------------------------------------------
    @classmethod
    def from_flat(cls, mapping: dict, base: "TrainConfig | None" = None) -> "TrainConfig":
        """A config from flat keys (YAML, flags, sweep points) over ``base``; every problem at once."""
        flat = {**(base.to_flat() if base is not None else {}), **mapping}
        return validate(cls, flat)

    @classmethod
    def from_sources(cls, file: str | Path | None = None, overrides: dict | None = None) -> "TrainConfig":
        """Defaults < YAML/JSON ``file`` < ``overrides`` (e.g. flags). steps and epochs are one budget
        choice: the source with the higher precedence that sets either decides, the other is unset. A file
        that cannot be read is reported with the other sources' problems (all at once), and so is a rule knob
        that the rule given would ignore (:func:`~lorascale.rules.unread_knobs`)."""
        file_error = None
        try:
            from_file = load_yaml(file) if file else {}
        except ConfigError as e:
            file_error, from_file = e, {}
        overrides = dict(overrides or {})

        def chooses(source: dict) -> bool:  # a budget value given; `--epochs none` unsets, it chooses nothing
            return any(source.get(k) is not None for k in BUDGET_KEYS)

        budget = overrides if chooses(overrides) else from_file
        merged = from_file | overrides
        for key, other in (("epochs", "steps"), ("steps", "epochs")):
            if budget.get(key) is not None and other not in budget:
                merged[other] = None
        errors = [file_error] if file_error is not None else []
        try:
            cfg = cls.from_flat(merged)
        except ConfigErrors as e:
            errors += e.errors
            cfg = None
        ConfigErrors.raise_if_any(with_unread(errors, unread_knob_errors(overrides, from_file)))
        return cfg

    def to_flat(self) -> dict:
        """Flat JSON keys (``rank``, ``rule``, ...): the run's config.json, point keys, YAML."""
        return flatten(self)

    to_dict = to_flat

    def peak_lr(self) -> float:
        """The backbone/adapter learning rate: explicit ``lr``, else the rule's recommendation (or the
        method's own, :func:`lorascale.methods.method_lr`). Under LoRA+ it is A's; B's is
        ``adapter.loraplus_ratio()`` times it."""
        if self.lr is not None:
            return self.lr
        if self.finetune is Finetune.FULL:
            return self.lr_fft
        return recommended_lr(self.adapter.scaling, self.lr_fft, self.adapter.init, self.adapter.method)


_DEFAULT_ADAPTER = flatten(AdapterSpec())
FLAT_KEYS = tuple(leaf_fields(TrainConfig))


def config_from_mapping(mapping: dict, base: TrainConfig | None = None) -> TrainConfig:
    """Flat mapping → TrainConfig (see :meth:`TrainConfig.from_flat`)."""
    return TrainConfig.from_flat(mapping, base)


def load_yaml(path: str | Path) -> dict:
    return read_mapping(path, "config", "a YAML file of TrainConfig keys (model: ..., rank: ..., lr: ...)")


def unread_knob_errors(flags: dict, file: dict | None = None, also_read: Collection[str] = ()) -> list[ConfigError]:
    """The rule knobs a rule would ignore (:func:`~lorascale.rules.unread_knobs`), among settings as a user gave
    them: each knob of ``flags`` against the rule in force (the flags', else the file's, else the default); each
    knob of ``file`` (flat or nested ``adapter: {scaling: ...}``) against the file's own rule, and only when it
    differs from its default, so a run's own config.json, which lists every knob, reads back, and a flag's
    ``--rule`` overrides the file's rule without refusing the file's knobs. Full finetuning's own check names
    any adapter setting given."""
    file = _scaling_keys(file or {})
    flags = _scaling_keys(flags)
    if {**file, **flags}.get("finetune") in (Finetune.FULL, Finetune.FULL.value):
        return []
    rule = flags.get("rule", file.get("rule", RuleSpec.model_fields["rule"].default))
    defaults = RuleSpec()
    set_in_file = {k: v for k, v in file.items() if k in ALL_KNOBS and k not in flags and _differs(v, getattr(defaults, k))}
    errors = unread_knobs({**set_in_file, **({"rule": file["rule"]} if "rule" in file else {})}, also_read=also_read)
    return errors + unread_knobs({**{k: v for k, v in flags.items() if k in ALL_KNOBS}, "rule": rule}, also_read=also_read)


def _scaling_keys(values: dict) -> dict:
    """``values`` with the keys nested under ``adapter`` and ``adapter.scaling`` lifted to the top (flat keys win)."""
    adapter = values.get("adapter") if isinstance(values.get("adapter"), dict) else {}
    scaling = adapter.get("scaling") if isinstance(adapter.get("scaling"), dict) else {}
    return {**scaling, **adapter, **values}


def _differs(value, default: float) -> bool:
    try:
        return float(value) != default
    except (TypeError, ValueError):  # not a number: validation refuses it, with its own words
        return False
