"""Property-based harness (issue #14): for every command and each of its flags, read from the parsers
``lorascale.cli`` builds, invalid values end in exit 2, no traceback, a message naming the flag, and no
file created or changed in the working folder or the inputs (storage included).

Bad values come from the flag itself: a settings field's own pydantic type decides which candidates
(wrong types, NaN/inf, negative, past a bound, empty) are invalid; argparse types and choices do for the
hand-written flags; a flag that names a thing (model, data, output folder, storage, ...) gets things that
do not work (unknown names, missing paths, folders, files, read-only folders, damaged files). A flag with
no such kind fails the harness until it gets one, so new flags are covered.

Each command runs in-process through ``lorascale.cli.main`` from a fresh working folder, on a valid base
call with the flag replaced. Accepting a bad value is caught before it computes: building an optimizer
(every training path) or starting a sweep raises ``Accepted``.

Budget: ``LORASCALE_FUZZ_EXAMPLES`` examples per flag (default 3: 663 inputs, ~30 s of CPU); a nightly run
sets e.g. 50 with ``LORASCALE_FUZZ_SEED=random`` (``make fuzz``); by default the examples are derandomized,
so CI is repeatable.
The figures (commands × flags, inputs tried, tracebacks, files changed) go to
``$LORASCALE_FUZZ_SUMMARY`` (default: the pytest temp folder) and to stdout (``-s``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Annotated

import pytest
from fuzz_world import build_world, release
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from lorascale.cli import build_parser, main

EXAMPLES = int(os.environ.get("LORASCALE_FUZZ_EXAMPLES", "3"))
TOTALS: Counter = Counter()
PER_FLAG: dict[str, Counter] = {}


class Accepted(Exception):
    """A bad value got through validation: the command started to compute."""


# ------------------------------------------------------------------------------------------------
# the flags, from the parsers


def commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def label(action: argparse.Action) -> str:
    """What an error must name: the long option, or the positional's metavar."""
    return max(action.option_strings, key=len) if action.option_strings else (action.metavar or action.dest)


def flags() -> list[tuple[str, argparse.Action]]:
    return [(name, a) for name, p in commands().items() for a in p._actions if not isinstance(a, argparse._HelpAction)]


# ------------------------------------------------------------------------------------------------
# valid base calls; the flag under test replaces its entry


def bases(w) -> dict[str, list[list[str]]]:
    return {
        "recommend": [["--model", "tiny-llama"]],
        "transfer": [["--lr", "1e-3", "--from-width", "64", "--from-rank", "8"]],
        "check": [[w["adapter"]]],
        "train": [["--model", "tiny-llama", "--data", w["data"], "--steps", "1", "--quiet"]],
        "tune": [["--model", "tiny-llama", "--data", w["data"], "--steps", "2", "--quiet"]],
        "export": [[w["adapter"]]],
        "demo": [["--model", "tiny-llama", "--steps", "1", "--quiet"]],
        "diagnose": [[w["run"]]],
        "coord-check": [["--model", "tiny-llama", "--ranks", "4", "8", "--configs", "mua-A-1", "--steps", "1"]],
        "repro": [["headline", "--seeds", "1", "--model", "tiny-bert", "--data", w["labels"], "--steps", "2"],
                  ["mlp-spectra", "--seeds", "1"]],
        "sweep": [[w["spec"]]],
        "fit": [["--storage", w.storage, "--study", w.study]],
        "report": [["--storage", w.storage, "--study", w.study, "--out", "report"]],
    }


def call(command: str, base: list[str], action: argparse.Action, tokens: list[str]) -> list[str]:
    """``command`` with ``base``, the flag's own entry (if any) replaced by ``tokens``."""
    positional = not action.option_strings
    if positional:
        return [command, *tokens, *base[1:]] if base and not base[0].startswith("-") else [command, *tokens, *base]
    out, skip = [], False
    for tok in base:
        if tok in action.option_strings:
            skip = True
            continue
        if skip and not tok.startswith("-"):
            continue
        skip = False
        out.append(tok)
    return [command, *out, *tokens]


# ------------------------------------------------------------------------------------------------
# bad values


NUMBERS = ["abc", "", "1.5", "nan", "inf", "-inf", "1e999", "-1", "-7", "0", "true", "2", "0.5", "1e12",
           "99999999999999999999", "4294967296", "-0.25", "1,5"]
NAMES = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="\\"), min_size=1, max_size=12)


