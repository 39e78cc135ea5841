"""Optuna storages for sweep storage URLs, opened to read, to write, or to create.

URLs: ``sqlite:///path.db`` (the default, next to the spec), ``journal:path.log`` (Optuna's journal
file) or any SQLAlchemy server URL such as ``postgresql://user@host/db``.

* ``read`` (``lorascale fit``/``report``, dry runs) never creates or changes anything: the file must
  exist, be non-empty and hold Optuna's tables (checked through sqlite3 in read-only URI mode before
  Optuna sees it), and SQLite is then opened ``mode=ro``, so even Optuna cannot write to it.
* ``write`` (workers) needs an existing study; ``create`` (``lorascale sweep``) may make the file.
  Creating a file takes an exclusive lock on its directory, so two sweeps started at once on a file
  that does not exist yet do not both run Optuna's check-then-create of its tables (one crashed with
  ``table studies already exists`` or ``UNIQUE constraint failed: alembic_version``); every other
  open takes the lock shared, so nobody mistakes a file being created for an empty one.
* An existing empty file, or a file SQLite cannot read, is a :class:`ConfigError` naming the file,
  never a silent new sweep or a chain of driver tracebacks.

RDB storages written by workers carry Optuna's heartbeat (``heartbeat_interval``, ``grace_period``,
``heartbeat_stale_trial_callback``); the journal backend has none, see :mod:`.liveness`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Callable, Literal, NamedTuple

from ..errors import ConfigError, StorageMissing

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent first creation is then not guarded
    fcntl = None

__all__ = ["Access", "Backend", "open_storage", "storage_lock", "readonly_uri", "sqlite_tables", "release_sqlite"]

log = logging.getLogger(__name__)

Access = Literal["read", "write", "create"]
OPTUNA_TABLES = frozenset({"studies", "trials", "version_info", "alembic_version"})
SQLITE_BUSY_S = 60  # wait this long for other workers' writes


class Backend(NamedTuple):
    storage: object  # an optuna BaseStorage: RDBStorage or JournalStorage
    kind: Literal["sqlite", "journal", "server"]
    path: Path | None  # the file of sqlite and journal storages
    access: Access


def local_path(url: str) -> tuple[str, Path | None]:
    """(kind, file) of a storage URL; raises ConfigError for a string that is not one."""
    if url.startswith("journal:"):
        return "journal", Path(url[len("journal:"):].removeprefix("//"))
    if _in_memory(url):
        raise ConfigError("storage", f"{url!r} is an in-memory database, gone when the process ends: no sweep, report"
                          " or resume could read it", "use a file, e.g. sqlite:///sweep.db")
    if url.startswith("sqlite:///"):
        return "sqlite", Path(url[len("sqlite:///"):])
    if "://" not in url:
        raise ConfigError("storage", f"{url!r} is not a storage URL", "use sqlite:///FILE.db, journal:FILE.log or a"
                          " database URL such as postgresql://user@host/db")
    return "server", None


def _in_memory(url: str) -> bool:
    """SQLite's in-memory forms (SQLAlchemy's ``sqlite://``, ``:memory:``, a ``mode=memory`` URI), any driver."""
    if not url.startswith("sqlite"):
        return False
    from sqlalchemy.engine.url import make_url

    try:
        u = make_url(url)
    except Exception:  # not a URL: local_path's other checks name it
        return False
    db = u.database or ""
    return db in ("", ":memory:") or db.startswith("file::memory:") or "mode=memory" in db or u.query.get("mode") == "memory"


def check_url(url: str) -> None:
    """What creating or opening ``url`` would refuse, found by looking only: nothing is created or opened."""
    from ..outputs import check_output_dir

    kind, path = local_path(url)
    if path is None:
        _check_dialect(url)
        return
    if path.exists():
        _check_file(path, kind, "create")
    else:
        check_output_dir(path.parent, "storage", what="storage file")


def _check_dialect(url: str) -> None:
    """A server URL whose database kind SQLAlchemy knows (its dialect loads; nothing connects)."""
    from sqlalchemy.engine.url import make_url

    try:
        dialect = make_url(url).get_dialect()
    except Exception as e:  # ArgumentError (not a URL), NoSuchModuleError (no such database kind), ...
        raise ConfigError("storage", f"{url!r} is not a database URL SQLAlchemy can open ({_first_line(e)})",
                          "use sqlite:///FILE.db, journal:FILE.log or a database URL such as postgresql://user@host/db") from None
    try:  # the driver module itself: imported, nothing connects (SQLAlchemy < 2 names it dbapi)
        (getattr(dialect, "import_dbapi", None) or dialect.dbapi)()
    except ImportError as e:
        raise ConfigError("storage", f"{url!r} needs the database driver {dialect.driver!r}, which is not installed"
                          f" ({_first_line(e)})", f"install it on every machine of the sweep (e.g. pip install"
                          f" {_DRIVER_PACKAGES.get(dialect.driver, dialect.driver)})") from None


