"""The one way lorascale defines and validates settings: pydantic v2 models, frozen and strict about keys.

Every setting is a field of exactly one model (``RuleSpec``, ``AdapterSpec``, ``TrainConfig``, ...),
with its constraint, its help text (``description``) and, where one exists, the fix a user should
apply (``fix=``). Everything else derives from the fields: flat YAML/JSON keys (:func:`leaf_fields`,
:func:`flatten`, :func:`nest`), CLI flags and their help (``lorascale.commands.flags``), sweep-spec
keys, adapter metadata and run configs.

Validation reports every problem at once as :class:`~lorascale.errors.ConfigErrors`, each error
naming its field (dotted for nested models) with pydantic's check turned into lorascale's
"field: problem; fix" wording. Numbers are coerced laxly (YAML 1.1 reads ``2e-5`` as a string) but
booleans are never numbers.
"""

from __future__ import annotations

import copy
import math
from contextvars import ContextVar
from typing import Annotated, Any, ClassVar, Iterator

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import PydanticCustomError, PydanticUndefined

from .errors import ConfigError, ConfigErrors

__all__ = [
    "Settings", "StrictPositiveInt", "Int", "Float", "PositiveInt", "PositiveFloat", "NonNegativeFloat", "NonNegativeInt", "Seed",
    "setting", "checked", "validate", "validate_partial", "leaf_fields", "flatten", "nest", "errors_from_validation",
]

_COLLECTING: ContextVar[bool] = ContextVar("lorascale_schema_collecting", default=False)
SEED_MAX = 2**32 - 1  # numpy/torch seeds: an unsigned 32-bit integer


