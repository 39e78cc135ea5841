"""Where `tune` writes: a new, empty or tune's own folder; it deletes only the stage folders it wrote."""

import json

import optuna
import pytest

from lorascale.cli import main
from lorascale.errors import ConfigError, ConfigErrors
from lorascale.outputs import OUTPUT_MARKER
from lorascale.tune import TuneRequest, tune
from lorascale.tune.folder import check_tune_dir, is_tune_dir, remove_stage

RUN = dict(model="tiny-llama", data="shakespeare", rank=4, steps=3, batch_size=2, seq_len=32, max_examples=40,
           max_val_batches=1)


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_users_folder_is_refused_and_nothing_in_it_is_deleted(tmp_path):
    """Before, tune accepted any --tune-dir, and a stage's `shutil.rmtree(out / "search")` deleted the user's
    search/important.txt, which tune never wrote."""
    mine = tmp_path / "mine"
    (mine / "search").mkdir(parents=True)
    (mine / "search" / "important.txt").write_text("the user's own")
    before = _tree(mine)
    with pytest.raises(ConfigErrors) as e:
        tune(TuneRequest(**RUN, lr_fft=3e-3, candidates=3, confirm_seeds=1, tune_dir=str(mine)), progress=False)
    assert [x.field for x in e.value.errors] == ["tune_dir"] and "other files (search)" in e.value.errors[0].message
    assert _tree(mine) == before  # nothing deleted, nothing written (no tune.db, no marker)


def test_inside_tunes_own_folder_a_stage_folder_of_other_files_is_kept(tmp_path):
    ours = tmp_path / "t"
    ours.mkdir()
    (ours / OUTPUT_MARKER).write_text(json.dumps({"command": "tune"}))
    (ours / "search").mkdir()
    (ours / "search" / "important.txt").write_text("the user's own")
    with pytest.raises(ConfigError) as e:
        check_tune_dir(ours)
    assert e.value.field == "tune_dir" and "important.txt" in e.value.message and "`tune_dir`" in e.value.fix
    with pytest.raises(ConfigError):  # the stage's own guard, should a stage ever meet one
        remove_stage(ours / "search")
    assert (ours / "search" / "important.txt").read_text() == "the user's own"


def test_an_interrupted_stages_run_folders_are_removed(tmp_path):
    stage = tmp_path / "search"
    (stage / "pack0" / "candidate00").mkdir(parents=True)
    (stage / "pack0" / "candidate00" / "summary.json").write_text("{}")
    (stage / "candidate01").mkdir()  # a method that trains alone names its runs so
    remove_stage(stage)
    assert not stage.exists()
    remove_stage(stage)  # none: nothing to do


def test_a_tune_folder_is_known_by_its_marker_or_by_tunes_studies_in_tune_db(tmp_path):
    assert not is_tune_dir(tmp_path)
    (tmp_path / OUTPUT_MARKER).write_text(json.dumps({"command": "export"}))
    assert not is_tune_dir(tmp_path)  # another command's folder
    old = tmp_path / "old"  # written by tune before the marker existed
    old.mkdir()
    url = f"sqlite:///{old / 'tune.db'}"
    optuna.create_study(study_name="a-sweep", storage=url)
    assert not is_tune_dir(old)  # some other Optuna storage named tune.db
    optuna.create_study(study_name="tune-search", storage=url)
    assert is_tune_dir(old)
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "tune.db").write_text("not sqlite")
    assert not is_tune_dir(tmp_path / "garbage")


def test_tune_marks_its_folder_and_resumes_in_it(tmp_path, one_thread):
    req = TuneRequest(**RUN, lr_fft=3e-3, candidates=3, confirm_seeds=1, tune_dir=str(tmp_path / "t"))
    first = tune(req, progress=False)
    assert json.loads((tmp_path / "t" / OUTPUT_MARKER).read_text()) == {"command": "tune"}
    again = tune(req, progress=False)  # its own folder, not "a folder of other files"
    assert again.search.to_dict() == first.search.to_dict()


def test_cli_reports_the_folder_and_storage_with_the_flags(tmp_path, capsys, monkeypatch):
    """Before, `--rank 0 --tune-dir afile/x --storage garbage://x` took three runs to hear of all three."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    assert main(["tune", "--rank", "0", "--tune-dir", "afile/x", "--storage", "garbage://x"]) == 2
    err = capsys.readouterr().err
    assert [line.split(":")[1].strip() for line in err.splitlines()] == ["error"] * 3
    assert "error: --rank:" in err and "afile is a file, so afile/x cannot be created" in err
    assert "error: --storage: 'garbage://x' is not a database URL" in err
    # valid flags: the folder, the storage and the data at once, still before anything is stored
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    assert main(["tune", "--model", "tiny-llama", "--steps", "2", "--data", "nosuch", "--tune-dir", "mine",
                 "--storage", "garbage://x"]) == 2
    err = capsys.readouterr().err
    assert "error: --tune-dir: mine is a folder of other files" in err and "error: --storage:" in err
    assert "error: --data: unknown dataset 'nosuch'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "mine"] and _tree(mine) == {"notes.txt": b"x"}
