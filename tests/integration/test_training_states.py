"""A run's training state survives a new store on the same database (a restarted worker) and is overwritten."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gpuflow.core.recovery import Phase, TrainingState
from gpuflow.state.training import TrainingStates

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)
POOL = {"choice": {"cloud": "aws"}, "pool": {"name": "p"}}


def test_state_is_saved_read_back_and_replaced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    assert TrainingStates(url).load("run-a") is None
    first = TrainingState(pool=POOL, segment_started_at=NOW.isoformat())
    TrainingStates(url).save("run-a", first, now=NOW)
    moved = TrainingState(pool={**POOL, "index": 2}, segment_started_at=NOW.isoformat(), phase=Phase.PROVISIONING)
    TrainingStates(url).save("run-a", moved, now=NOW)
    assert TrainingStates(url).load("run-a") == moved
    assert TrainingStates(url).load("run-b") is None
