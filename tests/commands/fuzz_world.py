"""The files the CLI harness (test_fuzz_cli.py) points commands at: valid inputs for each command's base
call, and broken ones (damaged adapters, data, specs, storage, paths that are files or read-only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TEXTS = [f"line {i}: the quick brown fox jumps over the lazy dog." for i in range(24)]
SPEC = {"name": "fuzz", "base": {"model": "tiny-llama", "data": "shakespeare", "steps": 2, "batch_size": 2, "seq_len": 16,
                                 "max_examples": 16, "max_val_batches": 1},
        "grid": {"configs": [{"name": "A1", "rule": "mua", "init": "A", "gamma": 0}], "ranks": [4], "log2_lr": [-8, -6],
                 "seeds": [0]}}


@dataclass
class World:
    root: Path
    read_only: Path | None  # None where this process cannot get a read-only folder
    paths: dict[str, Path] = field(default_factory=dict)
    storage: str = ""
    study: str = SPEC["name"]

    def __getitem__(self, name: str) -> str:
        return str(self.paths[name])

    def bad_outputs(self) -> list[str]:
        """Output folders nobody can write: a file, a folder under a file, a read-only folder."""
        out = [self["file"], str(self.paths["file"] / "sub" / "out")]
        return out + ([str(self.read_only / "out")] if self.read_only else [])


def build_world(root: Path) -> World:
    w = World(root, _read_only_dir(root / "read-only"))
    put = w.paths.__setitem__
    put("file", _write(root / "afile.txt", "not a folder"))
    put("empty_dir", _mkdir(root / "empty"))
    put("plain_dir", _mkdir(root / "plain"))
    _write(root / "plain" / "notes.txt", "a folder of someone's files")
    put("non_utf8", _write_bytes(root / "latin1.jsonl", b'{"text": "caf\xe9"}\n'))
    # data
    put("data", _write(root / "data.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in TEXTS)))
    put("labels", _write(root / "labels.jsonl", "".join(json.dumps({"text": t, "label": i % 2}) + "\n"
                                                        for i, t in enumerate(TEXTS))))
    put("data_bad_json", _write(root / "bad.jsonl", '{"text": "a"}\n{oops\n'))
    put("data_chat", _write(root / "chat.jsonl", json.dumps({"messages": "hi"}) + "\n"))
    put("data_no_text", _write(root / "cols.csv", "a,b\n1,2\n"))
    put("data_empty", _write(root / "empty.txt", "  \n"))
    put("data_suffix", _write(root / "data.bin", "x"))
    # configs and specs
    put("yaml_bad", _write(root / "bad.yaml", "rank: [1, 2\n"))
    put("yaml_list", _write(root / "list.yaml", "- 1\n- 2\n"))
    put("yaml_unknown", _write(root / "unknown.yaml", "no_such_key: 1\n"))
    put("yaml_bad_values", _write(root / "values.yaml", "rank: 0\nlr: .nan\ngamma: 2\n"))
    put("spec", _write(root / "spec.yaml", yaml.safe_dump(SPEC)))
    put("spec_overflow", _write(root / "overflow.yaml", yaml.safe_dump({**SPEC, "grid": {**SPEC["grid"], "log2_lr": [2000]}})))
    put("spec_no_model", _write(root / "no-model.yaml", yaml.safe_dump({**SPEC, "base": {**SPEC["base"], "model": "no-such-model"}})))
    put("spec_bad_seed", _write(root / "bad-seed.yaml", yaml.safe_dump({**SPEC, "grid": {**SPEC["grid"], "seeds": [-1]}})))
    # models, adapters, runs
    put("model_bad_config", _mkdir(root / "model-bad"))
    _write(root / "model-bad" / "config.json", "{bad json")
    put("model_unknown_arch", _mkdir(root / "model-arch"))
    _write(root / "model-arch" / "config.json", '{"model_type": "no-such-architecture"}')
    put("adapter", _adapter(root / "adapter"))
    put("adapter_bad_alpha", _variant(w, "adapter-alpha", lora_alpha="abc"))
    put("adapter_bad_regex", _variant(w, "adapter-regex", alpha_pattern={"q_proj[": 8}))
    put("adapter_truncated", _variant(w, "adapter-truncated"))
    (root / "adapter-truncated" / "adapter_model.safetensors").write_bytes(b"\x08\x00")
    put("run", _mkdir(root / "run"))
    _write(root / "run" / "metrics.jsonl", "".join(json.dumps({"step": s, "loss": 3.0 / s}) + "\n" for s in (1, 2)))
    put("run_bad_lines", _mkdir(root / "run-bad"))
    _write(root / "run-bad" / "metrics.jsonl", '{"step": 1}\n[1, 2]\n')
    w.storage = _storage(root / "study.db", w["spec"])
    put("empty_db", _write(root / "empty.db", ""))
    return w


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _adapter(path: Path) -> Path:
    from peft import LoraConfig, get_peft_model

    from lorascale.adapters import AdapterMetadata, save_adapter
    from lorascale.models import load_model

    model = get_peft_model(load_model("tiny-llama").model, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj"]))
    return save_adapter(model, path, AdapterMetadata(model="tiny-llama"))


def _variant(w: World, name: str, **changes) -> Path:
    path = w.root / name
    shutil.copytree(w.paths["adapter"], path)
    cfg = json.loads((path / "adapter_config.json").read_text())
    (path / "adapter_config.json").write_text(json.dumps({**cfg, **changes}))
    return path


def _storage(path: Path, spec_file: str) -> str:
    """A finished study of the base spec, from a stand-in objective (no training)."""
    from lorascale.sweep.executors import run_sweep
    from lorascale.sweep.spec import load_spec

    url = f"sqlite:///{path}"
    run_sweep(load_spec(spec_file), url, objective=_objective, progress=False)
    return url


def _objective(cfg):
    from lorascale.sweep.records import Outcome

    loss = 1.0 + abs(cfg.lr - 2.0**-7)
    return Outcome("complete", loss, "val_nll", loss + 0.1, loss + 0.1, 0.01, ((1, loss + 1), (2, loss)), "")


def _read_only_dir(path: Path) -> Path | None:
    """chmod 555 where modes bind; as root (who ignores them) a read-only tmpfs, where mount is allowed."""
    path.mkdir()
    path.chmod(0o555)
    if not os.access(path, os.W_OK):
        return path
    path.chmod(0o755)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True)
    return path if res.returncode == 0 and not os.access(path, os.W_OK) else None


def release(w: World) -> None:
    if w.read_only is not None:
        if subprocess.run(["umount", str(w.read_only)], capture_output=True).returncode != 0:
            w.read_only.chmod(0o755)