def _kinds(w, command: str) -> dict[str, list[str]]:
    """Things that do not work, for flags that name a thing (by their field / dest)."""
    outputs = w.bad_outputs()
    missing = str(w.root / "missing" / "thing")
    # these write only into new or empty folders (or one of their own earlier output)
    fresh_out = [w["plain_dir"]] if command in ("train", "demo", "export", "tune", "coord-check", "diagnose") else []
    return {
        "model": ["gpt-17", "tiny-llama@33", "tiny-bert@50", "tiny-llama@0", "tiny-llama@x", "tiny-llama@100000000",
                  "smollm2-135m@64", missing, w["empty_dir"], w["model_bad_config"], w["model_unknown_arch"], w["file"]],
        "data": ["no-such-dataset", missing + ".jsonl", w["plain_dir"], w["empty_dir"], w["data_bad_json"], w["data_chat"],
                 w["data_no_text"], w["data_empty"], w["data_suffix"], w["non_utf8"]],
        "out_dir": outputs + fresh_out, "out": outputs + fresh_out, "tune_dir": outputs + fresh_out,
        "resume": [missing, w["plain_dir"], w["file"], w["run"]],  # none is a run folder with a checkpoint
        "config": [missing + ".yaml", w["plain_dir"], w["yaml_bad"], w["yaml_list"], w["yaml_unknown"], w["yaml_bad_values"],
                   w["non_utf8"]],
        # a spec naming a missing model, or seeds: [-1], is refused before anything is stored (#14)
        "spec": [missing + ".yaml", w["plain_dir"], w["yaml_bad"], w["yaml_list"], w["yaml_unknown"], w["spec_overflow"],
                 w["spec_no_model"], w["spec_bad_seed"],
                 w["non_utf8"]],
        "storage": ([f"sqlite:///{missing}.db"] if command in ("fit", "report") else [])  # sweep and tune create it
        + ["not-a-url", f"sqlite:///{w['plain_dir']}", f"sqlite:///{w['file']}", f"sqlite:///{w['empty_db']}",
           f"journal:{w['plain_dir']}"],
        "study": ["no-such-study"],
        **({"lr": ["1e-3", "none", "abc", "0"]} if command == "tune" else {}),  # tune's hidden --lr: all refused
        "adapter_dir": [missing, w["file"], w["empty_dir"], w["adapter_bad_alpha"], w["adapter_bad_regex"],
                        w["adapter_truncated"]],
        "run_dir": [missing, w["file"], w["empty_dir"], w["run_bad_lines"]],
        "targets": ["no_such_proj", "q_proj["],
        "members": ["0", "-1", "abc", "1.5", "", "auto2"],
        "address": ["localhost:6379"],  # only with --backend ray, which the base does not use
    }


NAME_FIELDS = ("experiment", "metric", "backend", "diagnostics", "tasks", "methods")  # a closed set of names, checked by the command


def invalid_tokens(w, command: str, action: argparse.Action):
    """A strategy for the argv tokens of one invalid use of ``action`` (None: no kind known)."""
    flag = label(action)
    if action.nargs == 0:  # a switch: a value is not allowed
        return NAMES.map(lambda t: [f"{flag}={t}"])
    missing_value = st.just([] if not action.option_strings else [flag])
    wrap = (lambda v: [v]) if not action.option_strings else (lambda v: [flag, v])
    kinds = _kinds(w, command)
    setting = getattr(action, "setting", None)
    if action.dest in kinds:
        values = st.sampled_from(kinds[action.dest])
    elif action.choices:
        values = NAMES.filter(lambda t: t not in action.choices)
    elif action.dest in NAME_FIELDS:
        values = NAMES.map(lambda t: "no-such-" + t)
    elif setting is not None and _field_rejects(setting, "abc") is not None:
        oracle = _field_rejects(setting)
        values = (st.sampled_from(NUMBERS) | st.integers(-(10**6), 10**13).map(str)
                  | st.floats().map(repr) | NAMES).filter(oracle)
    elif action.type in (int, float):
        values = (st.sampled_from(NUMBERS) | st.integers(max_value=-1).map(str) | st.floats().map(repr)).filter(
            lambda v: _hand_number_invalid(action.type, v))
    else:
        return None
    return missing_value | values.map(wrap)


def _field_rejects(info, probe=None):
    """For a settings field: a predicate 'pydantic rejects this CLI string' (None for free-text fields)."""
    adapter = TypeAdapter(Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation)
    sequence = "tuple" in str(info.annotation) or "list" in str(info.annotation)

    def rejects(v: str) -> bool:
        try:
            adapter.validate_python([v] if sequence else v)
        except ValidationError:
            return True
        return False

    if probe is not None:  # free text (a name, a path) accepts "abc": the field's type cannot say what is wrong
        return rejects if rejects(probe) else None
    return rejects


