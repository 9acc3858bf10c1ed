"""A private PostgreSQL server in a directory, on a free port, for the chaos suite (``make chaos``).

Debian's server binaries (package ``postgresql``, installed by ``make postgres``) run a throw-away cluster: no
system service, no password (``trust`` on 127.0.0.1 only), gone with the directory. PostgreSQL refuses to run as
root, so as root (a CI container) the cluster belongs to the ``postgres`` user the Debian package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

SUPERUSER = "gpuflow"


class PostgresError(RuntimeError):
    """The server could not be found, set up or started."""


def server_bin() -> Path:
    """The newest installed major version's binaries (``/usr/lib/postgresql/<major>/bin``)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[-3]))
    if not found:
        raise PostgresError("PostgreSQL's server is not installed: run `make postgres` (Debian package postgresql)")
    return Path(found[-1]).parent


class LocalPostgres:
    """``with LocalPostgres(port) as server: url = server.database("airflow")``; a directory of its own under the
    system's temp dir (the ``postgres`` user must reach it), removed when the server stops."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bin = server_bin()
        self.directory = Path(tempfile.mkdtemp(prefix="gpuflow-postgres-"))
        self.data = self.directory / "data"

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections (``pg_ctl -w``)."""
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.directory / "server.log"), "-o", options, "-w", "start"
        )

    def database(self, name: str) -> str:
        """Create a database; returns its SQLAlchemy URL (psycopg2 driver)."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name)
        return f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*as_owner, str(self.bin / tool), *args], capture_output=True, text=True, check=False, cwd=self.directory
        )
        if done.returncode != 0:
            log = self.directory / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresError(f"{tool} failed ({done.returncode}): {done.stdout[-1000:]}{done.stderr[-1000:]}{tail}")
