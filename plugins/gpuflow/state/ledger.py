"""The cost ledger: what each run held, for how long, and what it cost, next to what the plan estimated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from gpuflow.state.store import StateStore
from gpuflow.state.tables import ledger_table


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
    ended_by: str | None = None  # "teardown", or why the pool was lost mid-run ("preempted: ...")

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
    ) -> CostEntry:
        """GPU-hours actually held x the plan's price for the pool (all nodes, all accelerators)."""
        hours = max(0.0, (held_until - held_from).total_seconds() / 3600)
        nodes, per_node = int(choice["nodes"]), int(choice["accelerator_count"])
        return cls(
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
            held_until=held_until,
            gpu_hours=hours * nodes * per_node,
            cost_usd=hours * float(choice["hourly_usd"]),
            estimated_usd=estimated_usd,
            ended_by=ended_by,
        )

    def table(self) -> str:
        rows = [
            ("pool", f"{self.cloud}/{self.region} {self.instance_type} x{self.nodes} ({self.capacity_type})"),
            ("held", f"{(self.held_until - self.held_from).total_seconds():.0f} s"),
            ("GPU-hours", f"{self.gpu_hours:.4f}"),
            ("price", f"{self.hourly_usd:.4f} USD/h"),
            ("actual cost", f"{self.cost_usd:.4f} USD"),
            ("estimate", f"{self.estimated_usd:.4f} USD"),
            *([("ended by", self.ended_by)] if self.ended_by else []),
        ]
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
        return [CostEntry(**{k: v for k, v in row.items() if k != "id"}) for row in rows]
