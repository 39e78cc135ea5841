"""Output folders are checked before any work, by looking only: a refusal creates nothing."""

import pytest

from lorascale.cli import main
from lorascale.errors import ConfigError


def check_output_dir(*args, **kwargs):
    from lorascale.outputs import check_output_dir

    return check_output_dir(*args, **kwargs)


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*"))


def test_new_and_empty_folders_pass_and_nothing_is_created(tmp_path):
    assert check_output_dir(tmp_path / "a" / "b", "out") == tmp_path / "a" / "b"
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", "out_dir", fresh=True)
    assert _files(tmp_path) == [tmp_path.joinpath("empty").relative_to(tmp_path)]  # looking created nothing


def test_a_file_or_a_file_on_the_way_is_refused(tmp_path):
    (tmp_path / "f").write_text("mine")
    with pytest.raises(ConfigError, match="is a file, not a folder") as e:
        check_output_dir(tmp_path / "f", "out")
    assert e.value.field == "out"
    with pytest.raises(ConfigError, match="is a file, so .* cannot be created inside it"):
        check_output_dir(tmp_path / "f" / "x" / "y", "out")
    assert (tmp_path / "f").read_text() == "mine"


def test_read_only_folder_is_refused(read_only_dir):
    with pytest.raises(ConfigError, match="read-only file system|not writable") as e:
        check_output_dir(read_only_dir / "run", "out_dir")
    assert e.value.fix == "pass a folder you can write to"


def test_fresh_refuses_a_run_and_a_folder_of_other_files(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text("{}")
    with pytest.raises(ConfigError, match="already holds a run"):
        check_output_dir(tmp_path / "run", "out_dir", fresh=True)
    (tmp_path / "mine").mkdir()
    for name in ("config.json", "a", "b", "c", "d"):
        (tmp_path / "mine" / name).write_text("x")
    with pytest.raises(ConfigError, match=r"other files \(a, b, c, config.json and 1 more\).*never overwrites yours"):
        check_output_dir(tmp_path / "mine", "out_dir", fresh=True)
    check_output_dir(tmp_path / "mine", "out")  # without fresh: writable is enough (report, export)


def test_train_out_into_a_users_folder_keeps_their_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text("the user's own")
    assert main(["train", "--model", "tiny-llama", "--steps", "1", "--quiet", "--out", "mine"]) == 2
    err = capsys.readouterr().err
    assert "error: --out: mine is a folder of other files (config.json)" in err and "Traceback" not in err
    assert (tmp_path / "mine" / "config.json").read_text() == "the user's own"
    assert _files(tmp_path) == [tmp_path.joinpath(p).relative_to(tmp_path) for p in ("mine", "mine/config.json")]


OUT_COMMANDS = [
    ["train", "--model", "tiny-llama", "--steps", "1", "--quiet"],
    ["demo", "--model", "tiny-llama", "--steps", "1", "--quiet"],
    ["repro", "mlp-spectra", "--seeds", "1"],
    ["report", "--storage", "sqlite:///missing.db"],
    ["diagnose", "."],
]


@pytest.mark.parametrize("argv", OUT_COMMANDS, ids=lambda a: a[0])
@pytest.mark.parametrize("where", ["file", "read-only"])
def test_out_that_cannot_be_written_is_refused_before_any_work(argv, where, tmp_path, capsys, monkeypatch, request):
    monkeypatch.chdir(tmp_path)
    if where == "file":
        (tmp_path / "taken").write_text("mine")
        out = "taken"
    else:
        out = str(request.getfixturevalue("read_only_dir") / "out")
    before = _files(tmp_path)
    assert main(argv + ["--out", out]) == 2
    err = capsys.readouterr().err
    assert f"lorascale {argv[0]}: error: --out: " in err and "Traceback" not in err, err
    assert ("is a file, not a folder" if where == "file" else "read-only file system") in err or "not writable" in err
    assert _files(tmp_path) == before  # nothing computed, nothing written
