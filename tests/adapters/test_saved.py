"""A saved adapter's files are read defensively: every damaged or hand-edited field is a ConfigError
about the adapter folder that names the key and what PEFT expects, never a traceback."""

import json
import shutil

import pytest
from peft import LoraConfig, get_peft_model

from lorascale.adapters.lint import lint_adapter
from lorascale.adapters.saved import WEIGHTS_FILE, SavedLoraConfig, factor_shapes, read_lora_config
from lorascale.cli import main
from lorascale.errors import ConfigError, ConfigErrors
from lorascale.models import load_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "ad"
    get_peft_model(load_model("tiny-llama", seed=0).model, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj"])).save_pretrained(path)
    return path


def _copy(saved, tmp_path, **changes):
    path = tmp_path / "ad"
    shutil.copytree(saved, path)
    cfg = json.loads((path / "adapter_config.json").read_text())
    cfg.update(changes)
    (path / "adapter_config.json").write_text(json.dumps(cfg))  # Python writes inf as JSON's Infinity, as PEFT's users do
    return path


@pytest.mark.parametrize("changes, says", [
    ({"lora_alpha": "abc"}, "lora_alpha must be a number, got 'abc'"),
    ({"lora_alpha": None}, "lora_alpha must be a number, got None"),
    ({"lora_alpha": float("inf")}, "lora_alpha must be a finite number"),
    ({"lora_alpha": -3}, "lora_alpha must be > 0, got -3"),
    ({"alpha_pattern": ["q_proj"]}, "alpha_pattern must be a mapping"),
    ({"alpha_pattern": {"q_proj": "x"}}, "alpha_pattern.q_proj must be a number, got 'x'"),
    ({"alpha_pattern": {"q_proj[": 8}}, "alpha_pattern key 'q_proj[' is not a valid regular expression"),
    ({"rank_pattern": {"q_proj": 2.5}}, "rank_pattern.q_proj must be an integer"),
    ({"use_rslora": "yes"}, "use_rslora must be true or false"),
    ({"peft_type": "IA3"}, "is a IA3 adapter config, not LoRA"),
])
def test_bad_config_fields_name_the_key_and_the_fix(saved, tmp_path, changes, says):
    path = _copy(saved, tmp_path, **changes)
    with pytest.raises(ConfigError) as e:
        lint_adapter(path)
    assert e.value.field == "adapter_dir" and says in e.value.message, e.value.message
    assert e.value.fix  # each names what to write instead


def test_every_bad_field_at_once(saved, tmp_path):
    path = _copy(saved, tmp_path, lora_alpha="abc", use_rslora=3)
    with pytest.raises(ConfigErrors) as e:
        read_lora_config(path)
    assert sorted(x.message.split(": ")[1].split(" ")[0] for x in e.value.errors) == ["lora_alpha", "use_rslora"]


def test_pattern_null_means_none_and_defaults_are_peft_s(saved, tmp_path):
    path = _copy(saved, tmp_path, alpha_pattern=None, rank_pattern=None)
    _, cfg = read_lora_config(path)
    assert cfg.alpha_pattern == {} and cfg.rank_pattern == {}
    assert SavedLoraConfig().lora_alpha == 8.0  # PEFT's LoraConfig default


@pytest.mark.parametrize("keep", [0, 5, "half"])
def test_empty_or_truncated_weights_are_a_clear_error(saved, tmp_path, keep):
    path = _copy(saved, tmp_path)
    data = (path / WEIGHTS_FILE).read_bytes()
    (path / WEIGHTS_FILE).write_bytes(data[: len(data) // 2 if keep == "half" else keep])
    with pytest.raises(ConfigError, match="not a readable safetensors file.*truncated or damaged") as e:
        factor_shapes(path)
    assert e.value.field == "adapter_dir"


def test_check_cli_exits_2_naming_the_argument(saved, tmp_path, capsys):
    path = _copy(saved, tmp_path, lora_alpha=None, alpha_pattern=["q_proj"])
    before = {p: p.read_bytes() for p in path.iterdir()}
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error: ADAPTER_DIR:") == 2, err
    assert {p: p.read_bytes() for p in path.iterdir()} == before  # check only reads


def test_damaged_lorascale_json_becomes_a_note(saved, tmp_path):
    path = _copy(saved, tmp_path)
    (path / "lorascale.json").write_text("[1, 2")
    rep = lint_adapter(path)
    assert any("not valid JSON" in n and "judged by the scales alone" in n for n in rep.notes), rep.notes
