"""Shared state: the failover memory (offers blocked after stockouts and quota errors), the cost ledger, the
registry of runs (which run a resource's run label stands for) and where each run's training stands.

A SQL database reached through SQLAlchemy (``GPUFLOW_STATE_URL``; default a SQLite file in the
Airflow home), not Airflow's metadata DB: Airflow 3 tasks may not touch that one. Blocks and costs are only
ever inserted, and expired blocks ignored (and pruned), so concurrent runs recording failures at the same time
never overwrite each other; each write is one short transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from gpuflow.core.catalog import CapacityType
from gpuflow.core.request import Block
from gpuflow.core.settings import state_url

metadata = MetaData()
blocks_table = Table(
    "gpuflow_blocks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cloud", String(16), nullable=False),
    Column("region", String(64)),
    Column("zone", String(64)),
    Column("instance_type", String(128)),
    Column("capacity_type", String(16)),
    Column("quota_family", String(64)),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    Column("reason", String(2000), nullable=False, default=""),
    Column("recorded_by", String(256), nullable=False, default=""),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)


ledger_table = Table(
    "gpuflow_costs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dag_id", String(250), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("cloud", String(16), nullable=False),
    Column("region", String(64), nullable=False),
    Column("instance_type", String(128), nullable=False),
    Column("capacity_type", String(16), nullable=False),
    Column("nodes", Integer, nullable=False),
    Column("accelerators", Integer, nullable=False),
    Column("hourly_usd", Float, nullable=False),
    Column("held_from", DateTime(timezone=True), nullable=False),
    Column("held_until", DateTime(timezone=True), nullable=False),
    Column("gpu_hours", Float, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("estimated_usd", Float, nullable=False),
    # Why the pool segment ended: "teardown" for the last one of a run, "preempted: ..." for one lost mid-run.
    Column("ended_by", String(500)),
)


runs_table = Table(
    "gpuflow_runs",
    metadata,
    Column("run_key", String(64), primary_key=True),
    # Null when the janitor saw the key on a resource before (or without) any run registering it.
    Column("dag_id", String(250)),
    Column("run_id", String(250)),
    Column("known_since", DateTime(timezone=True), nullable=False),
)


# Where each run's training stands (``gpuflow.core.recovery.TrainingState`` as JSON): a recovery from a spot
# preemption spans deferrals, tries and workers, and must survive any of them.
training_table = Table(
    "gpuflow_training",
    metadata,
    Column("run_key", String(64), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class StateStore:
    """The shared database; creates its tables on first use."""

    def __init__(self, url: str | None = None) -> None:
        self.engine = _engine(url or state_url())
        _prepare(self.engine)


def _prepare(engine: Engine, attempts: int = 3) -> None:
    """Create the missing tables and columns. Two first users at once both find a table missing and both create
    it; the second one's "already exists" means the work is done, so it looks again instead of failing."""
    for attempt in range(1, attempts + 1):
        try:
            metadata.create_all(engine)
            _add_new_columns(engine)
            return
        except (OperationalError, ProgrammingError, IntegrityError) as exc:
            if attempt == attempts or not _made_meanwhile(exc):
                raise


def _made_meanwhile(exc: Exception) -> bool:
    """SQLite's and PostgreSQL's words for a table or column another process created first."""
    text = str(exc).lower()
    return any(words in text for words in ("already exists", "duplicate column", "duplicate key value"))


class BlockStore(StateStore):
    """Insert-only store of ``Block`` records with an expiry."""

    def record(self, blocks: Iterable[Block], *, recorded_by: str, now: datetime) -> None:
        rows = [
            {
                "cloud": b.cloud,
                "region": b.region,
                "zone": b.zone,
                "instance_type": b.instance_type,
                "capacity_type": b.capacity_type.value if b.capacity_type else None,
                "quota_family": b.quota_family,
                "expires_at": b.expires_at or now.replace(year=now.year + 100),
                "reason": b.reason[:2000],
                "recorded_by": recorded_by[:256],
                "recorded_at": now,
            }
            for b in blocks
        ]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(insert(blocks_table), rows)

    def active(self, now: datetime) -> list[Block]:
        """Blocks that have not expired, oldest first; expired rows are pruned on the way."""
        with self.engine.begin() as connection:
            connection.execute(delete(blocks_table).where(blocks_table.c.expires_at <= now))
            rows = connection.execute(
                select(blocks_table).where(blocks_table.c.expires_at > now).order_by(blocks_table.c.id)
            ).all()
        return [
            Block(
                cloud=row.cloud,
                region=row.region,
                zone=row.zone,
                instance_type=row.instance_type,
                capacity_type=CapacityType(row.capacity_type) if row.capacity_type else None,
                expires_at=aware(row.expires_at),
                reason=row.reason,
                quota_family=row.quota_family,
            )
            for row in rows
        ]


def _add_new_columns(engine: Engine) -> None:
    """Columns added since a table was created (nullable, so old rows read as None), added in place: a store
    written by an older gpuflow keeps working and keeps its blocks, costs and runs."""
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=engine.dialect)
                with engine.begin() as connection:
                    connection.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))


def aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; every time gpuflow stores is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _wal(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        """WAL lets readers proceed while another run writes; busy_timeout waits out a concurrent writer."""
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA busy_timeout=30000")

    return engine
