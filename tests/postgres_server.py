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
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchmarks.postgres_cluster import PostgresServer, find_bin_dir

ENV_REQUIRE_POSTGRES = "FACEATT_REQUIRE_POSTGRES"
# The server itself (initdb, pg_ctl, a free port) is benchmarks/postgres_cluster.py's, which
# the register's benchmark shares.
_bin_dir = find_bin_dir


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
