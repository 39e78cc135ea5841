"""Reading the small config files users hand us (YAML run configs and sweep specs, JSON adapter and
run configs), with one error style: the field that named the file, what is wrong, and the fix."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ConfigError

__all__ = ["read_mapping"]


def read_mapping(path: str | Path, field: str, what: str) -> dict:
    """The mapping stored in a .yaml/.yml or .json file; ``what`` says what the file should be."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(field, f"{p} is a folder, not a file", f"pass {what}")
    if not p.is_file():
        raise ConfigError(field, f"{p} does not exist", f"pass {what}")
    try:
        text = p.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark (Windows editors) is not JSON
    except UnicodeDecodeError:
        raise ConfigError(field, f"{p} is not a UTF-8 text file", f"pass {what}") from None
    except OSError as e:  # unreadable (permissions, a device)
        raise ConfigError(field, f"{p} cannot be read ({e.strerror})", f"pass {what}") from None
    if p.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(field, f"{p} is not valid JSON ({e.msg} at line {e.lineno})", f"fix line {e.lineno}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(field, f"{p} is not valid YAML: {err}", "fix the place it names") from None
    if not isinstance(data, dict):
        raise ConfigError(field, f"{p} does not hold a mapping of keys", f"pass {what}")
    return data
