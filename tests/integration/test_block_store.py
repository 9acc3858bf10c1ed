"""The failover memory survives restarts and concurrent writers."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gpuflow.core.request import Block
from gpuflow.state.store import BlockStore

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def test_blocks_survive_a_new_store_on_the_same_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    block = Block("gcp", zone="us-central1-a", expires_at=NOW + timedelta(minutes=30), reason="stockout")
    BlockStore(url).record([block], recorded_by="run-1", now=NOW)
    assert BlockStore(url).active(NOW) == [block]


def test_expired_blocks_are_not_returned(tmp_path: Path) -> None:
    store = BlockStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.record([Block("aws", expires_at=NOW + timedelta(minutes=1))], recorded_by="run-1", now=NOW)
    assert store.active(NOW + timedelta(minutes=2)) == []


def _record_many(url: str, worker: int) -> None:
    store = BlockStore(url)
    for i in range(25):
        block = Block("aws", region=f"r{worker}", zone=f"z{i}", expires_at=NOW + timedelta(hours=1))
        store.record([block], recorded_by=f"run-{worker}", now=NOW)


def test_concurrent_runs_recording_failures_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    BlockStore(url)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_record_many, args=(url, w)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    blocks = BlockStore(url).active(NOW)
    assert len(blocks) == 100
    assert {(b.region, b.zone) for b in blocks} == {(f"r{w}", f"z{i}") for w in range(4) for i in range(25)}


def test_a_store_written_by_an_older_gpuflow_gains_the_new_column_and_keeps_its_blocks(tmp_path: Path) -> None:
    """gpuflow_blocks had no quota_family column before quota-family blocks; create_all does not add columns."""
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE gpuflow_blocks (id INTEGER PRIMARY KEY, cloud VARCHAR(16) NOT NULL, region VARCHAR(64), "
            "zone VARCHAR(64), instance_type VARCHAR(128), capacity_type VARCHAR(16), expires_at DATETIME NOT NULL, "
            "reason VARCHAR(2000) NOT NULL, recorded_by VARCHAR(256) NOT NULL, recorded_at DATETIME NOT NULL)"
        )
        old.execute(
            "INSERT INTO gpuflow_blocks (cloud, region, expires_at, reason, recorded_by, recorded_at) "
            "VALUES ('aws', 'us-east-1', '2026-11-29 13:00:00', 'old', 'run-0', '2026-11-29 12:00:00')"
        )
    store = BlockStore(f"sqlite:///{path}")
    family = Block(
        "aws", region="us-east-1", quota_family="P", expires_at=NOW + timedelta(hours=6), reason="VcpuLimitExceeded"
    )
    store.record([family], recorded_by="run-1", now=NOW)
    assert [(b.reason, b.quota_family) for b in store.active(NOW)] == [("old", None), ("VcpuLimitExceeded", "P")]
