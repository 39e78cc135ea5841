"""Opening storage: reads change nothing, creation is safe under concurrency, damage is one clear error,
and a finished SQLite file is self-contained (issue #14's storage items)."""

import multiprocessing as mp
import re
import sqlite3

import pytest
import sweep_fakes as F

from lorascale.cli import main
from lorascale.errors import ConfigError, StorageMissing
from lorascale.sweep.executors import run_sweep
from lorascale.sweep.storage import SweepStore


def listing(d):
    return {p.name: p.read_bytes() for p in d.iterdir()}


def test_reading_never_creates_or_changes_a_file(tmp_path, capsys):
    """`fit`/`report` used to write Optuna's tables into any SQLite file before refusing (an unrelated
    8 KB database grew to 118 KB; a 0-byte file became 114 KB)."""
    other = tmp_path / "notes.db"
    con = sqlite3.connect(other)
    with con:
        con.execute("CREATE TABLE notes (text TEXT)")
        con.execute("INSERT INTO notes VALUES ('keep me')")
    con.close()
    (tmp_path / "empty.db").write_bytes(b"")
    before = listing(tmp_path)
    for name, why in (("notes.db", "not sweep storage: it holds notes"), ("empty.db", "is empty (0 bytes)"),
                      ("none.db", "does not exist")):
        url = f"sqlite:///{tmp_path / name}"
        assert main(["fit", "--storage", url]) == 2
        assert main(["report", "--storage", url, "--study", "s", "--out", str(tmp_path / "rep")]) == 2
        err = capsys.readouterr().err
        assert err.count(why) == 2 and err.count("--storage") == 2, err
        with pytest.raises(ConfigError, match=re.escape(why)):
            SweepStore.open(url, "s")
    assert listing(tmp_path) == before  # not a byte changed, no -wal/-shm/-journal file, no new file
    with pytest.raises(StorageMissing, match="does not exist"):
        SweepStore.open(f"journal:{tmp_path / 'none.log'}", "s")
    assert listing(tmp_path) == before


def test_sweeps_creating_one_storage_at_once_all_succeed(storage_url, tmp_path):
    """Four processes create the same missing storage at one instant. Without the directory lock,
    3 of 4 such runs had a process fail with `table ... already exists` or `UNIQUE constraint failed:
    alembic_version.version_num`."""
    out, barrier = tmp_path / "opened.txt", str(tmp_path / "barrier")  # released together once all 4 have imported
    procs = [mp.get_context("spawn").Process(target=F.open_at, args=(storage_url, "t", str(out), barrier, 4))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert out.read_text().splitlines() == ["ok"] * 4
    assert SweepStore.open(storage_url, "t").name == "t"


def test_an_empty_storage_file_is_an_error_not_a_new_sweep(storage_url, tmp_path):
    """A storage file truncated to 0 bytes used to make `sweep` silently start over."""
    path = tmp_path / ("sweep.db" if storage_url.startswith("sqlite") else "sweep.log")
    path.write_bytes(b"")
    spec = F.small_spec(ranks=(4,), lrs=(-10,))
    with pytest.raises(ConfigError, match=r"sweep\.(db|log) is empty \(0 bytes\) where a sweep study was expected") as e:
        run_sweep(spec, storage_url, objective=F.objective, progress=False)
    assert e.value.field == "storage" and "backup" in e.value.fix
    assert path.stat().st_size == 0


def test_a_damaged_sqlite_file_is_one_error_naming_it(tmp_path):
    """Damaged pages used to surface as chained driver tracebacks, some only once trials were read."""
    db = tmp_path / "sweep.db"
    url = f"sqlite:///{db}"
    F.populate(url, F.small_spec(ranks=(4, 16), lrs=list(range(-14, -6))))
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) >= 8 * page  # enough pages that the damage misses the schema on page 1
    data[len(data) // 2: len(data) // 2 + 2 * page] = b"\xab" * (2 * page)
    db.write_bytes(bytes(data))
    for access in ("read", "create"):
        with pytest.raises(ConfigError, match=f"{db} (is damaged|cannot be read as a SQLite database)") as e:
            SweepStore.open(url, "t", access)
        assert e.value.__cause__ is None and e.value.__suppress_context__  # one error, no chain
    db.write_text("name,loss\na,1\n")  # not a database at all
    with pytest.raises(ConfigError, match=f"{db} cannot be read as a SQLite database .file is not a database"):
        SweepStore.open(url, "t")


@pytest.mark.parametrize("text", ["name,loss\n", "name,loss", "name,loss\na,1\nb,2\n", '{"a": 1}\n'])
def test_a_file_that_is_not_a_journal_is_refused_and_left_as_it_was(tmp_path, text):
    """A one-line file (no newline: Optuna skips a torn last line) was read as an empty journal, and a sweep
    would have appended its trials to the user's file; longer ones failed on Optuna's internal 'op_code'."""
    log = tmp_path / "notes.log"
    log.write_text(text)
    spec = F.small_spec(ranks=(4,), lrs=(-10,))
    with pytest.raises(ConfigError) as e:
        run_sweep(spec, f"journal:{log}", objective=F.objective, progress=False)
    assert (e.value.field, e.value.message) == ("storage", f"{log} is not an Optuna journal: its first line is not a"
                                                           " journal record")
    assert log.read_text() == text


def test_a_journal_whose_first_write_was_cut_off_says_so(tmp_path):
    """Optuna skips a torn last line and its next append would join onto it: refused, and the fix is to delete
    the file (its only record, the study's creation, never landed), not to look for another journal."""
    log = tmp_path / "sweep.log"
    log.write_text('{"op_code":0,"worker_id":"ab')
    with pytest.raises(ConfigError) as e:
        run_sweep(F.small_spec(ranks=(4,), lrs=(-10,)), f"journal:{log}", objective=F.objective, progress=False)
    assert e.value.message.endswith("(the first record was cut off as it was written)")
    assert e.value.fix == "delete it to start the sweep afresh (it holds nothing yet)"


def test_a_journal_sweep_wrote_still_opens(tmp_path):
    url = f"journal:{tmp_path / 'sweep.log'}"
    store = F.populate(url, F.small_spec(ranks=(4,), lrs=(-10, -9)))
    assert len(store.trials()) == 2
    assert len(SweepStore.open(url, "t").trials()) == 2  # opened again: the journal check passes its own file


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite+pysqlite://", "sqlite:///:memory:?cache=shared",
                                 "sqlite:///file:m?mode=memory&uri=true"])
