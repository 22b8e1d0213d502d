"""A throwaway PostgreSQL cluster in a temporary folder, for the register's tests and benchmarks.

``PostgresServer(bin_dir, folder)`` runs ``initdb`` (trust authentication) in ``folder``;
``start`` listens on 127.0.0.1 and a socket in ``folder`` on a free port. PostgreSQL's
programs refuse to run as root, so as root they run as the ``postgres`` user (``runuser``).
``find_bin_dir`` finds the programs (Debian's ``postgresql`` package; ``make postgres``
installs it). The tests' fixtures (``tests/postgres_server.py``) and
``benchmarks/bench_school_register.py`` share this; nothing here imports pytest.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

#: Where Debian's postgresql package puts the server programs (newest version first).
_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (the newest version), or ``None``."""
    for candidate in sorted(glob.glob(_BIN_GLOB), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """A PostgreSQL cluster in ``folder``, listening on 127.0.0.1:``port``.

    ``durable``: keep PostgreSQL's fsync (a real server's commit cost, for benchmarks);
    without it fsync is off, which loses nothing a killed server's OS still holds and
    makes tests faster.
    """

    def __init__(self, bin_dir: Path, folder: Path, *, durable: bool = False) -> None:
        self.bin_dir = bin_dir
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.durable = durable
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

    def _options(self) -> str:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
                   " -c max_connections=200")
        if not self.durable:
            # A commit is still written before it returns (an outage test stops the server
            # at once and then reads what was committed).
            options += " -c fsync=off -c full_page_writes=off"
        return options

    def start(self) -> None:
        """Start the server (again); nothing to do while it runs."""
        if self.running:
            return
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-w", "-t", "60", "-o", self._options(), "start")
        self.running = True

    def stop(self) -> None:
        """Stop the server at once (as a crash or a pulled cable would look to a client)."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self.running = False

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m fast``: every client is disconnected (open transactions roll
        back), the server stops and starts again; returns once it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-w", "-t", "60", "-m", mode, "-o", self._options(), "restart")
        self.running = True

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