def _not_bool(v: Any) -> Any:
    if isinstance(v, bool):  # pydantic's lax mode reads True as 1; a setting never means that
        raise PydanticCustomError("bool_number", "must be a number, not true/false")
    return v


Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]
PositiveInt = Annotated[Int, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
PositiveFloat = Annotated[Float, Field(gt=0)]
NonNegativeFloat = Annotated[Float, Field(ge=0)]
Seed = Annotated[Int, Field(ge=0, le=SEED_MAX)]
StrictPositiveInt = Annotated[int, Field(gt=0, strict=True)]  # function arguments: 2.0 is not a rank


def setting(default: Any, description: str, *, fix: str | None = None, **constraints: Any) -> Any:
    """A field with its help text and the fix shown when a value is rejected."""
    extra = {"fix": fix} if fix else None
    return Field(default, description=description, json_schema_extra=extra, **constraints)


def same_setting(model: type[BaseModel], name: str, **changes: Any) -> Any:
    """``model``'s setting ``name`` for another settings model: one definition of its default, help text,
    constraints and fix (``RecommendRequest.lr_fft`` is ``TrainConfig.lr_fft``). ``changes`` (e.g.
    ``default=...``) override the copy, which never changes the original."""
    info = model.model_fields[name]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    field = setting(changes.pop("default", info.default), changes.pop("description", info.description),
                    fix=changes.pop("fix", extra.get("fix")), **changes)
    field.metadata = [*info.metadata, *field.metadata]  # the bounds (ge=2, ...), then any the caller adds
    return field


class Settings(BaseModel):
    """Base of every lorascale settings model: immutable, unknown keys rejected, enums kept as members."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False, use_enum_values=False)
    flat_keys: ClassVar[bool] = True
    """Nested settings are named by their flat key (``rank``, not ``adapter.rank``); False for documents
    such as sweep specs, whose errors name the full path (``grid.configs[0].ranks``)."""

    def __init__(self, **values: Any) -> None:
        """Validate ``values`` (nested mappings allowed); raises ConfigErrors listing every problem."""
        try:
            super().__init__(**values)
        except ValidationError:
            if _COLLECTING.get():  # inside validate(): let it read pydantic's errors
                raise
            validate(type(self), values)  # collects every problem and raises ConfigErrors
            raise AssertionError(f"{type(self).__name__}: validation failed once and passed on retry") from None

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_keys(cls, data: Any) -> Any:
        """Accept flat keys for nested settings: ``TrainConfig(rank=8)`` sets ``adapter.rank``."""
        return nest(cls, data) if isinstance(data, dict) and cls.flat_keys else data

    def replace(self, **changes: Any):
        """A copy with ``changes`` (nested models may be given as mappings), validated again.

        The copy's ``model_fields_set`` is this one's plus ``changes``: a setting left at its default stays
        unset, so code that asks whether the user gave it (``tune``'s η_FFT) still can."""
        kept = {k: getattr(self, k) for k in type(self).model_fields if k in self.model_fields_set}
        return type(self)(**{**kept, **changes})


def checked(annotation: Any, field: str, value: Any, fix: str, error=ConfigError) -> Any:
    """One value against one of the types above, outside a model (function arguments): the value, or
    ``error(field, problem, fix)``."""
    adapter = _ADAPTERS.get(annotation)
    if adapter is None:
        adapter = _ADAPTERS[annotation] = TypeAdapter(annotation)
    try:
        return adapter.validate_python(value)
    except ValidationError as e:
        raise error(field, *_problem(e.errors()[0], None, [field], fix)) from None


_ADAPTERS: dict = {}


# --------------------------------------------------------------------------------------------
# validation with every problem at once


def validate(cls: type[BaseModel], data: dict, prefix: str = ""):
    """``cls.model_validate(data)``, with pydantic's errors turned into ConfigErrors.

    Cross-field checks (model validators) only run once every field is valid, so after field errors
    the offending keys are dropped and validation re-runs to find the cross-field problems too.
    """
    if not isinstance(data, dict):
        raise ConfigErrors([ConfigError(prefix.rstrip(".") or "config", f"must be a mapping of keys, got {data!r}",
                                              "write key: value pairs")])
    token = _COLLECTING.set(True)  # pydantic calls a custom __init__ for every model it validates
    try:
        return _validate(cls, data, prefix)
    finally:
        _COLLECTING.reset(token)


def validate_partial(cls: type[BaseModel], data: dict) -> tuple[Any, list[ConfigError]]:
    """Every problem, and the model validated without the offending keys (None if even that fails),
    so a caller can go on checking what depends on the valid part."""
    try:
        return validate(cls, data), []
    except ConfigErrors as e:
        errors = e.errors
    token = _COLLECTING.set(True)
    try:
        current = _working_copy(cls, data)
        for _ in range(8):
            try:
                return cls.model_validate(current), errors
            except ValidationError as e:
                if not _drop_offending(current, e):
                    return None, errors
        return None, errors
    finally:
        _COLLECTING.reset(token)


def _working_copy(cls, data: dict) -> dict:
    return copy.deepcopy(nest(cls, data) if getattr(cls, "flat_keys", True) else data)


def _validate(cls: type[BaseModel], data: dict, prefix: str):
    found: list[ConfigError] = []
    current = _working_copy(cls, data)  # offending keys are dropped from it, never from the caller's data
    dropped: list[tuple] = []
    for _ in range(8):  # each round removes at least one offending key; a few rounds suffice
        try:
            obj = cls.model_validate(current)
        except ValidationError as e:
            # a key we dropped is now "missing": that is our doing, not the user's
            fresh = [err for err in e.errors() if not any(tuple(err["loc"][:len(d)]) == d for d in dropped)]
            # once a key is dropped, a cross-field check that names it judged its default, not the user's value
            # ("--epochs 0" is not also "neither steps nor epochs is set"): left out, it returns once the key passes
            gone = {str(d[-1]) for d in dropped if d}
            errs = [x for x in _errors_from_dicts(fresh, cls, prefix) if not set(x.field.split("/")) & gone]
            new = [x for x in errs if (x.field, x.message) not in {(f.field, f.message) for f in found}]
            found += new
            newly = _drop_offending(current, e)
            dropped += newly
            if not newly or not new:
                break
            continue
        if found:
            break
        return obj
    raise ConfigErrors(found)


def _drop_offending(data: dict, e: ValidationError) -> list[tuple]:
    """Remove what field errors point at (the innermost mapping key on the path); the locations removed
    (empty when the errors are model-level only)."""
    owners = []  # all found before any is removed: two errors in one key (ranks[0], ranks[1]) would otherwise
    for err in e.errors():  # walk the second to a key already gone and remove its parent (the whole grid)
        node, owner, path = data, None, ()  # owner: (mapping, key, its location) of the innermost mapping entry
        for part in err["loc"]:
            if isinstance(node, dict) and part in node:
                path += (part,)
                owner, node = (node, part, path), node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                path += (part,)
                node = node[part]
            else:
                break
        if owner is not None:
            owners.append(owner)
    dropped = []
    for mapping, key, path in owners:
        if key in mapping and not any(path[:len(d)] == d for d in dropped):  # not inside what was removed
            mapping.pop(key)
            dropped.append(path)
    return dropped


def errors_from_validation(e: ValidationError, cls: type[BaseModel], prefix: str = "") -> list[ConfigError]:
    """pydantic's errors in lorascale's words: field (flat key, or dotted path for documents), message, fix."""
    return _errors_from_dicts(e.errors(), cls, prefix)


def _errors_from_dicts(errors: list[dict], cls: type[BaseModel], prefix: str) -> list[ConfigError]:
    out: list[ConfigError] = []
    for err in errors:
        ctx = err.get("ctx") or {}
        original = ctx.get("error")
        if isinstance(original, ConfigErrors):  # raised by a model validator: already in our words
            out += [x.renamed(prefix + x.field) for x in original.errors]
            continue
        if isinstance(original, ConfigError):
            out.append(original.renamed(prefix + original.field))
            continue
        loc = [p for p in err["loc"] if isinstance(p, str)]
        if getattr(cls, "flat_keys", True):
            name = prefix + ".".join(_flat_name(cls, loc))
        else:
            name = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        out.append(ConfigError(name or "config", *_problem(err, cls, loc, _fix(cls, loc))))
    return out


def _flat_name(cls: type[BaseModel], loc: list[str]) -> list[str]:
    """A nested location (adapter.scaling.alpha) is reported by its flat key (alpha)."""
    if len(loc) > 1 and _field_model(cls, loc[:-1]) is not None:
        return [loc[-1]]
    return loc


def _field_model(cls, path: list[str]):
    model = cls
    for part in path:
        info = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if info is None:
            return None
        model = _model_type(info.annotation)
        if model is None:
            return None
    return model


def _fix(cls, loc: list[str]) -> str | None:
    model = _field_model(cls, loc[:-1]) if loc else None
    info = model.model_fields.get(loc[-1]) if model is not None else None
    extra = info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
    return extra.get("fix")


def _problem(err: dict, cls, loc: list[str], fix: str | None) -> tuple[str, str | None]:
    """(message, fix) for one pydantic error: an unknown key or value names the valid ones as its fix;
    any other error keeps the field's own ``fix``."""
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        model = _field_model(cls, loc[:-1]) if len(loc) > 1 else cls
        keys = leaf_fields(model) if getattr(model, "flat_keys", False) else getattr(model, "model_fields", {})
        names = ", ".join(sorted(k if not keys[k].alias else keys[k].alias for k in keys)
                          if not getattr(model, "flat_keys", False) else keys)
        return "unknown key", f"valid keys: {names}"
    if kind in ("enum", "literal_error"):
        return f"unknown value {got!r}", f"choose one of {ctx.get('expected', '').replace(chr(39), '')}"
    return _message(err), fix or _fallback_fix(err, cls, loc)


_BOUND_WORDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", "≥"), "less_than": ("lt", "<"),
                "less_than_equal": ("le", "≤")}


def _fallback_fix(err: dict, cls, loc: list[str]) -> str | None:
    """A fix for a setting that states none: what a valid value looks like, and its default where it has one
    (every error carries a fix; a setting's own ``fix`` says more where it has one)."""
    model = _field_model(cls, loc[:-1]) if loc else None
    info = model.model_fields.get(loc[-1]) if model is not None else None
    default = None if info is None or info.default in (None, PydanticUndefined) or isinstance(info.default, BaseModel) \
        else info.default
    default = getattr(default, "value", default)  # an enum as the word the user writes
    tail = "" if default is None else f" (default {default})"
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _BOUND_WORDS:
        key, sign = _BOUND_WORDS[kind]
        return f"use a value {sign} {ctx.get(key)}{tail}"
    if kind == "missing":
        return "add it"
    if default is not None:
        return f"leave it out for the default, {default}"
    return None


def _message(err: dict) -> str:
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    shown = f", got {got!r}" if kind != "missing" else ""
    words = {
        "greater_than": f"must be > {ctx.get('gt')}",
        "greater_than_equal": f"must be ≥ {ctx.get('ge')}",
        "less_than": f"must be < {ctx.get('lt')}",
        "less_than_equal": f"must be ≤ {ctx.get('le')}",
        "finite_number": "must be a finite number",
        "bool_number": "must be a number, not true/false",
        "int_parsing": "must be an integer", "int_type": "must be an integer", "int_from_float": "must be an integer",
        "float_parsing": "must be a number", "float_type": "must be a number",
        "string_type": "must be a string", "tuple_type": "must be a list", "list_type": "must be a list",
        "bool_type": "must be true or false", "bool_parsing": "must be true or false",
        "dict_type": "must be a mapping", "model_type": "must be a mapping of keys",
        "missing": "missing",
    }
    text = words.get(kind)
    if text is None:
        text = err["msg"].removeprefix("Value error, ")
        return text[0].lower() + text[1:] if text else kind
    return text + shown


# --------------------------------------------------------------------------------------------
# the flat vocabulary: every leaf setting of a (nested) model by its one name


def _model_type(annotation) -> type[BaseModel] | None:
    """The settings model inside ``annotation`` (``AdapterSpec``, ``AdapterSpec | None``), if any."""
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    for a in candidates:
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def _walk(cls: type[BaseModel], path: tuple[str, ...] = ()) -> Iterator[tuple[str, tuple[str, ...], Any]]:
    for name, info in cls.model_fields.items():
        sub = _model_type(info.annotation)
        if sub is not None:
            yield from _walk(sub, path + (name,))
        else:
            yield name, path + (name,), info


def leaf_fields(cls: type[BaseModel]) -> dict[str, tuple[tuple[str, ...], Any]]:
    """Flat key → (path in the nested model, FieldInfo). Flat keys are unique by construction."""
    out: dict[str, tuple[tuple[str, ...], Any]] = {}
    for name, path, info in _walk(cls):
        if name in out:
            raise TypeError(f"{cls.__name__}: setting {name!r} is defined at {out[name][0]} and {path}")
        out[name] = (path, info)
    return out


def nest(cls: type[BaseModel], flat: dict) -> dict:
    """Flat keys → the nested mapping ``cls`` validates. Nested values already given (a mapping or a
    model) are kept and flat keys override inside them; unknown keys stay (validation names them)."""
    leaves = leaf_fields(cls)
    out: dict = {}
    for key, value in flat.items():
        if key in leaves and len(leaves[key][0]) > 1:
            continue  # placed below, after nested values, so the flat key wins
        # exclude_unset: a nested model keeps which settings were given (defaults stay defaults)
        out[key] = value.model_dump(exclude_unset=True) if isinstance(value, BaseModel) and key in cls.model_fields else value
    for key, value in flat.items():
        path = leaves[key][0] if key in leaves else (key,)
        if len(path) == 1:
            continue
        node, node_cls = out, cls
        for part in path[:-1]:
            child = node.get(part)
            info = node_cls.model_fields.get(part) if node_cls is not None else None
            if child is None and info is not None and isinstance(info.default, BaseModel):
                child = info.default.model_dump(exclude_unset=True)  # a model-valued default keeps what it set
            node_cls = _model_type(info.annotation) if info is not None else None
            if isinstance(child, BaseModel):
                child = child.model_dump(exclude_unset=True)
            node[part] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[path[-1]] = value
    return out


def flatten(obj: BaseModel) -> dict:
    """The model as flat JSON values (enum members as their values, tuples as lists)."""
    out: dict = {}

    def visit(node: BaseModel) -> None:
        for name in type(node).model_fields:
            value = getattr(node, name)
            if isinstance(value, BaseModel):
                visit(value)
            else:
                out[name] = _json_value(value)

    visit(obj)
    return out


def _json_value(v: Any) -> Any:
    if hasattr(v, "value") and not isinstance(v, (int, float, str)) or isinstance(v, str) and hasattr(v, "value"):
        return v.value
    if isinstance(v, tuple):
        return [_json_value(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
