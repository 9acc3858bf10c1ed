"""The state schema is made once, under a lock, however many processes open a fresh database at once."""

from __future__ import annotations

import fcntl
import multiprocessing
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path

from gpuflow.core.request import Block
from gpuflow.state.schema import migrate
from gpuflow.state.store import BlockStore, engine_for
from gpuflow.state.tables import metadata

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
FIRST_USERS = 8


def _first_use(url: str, worker: int, start: Barrier) -> None:
    start.wait(timeout=60)
    block = Block("aws", region=f"r{worker}", expires_at=NOW + timedelta(hours=1))
    BlockStore(url).record([block], recorded_by=f"run-{worker}", now=NOW)


def test_many_first_users_at_once_make_each_table_once_without_an_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(FIRST_USERS)
    workers = [context.Process(target=_first_use, args=(url, w, start)) for w in range(FIRST_USERS)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [p.exitcode for p in workers] == [0] * FIRST_USERS
    with sqlite3.connect(tmp_path / "state.db") as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert sorted(tables) == sorted(metadata.tables)
    assert {b.region for b in BlockStore(url).active(NOW)} == {f"r{w}" for w in range(FIRST_USERS)}


def test_a_first_user_waits_while_another_process_holds_the_migration_lock(tmp_path: Path) -> None:
    database = tmp_path / "state.db"
    opener = [sys.executable, "-c", f"from gpuflow.state.store import BlockStore; BlockStore('sqlite:///{database}')"]
    with (tmp_path / "state.db.migrate-lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        waiting = subprocess.Popen(opener)
        time.sleep(3)  # long enough to import and reach the lock on a busy machine
        assert waiting.poll() is None, "the store migrated without the lock"
        assert not database.exists() or not _tables(database)
        fcntl.flock(lock, fcntl.LOCK_UN)
    assert waiting.wait(timeout=60) == 0
    assert sorted(_tables(database)) == sorted(metadata.tables)


def test_a_second_migration_changes_nothing(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'state.db'}")
    assert "table gpuflow_costs" in migrate(engine)
    assert migrate(engine) == []


def test_state_migrate_makes_the_tables_then_finds_them_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    first = _cli("state-migrate", "--url", url)
    assert first.returncode == 0, first.stderr
    assert "created table gpuflow_blocks" in first.stdout
    again = _cli("state-migrate", "--url", url)
    assert (again.returncode, again.stdout.strip()) == (0, f"state database {url}: up to date")


def test_state_migrate_adds_a_column_an_older_gpuflow_lacked(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE gpuflow_runs (run_key VARCHAR(64) PRIMARY KEY, known_since DATETIME NOT NULL)")
    done = _cli("state-migrate", "--url", f"sqlite:///{path}")
    assert done.returncode == 0, done.stderr
    assert "column gpuflow_runs.dag_id" in done.stdout


def test_state_migrate_names_the_setting_and_the_fix_for_a_database_it_cannot_lock(tmp_path: Path) -> None:
    done = _cli("state-migrate", "--url", f"sqlite:///{tmp_path / 'missing' / 'state.db'}")
    assert done.returncode == 6
    assert "GPUFLOW_STATE_URL" in done.stderr
    assert "create its directory" in done.stderr


def _tables(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gpuflow", *args], capture_output=True, text=True, check=False)