@contextlib.contextmanager
def storage_lock(url: str, access: Access):
    """Hold the storage file's directory lock: exclusive to create, shared otherwise (no-op for servers)."""
    _, path = local_path(url)
    if fcntl is None or path is None or not path.parent.is_dir():
        yield
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if access == "create" else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def open_storage(url: str, access: Access = "read", *, heartbeat_s: float | None = None, grace_s: float | None = None,
                 on_stale: Callable | None = None) -> Backend:
    """An Optuna storage for ``url``; call under :func:`storage_lock` when ``access`` is "create".

    ``heartbeat_s``/``grace_s``/``on_stale`` switch on Optuna's heartbeat for RDB storages (written
    by workers): a RUNNING trial silent for ``grace_s`` is failed by ``fail_stale_trials``.
    """
    kind, path = local_path(url)
    if path is not None:
        _check_file(path, kind, access)
    if kind == "journal":
        return Backend(_journal(path, url), kind, path, access)
    import optuna

    kwargs: dict = {}
    if heartbeat_s is not None and access != "read":
        kwargs = dict(heartbeat_interval=max(1, round(heartbeat_s)), grace_period=max(1, round(grace_s or 2 * heartbeat_s)),
                      heartbeat_stale_trial_callback=on_stale)
    if kind == "sqlite" and access == "read":
        # a read-only URI makes the driver itself refuse writes; Optuna's tables were checked above
        uri = readonly_uri(path)
        engine = {"creator": lambda: sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_S, check_same_thread=False)}
    else:
        engine = {"connect_args": {"timeout": SQLITE_BUSY_S}} if kind == "sqlite" else {}
    try:
        with _quiet_experimental():
            rdb = optuna.storages.RDBStorage(url, engine_kwargs=engine, skip_table_creation=access == "read", **kwargs)
    except Exception as e:  # SQLAlchemy raises many kinds: bad dialect, unreachable server, damaged file, ...
        raise ConfigError("storage", f"cannot open {path or url}: {_first_line(e)}",
                          "check the path or database URL (sqlite:///file.db, postgresql://…) and that the server is up") from None
    if kind == "sqlite" and access != "read":
        _sqlite_setup(rdb.engine)
    return Backend(rdb, kind, path, access)


def readonly_uri(path: Path) -> str:
    """A ``file:`` URI that opens ``path`` without writing anything, the directory included.

    ``mode=ro``; and ``immutable=1`` for a WAL-mode file with no ``-wal`` beside it (no writer, every
    trial in the one file), since SQLite would otherwise create ``-wal``/``-shm`` files next to it
    and cannot open it at all from read-only media.
    """
    wal = not Path(f"{path}-wal").exists() and _header(path)[18:19] == b"\x02"  # file-format version 2 = WAL
    return f"{path.resolve().as_uri()}?mode=ro" + ("&immutable=1" if wal else "")


def _header(path: Path) -> bytes:
    """The file's first 20 bytes, read by a child process.

    Never with ``open()`` in this process: closing any descriptor of a file drops every POSIX lock the
    process holds on it, SQLite's included (SQLite shields only its own descriptors). A writer that read
    a header that way lost its shared lock; the next reader process to close its connection believed
    itself the last one, checkpointed and unlinked the writer's ``-wal``, and later commits went to an
    unlinked file no other process could see.
    """
    code = "import sys; sys.stdout.buffer.write(open(sys.argv[1], 'rb').read(20))"
    return subprocess.run([sys.executable, "-I", "-S", "-c", code, str(path)], capture_output=True, check=False).stdout


def sqlite_tables(path: Path) -> set[str]:
    """Table names of a SQLite file, read through :func:`readonly_uri` (never creates or changes anything).

    Raises ConfigError naming the file when SQLite cannot read it (not a database, damaged pages).
    """
    try:
        con = sqlite3.connect(readonly_uri(path), uri=True, timeout=SQLITE_BUSY_S)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            problems = [r[0] for r in con.execute("PRAGMA quick_check")]
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise ConfigError("storage", f"{path} cannot be read as a SQLite database ({e})",
                          "restore it from a backup, or use the file `lorascale sweep` wrote") from None
    if problems != ["ok"]:
        raise ConfigError("storage", f"{path} is damaged: SQLite reports {'; '.join(problems[:3])}",
                          "restore it from a backup; `sqlite3 FILE .recover` may salvage the finished trials")
    return tables


