"""GPU leases in the state database: asked for once per run, granted in arrival order, released when its pools
are gone. The decision is ``gpuflow.core.admission``; here it is taken under the state lock, so two runs asking
at once never both take the last GPUs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gpuflow.core.admission import GpuLimits, Lease, admitted, place
from gpuflow.state.schema import locked
from gpuflow.state.store import StateStore, aware
from gpuflow.state.tables import leases_table


@dataclass(frozen=True, slots=True)
class Admission:
    """Where a run's lease stands: granted, or its place in the queue and what is ahead."""

    granted: bool
    place: int
    gpus_held: int  # by every granted lease, this one included once granted
    waiting: int


@dataclass(frozen=True, slots=True)
class OpenLease:
    """A lease not yet released, with its run: the janitor releases those of runs that ended without a pool."""

    run_key: str
    dag_id: str
    run_id: str
    granted: bool


class Leases(StateStore):
    def ask(self, *, run_key: str, dag_id: str, run_id: str, cloud: str, gpus: int, now: datetime) -> None:
        """Join the queue; asking again (a retried task) keeps the first place."""
        row = {"run_key": run_key, "dag_id": dag_id, "run_id": run_id, "cloud": cloud, "gpus": gpus}
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(leases_table), [{**row, "requested_at": now}])
        except IntegrityError:
            pass  # already asked: the place is the first ask's

    def admit(self, run_key: str, limits: GpuLimits, *, now: datetime) -> Admission:
        """Grant every waiting lease that fits, first come first, and say where ``run_key`` stands."""
        with locked(self.engine) as connection:
            leases = _open(connection)
            grants = admitted(leases, limits)
            if grants:
                connection.execute(
                    update(leases_table).where(leases_table.c.run_key.in_(grants)).values(granted_at=now)
                )
        granted = {lease.run_key for lease in leases if lease.granted} | set(grants)
        now_waiting = [lease for lease in leases if lease.run_key not in granted]
        return Admission(
            granted=run_key in granted,
            place=place(now_waiting, run_key),
            gpus_held=sum(lease.gpus for lease in leases if lease.run_key in granted),
            waiting=len(now_waiting),
        )

    def release(self, run_key: str, *, now: datetime) -> bool:
        """Give the GPUs back (the run's pools are gone); True when there was an open lease."""
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(leases_table)
                .where(leases_table.c.run_key == run_key, leases_table.c.released_at.is_(None))
                .values(released_at=now)
            ).rowcount
        return bool(changed)

    def open_leases(self) -> list[OpenLease]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(leases_table).where(leases_table.c.released_at.is_(None))).all()
        return [OpenLease(row.run_key, row.dag_id, row.run_id, row.granted_at is not None) for row in rows]


def _open(connection: Connection) -> list[Lease]:
    rows = connection.execute(select(leases_table).where(leases_table.c.released_at.is_(None))).all()
    return [
        Lease(row.run_key, row.cloud, row.gpus, aware(row.requested_at), granted=row.granted_at is not None)
        for row in rows
    ]
