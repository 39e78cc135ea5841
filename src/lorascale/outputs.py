"""Output folders checked before any work: a command that computes for minutes and then cannot write
its results has wasted the minutes, and one that writes into a folder of the user's files may overwrite them.

:func:`check_output_dir` only looks (``os.access``, ``stat``): it creates nothing, so a refusal leaves
the file system as it was. ``os.access`` answers for the real user and sees read-only mounts even as root.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

__all__ = ["check_output_dir", "RUN_MARKER"]

RUN_MARKER = "summary.json"  # every run folder lorascale writes has one from its first step on


def check_output_dir(path: str | Path, field: str, *, fresh: bool = False, what: str = "output") -> Path:
    """``path`` as a Path if lorascale can create or write it; else ConfigError(``field``, why, fix).

    ``fresh``: the folder must also be new or empty (runs are never written over, nor into a folder
    of other files).
    """
    p = Path(path)
    try:
        return _check(p, field, fresh, what)
    except OSError as e:  # a name the file system refuses outright (too long, ...)
        raise ConfigError(field, f"{str(p)[:80]!r} is not a usable path ({e.strerror})", "pass a folder you can write to") from None


def _check(p: Path, field: str, fresh: bool, what: str) -> Path:
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
    if fresh and p.is_dir():
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
