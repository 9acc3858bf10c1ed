"""Bringing the state database up to ``gpuflow.state.tables``, once and never racing.

Every store used to run ``create_all`` on first use, so two first users at once both found a table missing and
the second one's CREATE failed (``table gpuflow_blocks already exists``). The migration now runs under a lock
that serializes migrators across processes: PostgreSQL's ``pg_advisory_xact_lock`` (released with the
transaction) or, for a SQLite file, an exclusive ``flock`` on a file beside it. Whoever gets the lock second finds
the schema current and changes nothing.

``python -m gpuflow state-migrate`` runs it before anything else starts (``make demo``, the test harness, the
compose ``airflow-init``); a store on a database nobody migrated yet migrates it itself, once per process and URL,
under the same lock.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Column, func, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from gpuflow.core.errors import GpuflowError
from gpuflow.core.settings import STATE_URL_ENV
from gpuflow.state.tables import metadata

# The advisory lock's key on PostgreSQL: any fixed 64-bit number, the same in every gpuflow process.
PG_LOCK_KEY = 0x67707566_6C6F77  # "gpuflow"
_current: set[str] = set()  # URLs this process has found or made current


class StateSchemaError(GpuflowError):
    """The state database cannot be migrated safely."""


def ensure_current(engine: Engine) -> None:
    """Migrate the database unless this process already found it current: one look per process and URL."""
    url = engine.url.render_as_string(hide_password=False)
    if url in _current:
        return
    with engine.connect() as connection:
        behind = missing(connection)
    if behind:
        migrate(engine)
    _current.add(url)


def migrate(engine: Engine) -> list[str]:
    """Create the missing tables and add the missing columns under the migration lock; returns what it did."""
    with _migration_lock(engine) as connection:
        done = missing(connection)
        metadata.create_all(connection)
        for table, column in _missing_columns(connection):
            kind = column.type.compile(dialect=engine.dialect)
            connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {column.name} {kind}"))
    _current.add(engine.url.render_as_string(hide_password=False))
    return done


def missing(connection: Connection) -> list[str]:
    """What the database lacks: ``table NAME`` and ``column TABLE.NAME`` entries, empty when it is current."""
    present = set(inspect(connection).get_table_names())
    tables = [f"table {name}" for name in metadata.tables if name not in present]
    return tables + [f"column {table}.{column.name}" for table, column in _missing_columns(connection)]


def _missing_columns(connection: Connection) -> list[tuple[str, Column[Any]]]:
    """Columns added since a table was created (nullable, so old rows read as None): a store an older gpuflow
    wrote keeps its blocks, costs and runs. Tables still missing are ``create_all``'s."""
    inspector = inspect(connection)
    present_tables = set(inspector.get_table_names())
    found: list[tuple[str, Column[Any]]] = []
    for table in metadata.sorted_tables:
        if table.name not in present_tables:
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        found += [(table.name, c) for c in table.columns if c.name not in present and c.nullable]
    return found


def locked(engine: Engine) -> AbstractContextManager[Connection]:
    """A transaction holding the state database's one lock: for writers that must read and decide alone (the
    schema's migration, the admission of GPU leases)."""
    return _migration_lock(engine)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the migration lock of ``engine``'s database until it ends."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        with engine.begin() as connection:
            connection.execute(select(func.pg_advisory_xact_lock(PG_LOCK_KEY)))
            yield connection
    elif dialect == "sqlite":
        with _file_lock(engine.url.database), engine.begin() as connection:
            yield connection
    else:
        shown = engine.url.render_as_string(hide_password=True)
        raise StateSchemaError(
            f"{STATE_URL_ENV}={shown!r}: gpuflow can lock its schema migration on postgresql and sqlite, not "
            f"{dialect}; point {STATE_URL_ENV} at a PostgreSQL or SQLite database"
        )


@contextmanager
def _file_lock(database: str | None) -> Iterator[None]:
    """An exclusive ``flock`` on ``DATABASE.migrate-lock``; none for an in-memory database (one connection's own)."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        yield
        return
    path = Path(f"{database}.migrate-lock")
    try:
        lock = path.open("a")
    except OSError as exc:
        raise StateSchemaError(
            f"{STATE_URL_ENV}: cannot open the migration lock {path} beside the SQLite file {database} ({exc}); "
            "create its directory, or point the URL at a writable one"
        ) from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
