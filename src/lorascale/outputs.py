"""Output folders checked before any work: a command that computes for minutes and then cannot write
its results has wasted the minutes, and one that writes into a folder of the user's files may overwrite them.

:func:`check_output_dir` only looks (``os.access``, ``stat``): it creates nothing, so a refusal leaves
the file system as it was. ``os.access`` answers for the real user and sees read-only mounts even as root.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable

from .errors import ConfigError

__all__ = ["check_output_dir", "only_named", "RUN_MARKER", "OUTPUT_MARKER", "mark_output", "read_output_marker",
           "json_text"]

RUN_MARKER = "summary.json"  # every run folder lorascale writes has one from its first step on
OUTPUT_MARKER = "lorascale-output.json"
"""Written into a folder a command (export, tune) made its own, before its first result: the next call may
write there again (a re-export, a resumed tune), and a folder without it is never written over."""


def check_output_dir(path: str | Path, field: str, *, fresh: bool = False, what: str = "output",
                     own: Callable[[Path], bool] | None = None) -> Path:
    """``path`` as a Path if lorascale can create or write it; else ConfigError(``field``, why, fix).

    ``fresh``: the folder must also be new or empty (runs are never written over, nor into a folder
    of other files), unless ``own(folder)`` says it holds the caller's own earlier output.
    """
    p = Path(path)
    try:
        return _check(p, field, fresh, what, own)
    except OSError as e:  # a name the file system refuses outright (too long, ...)
        raise ConfigError(field, f"{str(p)[:80]!r} is not a usable path ({e.strerror})", "pass a folder you can write to") from None


def only_named(names) -> Callable[[Path], bool]:
    """An ``own`` for :func:`check_output_dir`: a folder holding nothing but files named ``names`` (what a
    command with fixed output names wrote earlier, and writes again)."""
    names = frozenset(names)
    return lambda folder: all(p.name in names and p.is_file() for p in folder.iterdir())


def mark_output(folder: str | Path, command: str, **facts) -> Path:
    """Write :data:`OUTPUT_MARKER` into ``folder`` (created if needed): ``command`` made it, with ``facts``
    (e.g. the run it exported) that tell its own next call from another's."""
    path = Path(folder) / OUTPUT_MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"command": command, **facts}, indent=2) + "\n")
    return path


def read_output_marker(folder: str | Path) -> dict:
    """The facts :func:`mark_output` wrote into ``folder``; empty when there are none (or they are unreadable:
    then the folder counts as not lorascale's, so nothing in it is written over)."""
    try:
        data = json.loads((Path(folder) / OUTPUT_MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _check(p: Path, field: str, fresh: bool, what: str, own: Callable[[Path], bool] | None) -> Path:
    fix = "pass a folder you can write to"
    if p.exists() and not p.is_dir():
        raise ConfigError(field, f"{p} is a file, not a folder", f"pass a folder for the {what}")
    existing = next(a for a in (p, *p.absolute().parents) if a.exists())
    if not existing.is_dir():
        raise ConfigError(field, f"{existing} is a file, so {p} cannot be created inside it", fix)
    if not os.access(existing, os.W_OK | os.X_OK):
        ro = _read_only_mount(existing)
        why = "is on a read-only file system" if ro else "is not writable by this user"
        raise ConfigError(field, f"{existing} {why}, so {p} cannot be {'written' if existing == p else 'created'}", fix)
    if fresh and p.is_dir() and not (own is not None and own(p)):
        entries = sorted(x.name for x in p.iterdir())
        if RUN_MARKER in entries:
            raise ConfigError(field, f"{p} already holds a run", f"pass a new {what} folder (runs are never overwritten)")
        if entries:
            shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
            raise ConfigError(field, f"{p} is a folder of other files ({shown}); lorascale writes only into a new or"
                              " empty folder, so it never overwrites yours", f"pass a new {what} folder")
    return p


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def json_text(obj) -> str:
    """``obj`` as standard JSON (RFC 8259), indented: NaN and ±inf, which it cannot hold (Python writes
    ``Infinity``, which jq and JavaScript refuse), become null; enums their value, paths their text, objects
    with ``to_dict`` that dict. For ``--json`` output and the files tune and repro write."""
    return json.dumps(_finite(json.loads(json.dumps(obj, default=_json_default))), indent=2, allow_nan=False)


def _finite(o):
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_finite(v) for v in o]
    return o


def _json_default(o):
    if hasattr(o, "value"):
        return o.value
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
