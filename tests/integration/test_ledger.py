from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gpuflow.state.ledger import CostEntry, Ledger

START = datetime(2026, 11, 29, 12, tzinfo=UTC)
CHOICE = {
    "cloud": "gcp",
    "region": "us-central1",
    "instance_type": "a3-highgpu-8g",
    "capacity_type": "spot",
    "nodes": 2,
    "accelerator_count": 8,
    "hourly_usd": 70.0,
}


def test_actual_cost_is_hours_held_times_the_pool_price() -> None:
    entry = CostEntry.for_pool(
        dag_id="d",
        run_id="r",
        choice=CHOICE,
        held_from=START,
        held_until=START + timedelta(minutes=30),
        estimated_usd=40,
    )
    assert entry.gpu_hours == pytest.approx(0.5 * 16)
    assert entry.cost_usd == pytest.approx(35.0)
    assert "actual cost  35.0000 USD" in entry.table()


def test_ledger_survives_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    entry = CostEntry.for_pool(
        dag_id="d", run_id="r", choice=CHOICE, held_from=START, held_until=START + timedelta(hours=1), estimated_usd=80
    )
    Ledger(url).record(entry)
    (stored,) = Ledger(url).entries("d")
    assert stored.cost_usd == pytest.approx(70.0)
    assert stored.run_id == "r"
