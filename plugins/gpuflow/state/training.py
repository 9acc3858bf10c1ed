"""Where each run's training stands (``TrainingState``), one row per run, overwritten as the training moves on.

Only the run's own ``train`` task writes its row, one step at a time, so a plain upsert is enough.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update

from gpuflow.core.recovery import TrainingState
from gpuflow.state.store import StateStore
from gpuflow.state.tables import training_table


class TrainingStates(StateStore):
    def load(self, run_key: str) -> TrainingState | None:
        with self.engine.connect() as connection:
            text = connection.execute(
                select(training_table.c.state).where(training_table.c.run_key == run_key)
            ).scalar_one_or_none()
        return TrainingState.from_json(text) if text else None

    def save(self, run_key: str, state: TrainingState, *, now: datetime) -> None:
        values = {"state": state.to_json(), "updated_at": now}
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(training_table).where(training_table.c.run_key == run_key).values(**values)
            ).rowcount
            if not changed:
                connection.execute(insert(training_table), [{"run_key": run_key, **values}])
