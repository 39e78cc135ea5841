"""Hugging Face Hub IDs resolved from the local cache, offline: never a download.

``HuggingFaceTB/SmolLM2-135M-Instruct`` as a model, or ``org/name`` as a dataset, is the snapshot that
``huggingface_hub`` keeps under ``$HF_HOME/hub`` (``$HF_HUB_CACHE``), found with
``snapshot_download(..., local_files_only=True)``. When it is not there the error says how to fetch it
once, on a machine with a network.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from .errors import ConfigError

__all__ = ["is_hub_id", "cached_snapshot", "hub_cache"]

# The Hub's repo names: "org/name", letters, digits, '-', '_' and '.', no leading '.' or '-'
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".txt", ".md", ".parquet")  # a path to a file, not a repo


def is_hub_id(name: str) -> bool:
    """``org/name`` that is not a file path (``data/train.jsonl``) nor an existing folder."""
    return bool(_HUB_ID.fullmatch(name)) and not name.endswith(FILE_SUFFIXES) and not os.path.exists(name)


def hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_snapshot(repo_id: str, repo_type: Literal["model", "dataset"], field: str, also: str = "") -> Path:
    """The folder of ``repo_id``'s cached snapshot (its ``main`` revision); ConfigError on ``field``
    with the download command when the cache lacks it. ``also`` extends the fix."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, local_files_only=True))
    except HFValidationError as e:  # e.g. "a/b--c": shaped like org/name, but not a valid repository ID
        raise ConfigError(field, f"{repo_id!r} is neither an existing folder nor a valid Hub ID ({e})",
                          "check the path (it does not exist), or give a Hub ID as org/name") from None
    except LocalEntryNotFoundError:
        flag = " --repo-type dataset" if repo_type == "dataset" else ""
        raise ConfigError(field, f"the {repo_type} {repo_id} is not in the local Hugging Face cache ({hub_cache()});"
                          " lorascale never downloads",
                          f"download it once with a network: `hf download {repo_id}{flag}` (set HF_HOME to use another"
                          f" cache){also}; for a local folder, check the path") from None
