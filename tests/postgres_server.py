"""A throwaway PostgreSQL server for the register tests, and the register on both stores.

``postgres`` starts one PostgreSQL cluster per test session in a temporary folder (trust
authentication, 127.0.0.1 and a socket folder, a free port) and stops it at the end. Its
``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres``
user (``runuser``). Without the binaries (``make postgres`` installs them) the tests that
need it skip, unless ``FACEATT_REQUIRE_POSTGRES=1`` (CI) makes that a failure.

``register_store`` is parametrised: every test using it (or ``book``) runs once on a
SQLite file and once on a fresh PostgreSQL database of its own.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ENV_REQUIRE_POSTGRES = "FACEATT_REQUIRE_POSTGRES"
#: Where Debian's postgresql package puts the server programs (newest version first).
_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def _bin_dir() -> Path | None:
    for candidate in sorted(glob.glob(_BIN_GLOB), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """A PostgreSQL cluster in ``folder``, listening on 127.0.0.1:``port``."""

    def __init__(self, bin_dir: Path, folder: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = folder
        self.data = folder / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        self.running = False
        if self._as_postgres:
            shutil.chown(folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-locale", "--no-sync")

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True,
                              timeout=120, check=False)
        if done.returncode != 0:
            log = (self.folder / "server.log")
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}"
                               + (f"\n{log.read_text()[-2000:]}" if log.exists() else ""))

    def start(self) -> None:
        """Start the server (again); nothing to do while it runs."""
        if self.running:
            return
        # fsync off: a killed server loses nothing the OS holds, and tests go faster. A
        # commit is still written before it returns (an outage test stops the server at
        # once and then reads what was committed).
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
                   " -c fsync=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-w", "-t", "60", "-o", options, "start")
        self.running = True

    def stop(self) -> None:
        """Stop the server at once (as a crash or a pulled cable would look to a client)."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.running = False

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _require_postgres() -> bool:
    return os.environ.get(ENV_REQUIRE_POSTGRES, "") not in ("", "0")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the test session (skips without PostgreSQL)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        reason = ("PostgreSQL is not installed (no initdb/pg_ctl; `make postgres` installs "
                  "it): the register's PostgreSQL tests skip")
        if _require_postgres():
            pytest.fail(f"{reason} ({ENV_REQUIRE_POSTGRES}=1 makes this a failure)")
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="faceatt-pg-"))
    try:
        server = PostgresServer(bin_dir, folder)
        server.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        shutil.rmtree(folder, ignore_errors=True)
        reason = f"a throwaway PostgreSQL server could not start: {error}"
        if _require_postgres():
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield server
    finally:
        with contextlib.suppress(RuntimeError):  # already stopped
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh database on the session's server, dropped after the test."""
    url = postgres.create_database()
    yield url
    # A test that stopped the server leaves it to the end: the whole cluster goes then.
    with contextlib.suppress(Exception):
        postgres.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def register_store(request, tmp_path) -> Iterator[Callable[[], object]]:
    """``open_book()``: a new book on this test's store (every call the same store, as two
    app instances would see it): a SQLite file, then a PostgreSQL database."""
    from model.school.attendance import AttendanceBook

    opened: list[object] = []
    if request.param == "sqlite":
        def open_book() -> object:
            book = AttendanceBook(tmp_path / "sub" / "attendance.sqlite3")
            opened.append(book)
            return book
    else:
        from model.school.attendance_pg import PostgresBook

        url = request.getfixturevalue("postgres_url")

        def open_book() -> object:
            book = PostgresBook(url, outbox=tmp_path / f"outbox{len(opened)}.sqlite3",
                                pool_size=4, offline_retry_s=0.0, connect_timeout_s=2.0)
            opened.append(book)
            return book
    yield open_book
    for book in opened:
        book.close()  # type: ignore[attr-defined]


@pytest.fixture
def book(register_store):
    """The register on this test's store (SQLite, then PostgreSQL)."""
    return register_store()