def release_sqlite(backend: Backend) -> None:
    """Leave a written SQLite file self-contained: checkpoint the WAL and return to journal_mode=DELETE.

    Then the one file holds every trial and opens from read-only media. If another process still
    has the file open, the switch waits for it: the last writer to finish makes it.
    """
    if backend.kind != "sqlite" or backend.access == "read":
        return
    backend.storage.engine.dispose()  # our pooled connections would keep WAL mode alive
    con = sqlite3.connect(backend.path, timeout=0.1)  # the last one out meets no other connection
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        mode = con.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
    except sqlite3.OperationalError as e:  # "database is locked": another worker still writes
        mode = f"wal ({e})"
    finally:
        con.close()
    if mode != "delete":
        log.debug("%s stays in WAL mode while another process uses it: %s", backend.path, mode)


# --------------------------------------------------------------------------------------------


def _check_file(path: Path, kind: str, access: Access) -> None:
    if path.is_dir():
        raise ConfigError("storage", f"{path} is a folder, not a storage file", "name a file, e.g. sqlite:///sweep.db")
    if not path.exists():
        if access != "create":
            raise StorageMissing("storage", f"{path} does not exist", "run `lorascale sweep` first")
        return
    if path.stat().st_size == 0:
        raise ConfigError("storage", f"{path} is empty (0 bytes) where a sweep study was expected",
                          "restore it from a backup, or delete it to start the sweep afresh")
    if kind == "journal":
        _check_journal(path)
    if kind != "sqlite":
        return
    tables = sqlite_tables(path)
    if not OPTUNA_TABLES <= tables:
        if access == "create" and not tables:
            return  # a valid but empty database: Optuna may create its tables in it
        held = f"it holds {', '.join(sorted(tables))}" if tables else "it holds no tables"
        raise StorageMissing("storage", f"{path} is not sweep storage: {held} but not Optuna's",
                             "use the file `lorascale sweep` wrote")


_DRIVER_PACKAGES = {"psycopg2": "psycopg2-binary", "psycopg": "'psycopg[binary]'", "mysqldb": "mysqlclient",
                    "mysqlconnector": "mysql-connector-python", "mariadbconnector": "mariadb"}
"""pip's name for SQLAlchemy's default drivers where it differs from the module's."""


def _check_journal(path: Path) -> None:
    """A file that is not an Optuna journal is refused, not read as an empty one and appended to: the
    journal's first line is a JSON operation record (``op_code``), as Optuna's ``JournalFileBackend`` writes."""
    with path.open("rb") as f:
        first = f.readline(1 << 20)
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    if not (isinstance(record, dict) and "op_code" in record):
        torn = not first.endswith(b"\n") and first.startswith(b'{"op_code"')  # Optuna stopped mid-way through it
        raise ConfigError("storage", f"{path} is not an Optuna journal: its first line is not a journal record"
                          + (" (the first record was cut off as it was written)" if torn else ""),
                          "delete it to start the sweep afresh (it holds nothing yet)" if torn else
                          "name the journal `lorascale sweep` wrote, or a new file (journal:FILE.log)")


def _journal(path: Path, url: str):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except Exception as e:  # a damaged log fails while Optuna replays it
        raise ConfigError("storage", f"cannot read the journal {path}: {_first_line(e)}",
                          "restore it from a backup") from None


def _sqlite_setup(engine) -> None:
    """Make SQLite's transactions serializable, and cheap.

    * Python's sqlite3 driver runs a SELECT outside any transaction and opens one only at the next
      write, so two processes can both read a trial as WAITING and both move it to RUNNING (we
      measured 1–6 double claims in 60 with 4 processes). Every transaction here starts with
      ``BEGIN IMMEDIATE`` instead (SQLAlchemy's recipe for pysqlite), so a read-then-write such as a
      claim holds the write lock throughout; others wait up to the 60 s busy timeout.
    * WAL journal with synchronous=NORMAL while workers write: a commit costs ~1 ms instead of an
      fsync (~20 ms). Safe against a crashed process; a power cut may lose the last commits.
      :func:`release_sqlite` returns the file to journal_mode=DELETE when the sweep ends.
    """
    from sqlalchemy import event

    def on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # the driver stops issuing its own BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    def on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    engine.dispose()  # connections opened while Optuna created its tables predate the listeners


@contextlib.contextmanager
def _quiet_experimental():
    """Optuna marks its heartbeat arguments experimental; they are what we want, so no warning."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