def test_an_in_memory_database_is_refused(url):
    """It vanished with the process: `sqlite://` surfaced as Optuna's commit error, `sqlite:///:memory:`
    would have created a file named ':memory:'."""
    from lorascale.sweep.backends import check_url

    with pytest.raises(ConfigError) as e:
        check_url(url)
    assert e.value.field == "storage" and "in-memory" in e.value.message and e.value.fix == "use a file, e.g. sqlite:///sweep.db"


def test_a_server_url_without_its_driver_names_the_package_to_install(monkeypatch):
    """Checked by importing the driver module SQLAlchemy would use, with nothing connecting; the fix is the
    install, not "check the server is up". The driver is made missing here, whatever this machine has."""
    import builtins

    from lorascale.sweep.backends import check_url

    real = builtins.__import__

    def no_driver(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] in ("psycopg", "psycopg2"):  # not SQLAlchemy's own `.psycopg` dialect
            raise ImportError(f"No module named {name!r}")
        return real(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_driver)
    with pytest.raises(ConfigError) as e:
        check_url("postgresql://user@db.example/sweeps")
    assert e.value.field == "storage" and "needs the database driver" in e.value.message
    assert re.fullmatch(r"install it on every machine of the sweep \(e\.g\. pip install (psycopg2-binary|'psycopg\[binary\]')\)",
                        e.value.fix)


def test_a_finished_sweep_reads_from_read_only_media(tmp_path):
    """A finished study was left in WAL mode: its trials partly in sweep.db-wal, and SQLite needing
    to create sweep.db-shm even to read it, which read-only media refuse."""
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    spec = F.small_spec(ranks=(4,), lrs=(-12, -11, -10))
    run_sweep(spec, url, objective=F.objective, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.db"]  # no -wal/-shm left beside it
    media = tmp_path / "media"
    media.mkdir()
    (media / "sweep.db").write_bytes((tmp_path / "sweep.db").read_bytes())  # the one file, as copied to a DVD
    con = sqlite3.connect(f"{(media / 'sweep.db').as_uri()}?mode=ro", uri=True)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0] == 3
    con.close()
    assert sorted(p.name for p in media.iterdir()) == ["sweep.db"]  # reading created nothing


def test_the_last_writer_out_leaves_wal_mode(tmp_path):
    """While another process (here: store) still has the file open, closing one store keeps WAL."""
    db = tmp_path / "sweep.db"
    first = SweepStore.open(f"sqlite:///{db}", "t", "create")
    second = SweepStore.open(f"sqlite:///{db}", "t", "write")
    second.enqueue([(p.key, p.attrs(), p.train.to_dict()) for p in F.small_spec(ranks=(4,), lrs=(-10,)).points])
    first.trials()  # first holds a pooled connection
    second.close()
    assert db.read_bytes()[18] == 2  # file format byte 18: 2 = WAL, 1 = rollback journal
    first.close()
    assert db.read_bytes()[18] == 1
