"""The cost ledger: what each run held, for how long, and what it cost, next to what the plan estimated.

An entry is open while its pool may still be held: the teardown could not confirm the pool deleted, or kept it
for the endpoint. Its ``held_until`` is then only how far it counts so far; the janitor closes it, with the time
it reclaimed the pool, so the ledger never under-counts what a leaked or kept pool cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, insert, select, update

from gpuflow.core.nodepool import NodePoolRef
from gpuflow.state.store import StateStore, aware
from gpuflow.state.tables import ledger_table

OPEN_NOTE = "the janitor closes this entry when it reclaims it"
NOT_CONFIRMED = "the pool was not confirmed deleted"


@dataclass(frozen=True, slots=True)
class CostEntry:
    dag_id: str
    run_id: str
    cloud: str
    region: str
    instance_type: str
    capacity_type: str
    nodes: int
    accelerators: int
    hourly_usd: float
    held_from: datetime
    held_until: datetime
    gpu_hours: float
    cost_usd: float
    estimated_usd: float
    # Why the segment ended: "teardown", "preempted: ...", "janitor: ..."; while open, why it is open.
    ended_by: str | None = None
    pool: str | None = None  # NodePoolRef.path; None on entries from before it was recorded
    is_open: bool = False

    @classmethod
    def for_pool(
        cls,
        *,
        dag_id: str,
        run_id: str,
        choice: Mapping[str, Any],
        held_from: datetime,
        held_until: datetime,
        estimated_usd: float,
        ended_by: str | None = None,
        pool: NodePoolRef | None = None,
        is_open: bool = False,
    ) -> CostEntry:
        """GPU-hours actually held x the plan's price for the pool (all nodes, all accelerators)."""
        nodes, per_node = int(choice["nodes"]), int(choice["accelerator_count"])
        entry = cls(
            dag_id=dag_id,
            run_id=run_id,
            cloud=choice["cloud"],
            region=choice["region"],
            instance_type=choice["instance_type"],
            capacity_type=choice["capacity_type"],
            nodes=nodes,
            accelerators=nodes * per_node,
            hourly_usd=float(choice["hourly_usd"]),
            held_from=held_from,
            held_until=held_from,
            gpu_hours=0.0,
            cost_usd=0.0,
            estimated_usd=estimated_usd,
            pool=pool.path if pool is not None else None,
        )
        return entry._held_until(held_until, ended_by, is_open=is_open)

    def closed(self, until: datetime, ended_by: str) -> CostEntry:
        """The entry once its pool is known gone at ``until``: counted to then, never to less than it already was."""
        return self._held_until(max(until, self.held_until), ended_by, is_open=False)

    def _held_until(self, until: datetime, ended_by: str | None, *, is_open: bool) -> CostEntry:
        hours = max(0.0, (until - self.held_from).total_seconds() / 3600)
        return replace(
            self,
            held_until=until,
            gpu_hours=hours * self.accelerators,
            cost_usd=hours * self.hourly_usd,
            ended_by=ended_by,
            is_open=is_open,
        )

    def table(self) -> str:
        rows = [
            ("pool", f"{self.cloud}/{self.region} {self.instance_type} x{self.nodes} ({self.capacity_type})"),
            ("held", f"{(self.held_until - self.held_from).total_seconds():.0f} s{' so far' if self.is_open else ''}"),
            ("GPU-hours", f"{self.gpu_hours:.4f}"),
            ("price", f"{self.hourly_usd:.4f} USD/h"),
            ("actual cost", f"{self.cost_usd:.4f} USD"),
            ("estimate", f"{self.estimated_usd:.4f} USD"),
        ]
        if self.is_open:
            rows.append(("open", f"{self.ended_by or NOT_CONFIRMED}; {OPEN_NOTE}"))
        elif self.ended_by:
            rows.append(("ended by", self.ended_by))
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


class Ledger(StateStore):
    def record(self, entry: CostEntry) -> None:
        with self.engine.begin() as connection:
            connection.execute(insert(ledger_table), [asdict(entry)])

    def entries(self, dag_id: str | None = None, run_id: str | None = None) -> list[CostEntry]:
        """Entries in the order they were recorded, of one DAG or one run when given."""
        query = select(ledger_table).order_by(ledger_table.c.id)
        if dag_id is not None:
            query = query.where(ledger_table.c.dag_id == dag_id)
        if run_id is not None:
            query = query.where(ledger_table.c.run_id == run_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [_entry(row) for row in rows]

    def open_pools(self) -> list[str]:
        """The pools (``NodePoolRef.path``) of every open entry."""
        query = select(ledger_table.c.pool).where(ledger_table.c.is_open.is_(True), ledger_table.c.pool.is_not(None))
        with self.engine.connect() as connection:
            return sorted(set(connection.execute(query).scalars()))

    def close(self, pool: str, until: datetime, ended_by: str) -> list[CostEntry]:
        """Close the open entries of ``pool`` at ``until`` (``CostEntry.closed``); returns them as closed."""
        query = select(ledger_table).where(ledger_table.c.pool == pool, ledger_table.c.is_open.is_(True))
        closed = []
        with self.engine.begin() as connection:
            for row in connection.execute(query).mappings().all():
                entry = _entry(row).closed(until, ended_by[:500])
                values = {k: getattr(entry, k) for k in ("held_until", "gpu_hours", "cost_usd", "ended_by", "is_open")}
                connection.execute(update(ledger_table).where(ledger_table.c.id == row["id"]).values(**values))
                closed.append(entry)
        return closed


def _entry(row: RowMapping) -> CostEntry:
    """A row as an entry: times made aware (SQLite returns them naive), a null ``is_open`` (older rows) closed."""
    fields = {k: v for k, v in row.items() if k != "id"}
    return CostEntry(
        **{
            **fields,
            "held_from": aware(fields["held_from"]),
            "held_until": aware(fields["held_until"]),
            "is_open": bool(fields["is_open"]),
        }
    )
