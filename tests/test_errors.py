"""Every error lorascale raises about an input carries the field and a fix as attributes (the CLI turns
the field into a flag name and prints the fix; the Python API reads both)."""

import ast
from pathlib import Path

import pytest

import lorascale
from lorascale.errors import ConfigErrors

SRC = Path(lorascale.__file__).parent


def _error_classes() -> set[str]:
    """ConfigError and every class under src/ that derives from it (by name, through any depth)."""
    names = {"ConfigError"}
    trees = [ast.parse(p.read_text(encoding="utf-8")) for p in SRC.rglob("*.py")]
    grew = True
    while grew:
        grew = False
        for t in trees:
            for n in ast.walk(t):
                if isinstance(n, ast.ClassDef) and n.name not in names and any(
                        getattr(b, "id", getattr(b, "attr", None)) in names for b in n.bases):
                    names.add(n.name)
                    grew = True
    return names


# the calls that build an input error, and the position of their fix argument: the error classes, and
# schema.checked(annotation, field, value, fix)
FIX_AT = {"checked": 3}


def _fix_arg(call: ast.Call, at: int):
    """The fix argument of ``call`` (positional ``at`` or ``fix=``); ... when it is not given."""
    if any(isinstance(a, ast.Starred) for a in call.args):  # *problem: (message, fix) unpacked
        return None
    kw = [k.value for k in call.keywords if k.arg == "fix"]
    return kw[0] if kw else call.args[at] if len(call.args) > at else ...


def test_every_input_error_in_the_source_is_built_with_a_fix():
    names = _error_classes()
    assert {"ModelError", "RuleError", "StorageMissing"} <= names  # the scan finds the subclasses too
    at = {**{n: 2 for n in names}, **FIX_AT}
    missing = []
    for p in sorted(SRC.rglob("*.py")):
        for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            name = getattr(n.func, "id", getattr(n.func, "attr", None)) if isinstance(n, ast.Call) else None
            if name in at:
                fix = _fix_arg(n, at[name])
                if fix is ... or (isinstance(fix, ast.Constant) and fix.value is None):
                    missing.append(f"{p.relative_to(SRC)}:{n.lineno}")
    assert missing == [], f"errors built without a fix: {missing}"


def test_the_sweep_spec_collector_needs_a_fix_too():
    import inspect

    from lorascale.sweep.collector import Collector

    for method in (Collector.add, Collector.add_once):
        assert inspect.signature(method).parameters["fix"].default is inspect.Parameter.empty


def test_unknown_keys_and_values_name_the_valid_ones_as_the_fix():
    from lorascale.rules import RuleSpec

    with pytest.raises(ConfigErrors) as e:
        RuleSpec(rule="lora-beta", cc=3)
    by_field = {x.field: x for x in e.value.errors}
    assert by_field["rule"].message == "unknown value 'lora-beta'" and "lora-alpha-analytic" in by_field["rule"].fix
    assert by_field["cc"].message == "unknown key" and by_field["cc"].fix.startswith("valid keys: ") and "c" in by_field["cc"].fix
    assert str(by_field["rule"]) == f"rule: unknown value 'lora-beta'; {by_field['rule'].fix}"  # how the CLI prints it



def test_collecting_gathers_one_error_or_several_and_lets_the_next_check_run():
    from lorascale.errors import ConfigError, collecting

    errors, after = [], []
    with collecting(errors):
        raise ConfigError("rank", "must be positive", "use rank 1 or more")
    with collecting(errors):
        raise ConfigErrors([ConfigError("lr", "is 0", "give a positive lr"), ConfigError("steps", "is 0", "give 1+")])
    with collecting(errors):
        after.append("ran")  # a check that passes adds nothing
    assert [e.field for e in errors] == ["rank", "lr", "steps"] and after == ["ran"]
    with pytest.raises(KeyError), collecting(errors):  # anything else is a bug, not an input problem: it propagates
        raise KeyError("rank")
    assert len(errors) == 3
