"""A real PostgreSQL 15 on loopback for the Postgres retrieval tests.

Debian's packages (`apt-get install postgresql-15`, binaries in
/usr/lib/postgresql/15/bin, or the directory BOREALIS_PG_BINDIR names): `initdb` into a
fresh temporary directory, `pg_ctl start` on 127.0.0.1 and a free port, with the unix
socket in that directory too, so nothing is shared with a system cluster. PostgreSQL
refuses to run as root, and the tests run as root here: then the server runs as the
`postgres` user (`runuser -u postgres --`), in a directory it owns.

Fixtures (import them into a test module):
- `postgres_server`: one server for the session (a `PostgresServer`), stopped at its end.
- `postgres_dsn`: its connection string, `postgresql://postgres@127.0.0.1:PORT/postgres`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require
from llama_server_support import free_port

BINDIR = Path(os.environ.get("BOREALIS_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
# initdb and a first start take a few seconds; a server that takes longer is broken.
START_TIMEOUT_S = 60


class PostgresServer:
    """One throwaway cluster: trust authentication, loopback only, UTF-8."""

    def __init__(self, bindir: Path = BINDIR):
        self.bindir = bindir
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.root = Path(tempfile.mkdtemp(prefix="borealis-pg-"))
        self.data = self.root / "data"
        self.log_file = self.root / "server.log"
        # As root, the cluster belongs to `postgres`; otherwise to whoever runs the tests.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, user="postgres", group=pwd.getpwnam("postgres").pw_gid)

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._as, str(self.bindir / tool), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({result.returncode}): {result.stderr.strip()}\n{self.log()}"
            )

    def start(self) -> PostgresServer:
        self._run(
            "initdb",
            "--pgdata", str(self.data),
            "--username", "postgres",
            "--auth", "trust",
            "--encoding", "UTF8",
            "--locale", "C.UTF-8",  # a UTF-8 ctype: æ, ø and å are letters to the parser
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
        self._run(
            "pg_ctl", "start", "--wait", "--timeout", str(START_TIMEOUT_S),
            "--pgdata", str(self.data), "--log", str(self.log_file), "-o", options,
        )  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop the server (fast: open sessions are cut) and delete its files."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "--wait", "--mode", "fast", "--pgdata", str(self.data))
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def find_postgres() -> str:
    """Why a server cannot be started (or spoken to) here; '' when it can."""
    try:
        import psycopg  # noqa: F401 - the driver the retriever and the tests use
    except ImportError:
        return "psycopg 3 is not installed (pip install 'psycopg[binary]')"
    if not (BINDIR / "initdb").is_file() or not (BINDIR / "pg_ctl").is_file():
        return (
            f"PostgreSQL 15 is not installed (no initdb in {BINDIR}): "
            "apt-get install postgresql-15, or set BOREALIS_PG_BINDIR"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no `postgres` user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root, and runuser (util-linux) is missing"
    return ""


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    why_not = find_postgres()
    require(not why_not, why_not)
    server = PostgresServer()
    try:
        server.start()
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        server.stop()
        require(False, f"PostgreSQL did not start: {error}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server) -> str:
    return postgres_server.dsn
