"""read_mapping: the one reader of users' YAML/JSON files, with one error style."""

import pytest

from lorascale.config_files import read_mapping
from lorascale.errors import ConfigError


def test_reads_yaml_and_json_mappings(tmp_path):
    (tmp_path / "a.yaml").write_text("rank: 8\nlr: 2e-5\n")
    (tmp_path / "b.json").write_text('{"rank": 8, "lr": 2e-5}')
    # YAML 1.1 reads 2e-5 (no dot) as a string; the settings models coerce it, the reader does not
    assert read_mapping(tmp_path / "a.yaml", "config", "x") == {"rank": 8, "lr": "2e-5"}
    assert read_mapping(tmp_path / "b.json", "config", "x") == {"rank": 8, "lr": 2e-5}
    (tmp_path / "empty.yaml").write_text("")
    assert read_mapping(tmp_path / "empty.yaml", "config", "x") == {}


@pytest.mark.parametrize("name, text, words", [
    ("bad.json", "{not json", "not valid JSON"),
    ("bad.yaml", "a: [1, 2", "not valid YAML"),
    ("list.yaml", "- 1\n- 2\n", "does not hold a mapping"),
])
def test_bad_files_name_the_field(tmp_path, name, text, words):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as e:
        read_mapping(tmp_path / name, "spec", "a sweep YAML")
    assert e.value.field == "spec" and words in e.value.message
    assert e.value.fix is not None and e.value.fix not in e.value.message  # the fix is its own attribute


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ConfigError, match="does not exist") as e:
        read_mapping(tmp_path / "nope.yaml", "config", "a YAML file")
    assert e.value.field == "config"
    with pytest.raises(ConfigError) as e:
        read_mapping(tmp_path, "config", "a YAML file")
    assert e.value.field == "config"
