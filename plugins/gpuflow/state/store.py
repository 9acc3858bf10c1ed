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

from sqlalchemy import create_engine, delete, event, insert, select
from sqlalchemy.engine import Engine

from gpuflow.core.catalog import CapacityType
from gpuflow.core.request import Block
from gpuflow.core.settings import state_url
from gpuflow.state.schema import ensure_current
from gpuflow.state.tables import blocks_table


class StateStore:
    """The shared database, migrated (``gpuflow.state.schema``) if this process finds it behind."""

    def __init__(self, url: str | None = None) -> None:
        self.engine = engine_for(url or state_url())
        ensure_current(self.engine)


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


def aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; every time gpuflow stores is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def engine_for(url: str) -> Engine:
    """An engine for the state URL; SQLite tuned for several processes writing (WAL, a busy timeout)."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _wal(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        """WAL lets readers proceed while another run writes; busy_timeout waits out a concurrent writer."""
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA busy_timeout=30000")

    return engine
