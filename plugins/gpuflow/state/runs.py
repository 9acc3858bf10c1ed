"""Which Airflow run a run label stands for, and since when gpuflow has known the label.

Resources carry ``gpuflow.io/run``: a digest of (dag_id, run_id), valid as a label everywhere but not
reversible. A run registers here before it asks any cloud for a pool, so the janitor can turn the label on
anything the run leaves behind back into a run whose state it can ask Airflow for. A label the janitor finds
with no row (another installation, a lost database) gets a row without a run at its first sighting, and the
grace period for unknown runs counts from there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from gpuflow.core.naming import run_key
from gpuflow.state.store import StateStore, aware
from gpuflow.state.tables import runs_table


@dataclass(frozen=True, slots=True)
class RegisteredRun:
    run_key: str
    dag_id: str | None  # None: seen on a resource, never registered by a run
    run_id: str | None
    known_since: datetime


class RunRegistry(StateStore):
    def register(self, dag_id: str, run_id: str, *, now: datetime) -> str:
        """Record the run behind its label (a retried task finds its row and changes nothing); returns the label."""
        key = run_key(dag_id, run_id)
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(runs_table), [{"run_key": key, "dag_id": dag_id, "run_id": run_id, "known_since": now}]
                )
        except IntegrityError:  # registered already, or sighted by the janitor first: fill in the run
            with self.engine.begin() as connection:
                connection.execute(
                    update(runs_table)
                    .where(runs_table.c.run_key == key, runs_table.c.dag_id.is_(None))
                    .values(dag_id=dag_id, run_id=run_id)
                )
        return key

    def known(self, keys: Iterable[str], *, now: datetime) -> dict[str, RegisteredRun]:
        """The rows of ``keys``; a key never seen before is recorded as sighted ``now``, without a run."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        among = runs_table.c.run_key.in_(wanted)
        with self.engine.begin() as connection:
            present = set(connection.execute(select(runs_table.c.run_key).where(among)).scalars())
            new = [{"run_key": k, "known_since": now} for k in wanted if k not in present]
            if new:
                connection.execute(insert(runs_table), new)
            rows = connection.execute(select(runs_table).where(among)).all()
        return {row.run_key: RegisteredRun(row.run_key, row.dag_id, row.run_id, aware(row.known_since)) for row in rows}
