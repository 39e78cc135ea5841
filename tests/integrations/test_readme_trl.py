"""The README's TRL example runs as written (tiny-llama, 2 steps), and gives what the README says."""

import math
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    match = re.search(r"<!-- readme-trl-example -->\n```python\n(.*?)```", text, re.S)
    assert match, "the README lost its TRL example (marker <!-- readme-trl-example -->)"
    return match.group(1)


def test_readme_trl_example_runs(tmp_path, one_thread):
    pytest.importorskip("trl", reason="install lorascale[integrations] to run the TRL example")
    from lorascale.adapters import lora_modules
    from lorascale.adapters.lint import lint_adapter

    code = readme_example()
    # Only the size of the run changes: a tiny model, two steps, a temporary folder.
    for old, new in (('load_model("smollm2-135m")', 'load_model("tiny-llama")'), ("max_steps=200", "max_steps=2"),
                     ('output_dir="runs/sft"', f'output_dir="{tmp_path}"')):
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    trainer = scope["trainer"]
    assert trainer.state.global_step == 2
    scales = {m.scaling["default"] for _, m in lora_modules(trainer.model)}
    assert scales == {256 * math.sqrt(16) / 16}  # LoRA-α Variant I at r = 16: s = 64
    assert (tmp_path / "adapter_config.json").exists() and (tmp_path / "lorascale.json").exists()
    rep = lint_adapter(tmp_path)  # judged by the lorascale.json the callback wrote
    # rel=1e-9: float rounding only
    assert "as lorascale.json declares" in rep.reference and len(rep.layers) == 6  # the MLP placement, 2 blocks
    assert all(ly.ratio == pytest.approx(1.0, rel=1e-9) for ly in rep.layers)
