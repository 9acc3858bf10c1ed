from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gpuflow.core.nodepool import NodePoolRef
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


POOL = NodePoolRef("gcp", "us-central1", "gpuflow-usc1", "gf-run")


def open_entry(**kwargs: object) -> CostEntry:
    fields: dict[str, object] = {
        "held_until": START + timedelta(minutes=30),
        "ended_by": "the pool was not confirmed deleted",
        "pool": POOL,
        "is_open": True,
        **kwargs,
    }
    return CostEntry.for_pool(dag_id="d", run_id="r", choice=CHOICE, held_from=START, estimated_usd=40, **fields)  # type: ignore[arg-type]


def test_a_closed_entry_counts_to_the_real_end() -> None:
    closed = open_entry().closed(START + timedelta(hours=2), "janitor: run failed")
    assert (closed.is_open, closed.ended_by) == (False, "janitor: run failed")
    assert closed.held_until == START + timedelta(hours=2)
    assert closed.gpu_hours == pytest.approx(2 * 16)
    assert closed.cost_usd == pytest.approx(140.0)


def test_closing_never_shortens_what_an_entry_already_counts() -> None:
    closed = open_entry().closed(START + timedelta(minutes=10), "janitor: found gone")
    assert closed.held_until == START + timedelta(minutes=30)
    assert closed.cost_usd == pytest.approx(35.0)


def test_the_report_says_an_entry_is_open_and_who_closes_it() -> None:
    text = open_entry().table()
    assert text.splitlines()[-1].split(maxsplit=1) == [
        "open",
        "the pool was not confirmed deleted; the janitor closes this entry when it reclaims it",
    ]
    assert "1800 s so far" in text


def test_the_ledger_closes_only_the_open_entries_of_the_pool(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'state.db'}")
    ledger.record(open_entry())
    ledger.record(open_entry(pool=NodePoolRef("gcp", "us-central1", "gpuflow-usc1", "gf-other")))
    ledger.record(open_entry(is_open=False, ended_by="teardown"))
    assert ledger.open_pools() == ["gcp/gpuflow-usc1/gf-other", POOL.path]
    (closed,) = ledger.close(POOL.path, START + timedelta(hours=1), "janitor: run failed")
    assert closed.cost_usd == pytest.approx(70.0)
    assert ledger.close(POOL.path, START + timedelta(hours=3), "janitor: again") == []
    assert ledger.open_pools() == ["gcp/gpuflow-usc1/gf-other"]
    assert [(e.is_open, e.ended_by) for e in ledger.entries("d")] == [
        (False, "janitor: run failed"),
        (True, "the pool was not confirmed deleted"),
        (False, "teardown"),
    ]


def test_entries_recorded_before_pools_and_open_marks_read_as_closed(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    Ledger(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE gpuflow_costs DROP COLUMN is_open")
        db.execute("ALTER TABLE gpuflow_costs DROP COLUMN pool")
        db.execute(
            "INSERT INTO gpuflow_costs (dag_id, run_id, cloud, region, instance_type, capacity_type, nodes, "
            "accelerators, hourly_usd, held_from, held_until, gpu_hours, cost_usd, estimated_usd) VALUES "
            "('d', 'r', 'gcp', 'us-central1', 'g2', 'spot', 1, 1, 1.0, '2026-11-29 12:00:00', "
            "'2026-11-29 13:00:00', 1.0, 1.0, 1.0)"
        )
    from gpuflow.state.schema import migrate
    from gpuflow.state.store import engine_for

    assert migrate(engine_for(f"sqlite:///{path}")) == ["column gpuflow_costs.pool", "column gpuflow_costs.is_open"]
    (old,) = Ledger(f"sqlite:///{path}").entries("d")
    assert (old.pool, old.is_open) == (None, False)
