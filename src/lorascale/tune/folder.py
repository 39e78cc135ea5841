"""The tune folder: which folders ``tune`` may write into, and which of its subfolders it may delete.

``tune`` writes into a new or empty ``tune_dir``, marking it (:data:`~lorascale.outputs.OUTPUT_MARKER`)
before anything else, or into a folder it marked earlier (a resumed tune). A folder of tune's from before the
marker is recognised by its own storage, ``tune.db``, holding tune's studies. Inside it, a stage's folder
(``lr-fft``, ``search``, ``confirm``) is scratch that an interrupted attempt left, deleted before the stage
runs again; it is deleted only when it holds nothing but tune's candidate run folders (``pack<i>``,
``candidate<i>``), so a user's files are never lost to a rerun.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError
from ..outputs import check_output_dir, mark_output, read_output_marker

__all__ = ["STAGES", "TUNE_DB", "check_tune_dir", "claim_tune_dir", "remove_stage"]

TUNE = "tune"  # the command named in the folder's marker
STAGES = ("lr-fft", "search", "confirm")
TUNE_DB = "tune.db"  # the default storage, in the folder
_RUN_FOLDER = re.compile(r"(pack|candidate)\d+")  # what run_stage names its runs' folders


def check_tune_dir(path: str | Path) -> Path:
    """``path`` if tune may write there: new, empty, or tune's own, with no stage folder holding anything
    but tune's runs; else ConfigError(``tune_dir``) (nothing is created or deleted)."""
    out = check_output_dir(path, "tune_dir", fresh=True, what="tune", own=is_tune_dir)
    for stage in (out / name for name in STAGES):
        if stage.exists() and not _scratch(stage):
            raise ConfigError("tune_dir", f"{stage} holds files tune did not write ({_shown(stage)}); tune replaces"
                              " its stage folders when it runs a stage again", "move them, or pass a new `tune_dir`")
    return out


def is_tune_dir(folder: Path) -> bool:
    """Whether ``folder`` is one tune wrote: its marker, or (tune before the marker) tune's studies in tune.db."""
    return read_output_marker(folder).get("command") == TUNE or _holds_tune_studies(folder / TUNE_DB)


def claim_tune_dir(out: Path) -> None:
    """Create ``out`` (checked by :func:`check_tune_dir`) and mark it as tune's, before any stage writes."""
    if read_output_marker(out).get("command") != TUNE:
        mark_output(out, TUNE)


def remove_stage(folder: Path) -> None:
    """Delete a stage's scratch folder from an interrupted attempt; refuse (ConfigError) if it holds anything
    else, which :func:`check_tune_dir` has already refused before the run began."""
    import shutil

    if not folder.exists():
        return
    if not _scratch(folder):
        raise ConfigError("tune_dir", f"{folder} holds files tune did not write ({_shown(folder)})",
                          "move them, or pass a new `tune_dir`")
    shutil.rmtree(folder)


def _scratch(folder: Path) -> bool:
    return folder.is_dir() and all(p.is_dir() and not p.is_symlink() and _RUN_FOLDER.fullmatch(p.name)
                                   for p in folder.iterdir())


def _shown(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "") if names else "not a folder"


def _holds_tune_studies(db: Path) -> bool:
    """Whether ``db`` is an Optuna SQLite file holding tune's studies, read without changing it."""
    from ..sweep.storage import study_names

    if not db.is_file():
        return False
    try:
        names = study_names(f"sqlite:///{db.resolve()}")
    except ConfigError:  # not a database, or not Optuna's (the storage check says which): not tune's folder
        return False
    return any(n.startswith("tune-") for n in names)