def _hand_number_invalid(kind, v: str) -> bool:
    """Every hand-written numeric flag counts something or is a rate: unparseable, non-finite or < 0 is invalid."""
    try:
        x = kind(v)
    except ValueError:
        return True
    return not math.isfinite(x) or x < 0


# ------------------------------------------------------------------------------------------------
# running one call


def snapshot(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file() and not p.is_symlink():
                out[str(p)] = hashlib.sha1(p.read_bytes()).hexdigest()
            elif p.is_dir():
                out[str(p)] = "dir"
    return out


def run_cli(argv: list[str]) -> tuple[int | str, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own errors
            code = e.code
        except Accepted:
            code = "accepted"
        except Exception:  # a crash: the harness's finding
            import traceback

            traceback.print_exc(file=err)
            code = "crash"
    return code, err.getvalue()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = build_world(tmp_path_factory.mktemp("fuzz-world"))
    yield w
    release(w)
    _write_summary(tmp_path_factory.getbasetemp())


@pytest.fixture
def guarded(monkeypatch):
    """Accepting a bad value stops before any compute: the optimizer or the sweep raises ``Accepted``."""
    import torch

    import lorascale.sweep.executors as executors

    def accepted(*a, **k):
        raise Accepted()

    monkeypatch.setattr(torch.optim.Optimizer, "__init__", accepted)
    monkeypatch.setattr(executors, "run_sweep", accepted)


FLAGS = flags()


SLOW_BASES = {"demo"}  # demo tokenises the Shakespeare corpus before it trains (~10 s)


@pytest.mark.parametrize("command", [pytest.param(c, marks=[pytest.mark.slow] if c in SLOW_BASES else []) for c in sorted(commands())])
def test_each_base_call_is_valid(command, world, guarded):
    """The harness's premise: with no bad flag, each base call gets past validation (to its work, or done)."""
    for base in bases(world)[command]:
        with tempfile.TemporaryDirectory() as cwd, contextlib.chdir(cwd):
            code, err = run_cli([command, *base])
        assert code in (0, "accepted"), f"{command} {base}: exit {code}\n{err[-2000:]}"


@pytest.mark.parametrize("command, action", FLAGS, ids=[f"{c} {label(a)}" for c, a in FLAGS])
def test_invalid_values_are_refused_cleanly(command, action, world, guarded):
    strategy = invalid_tokens(world, command, action)
    assert strategy is not None, f"{command} {label(action)}: no kind of invalid value; add one to _kinds or NAME_FIELDS"
    base = st.sampled_from(bases(world)[command])
    flag = label(action)
    stats = PER_FLAG.setdefault(f"{command} {flag}", Counter())
    named = re.compile(rf"error: .*{re.escape(flag)}(?![\w-])"
                       + (r"|error: --[\w-]+ \(\w+\): " if flag == "--config" else ""))  # "--rank (rank)": a key of the file

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=os.environ.get("LORASCALE_FUZZ_SEED") is None,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(base=base, tokens=strategy)
    def check(base, tokens):
        argv = call(command, base, action, tokens)
        with tempfile.TemporaryDirectory() as cwd, contextlib.chdir(cwd):
            before = snapshot(Path(cwd), world.root)
            code, err = run_cli(argv)
            changed = sorted(set(before.items()) ^ set(snapshot(Path(cwd), world.root).items()))
        for key, bad in (("inputs", True), ("tracebacks", "Traceback" in err), ("files_changed", bool(changed)),
                         ("accepted", code == "accepted"), ("not_exit_2", code != 2), ("flag_not_named", not named.search(err))):
            stats[key] += bad
            TOTALS[key] += bad
        assert code == 2, f"{argv}: exit {code}\n{err[-3000:]}"
        assert "Traceback" not in err, f"{argv}\n{err[-3000:]}"
        assert named.search(err), f"{argv}: the error does not name {flag}\n{err}"
        assert not changed, f"{argv}: files created or changed: {changed[:5]}"

    check()


def _write_summary(base: Path) -> None:
    cmds = commands()
    summary = {"commands": len(cmds), "flags": len(FLAGS), "flags_tried": len(PER_FLAG),
               "examples_per_flag": EXAMPLES, **{k: TOTALS[k] for k in ("inputs", "tracebacks", "files_changed", "accepted",
                                                                        "not_exit_2", "flag_not_named")},
               "per_command": {c: sum(1 for k in PER_FLAG if k.split(" ")[0] == c) for c in cmds}}
    path = Path(os.environ.get("LORASCALE_FUZZ_SUMMARY") or base / "fuzz-summary.json")
    path.write_text(json.dumps(summary, indent=2))
    print(f"\nCLI harness: {json.dumps(summary)} -> {path}")
