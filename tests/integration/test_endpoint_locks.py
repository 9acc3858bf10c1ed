"""Named-endpoint locks in a real SQLite state database: one change to an endpoint at a time, a waiter logged and let
in once the holder is done, a lock of a killed task taken back by its retry or, after it expires, by anyone."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gpuflow.core import naming
from gpuflow.operators.named_endpoint import LOCK_HOLD, changing_endpoint
from gpuflow.provisioning import Run
from gpuflow.state.endpoint_locks import EndpointLocks

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def locks(tmp_path: Path) -> EndpointLocks:
    return EndpointLocks(f"sqlite:///{tmp_path / 'state.db'}")


def test_a_held_endpoint_names_its_holder_to_others_and_is_taken_again_by_the_holder(locks: EndpointLocks) -> None:
    assert locks.take("chat", "run-a", "run a of d", now=T0, hold=HOUR) is None
    other = locks.take("chat", "run-b", "run b of d", now=T0 + timedelta(minutes=5), hold=HOUR)
    assert other is not None
    assert (other.holder, other.detail, other.taken_at, other.expires_at) == ("run-a", "run a of d", T0, T0 + HOUR)
    assert locks.take("other-endpoint", "run-b", "run b of d", now=T0, hold=HOUR) is None  # one lock per endpoint
    assert locks.take("chat", "run-a", "run a of d", now=T0 + timedelta(minutes=6), hold=HOUR) is None  # a retry

    assert locks.release("chat", "run-b") is False  # only the holder gives it back
    assert locks.release("chat", "run-a") is True
    assert locks.take("chat", "run-b", "run b of d", now=T0 + timedelta(minutes=7), hold=HOUR) is None


def test_a_lock_left_by_a_killed_task_is_anyones_once_it_expires(locks: EndpointLocks) -> None:
    assert locks.take("chat", "run-a", "run a of d", now=T0, hold=HOUR) is None
    assert locks.take("chat", "run-b", "run b of d", now=T0 + HOUR - timedelta(seconds=1), hold=HOUR) is not None
    assert locks.take("chat", "run-b", "run b of d", now=T0 + HOUR, hold=HOUR) is None


def test_a_second_change_waits_for_the_first_logs_whose_it_waits_for_and_gives_the_lock_back_even_on_failure(
    locks: EndpointLocks, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = Run("gpu_train_and_serve", "manual__1"), Run("gpu_scheduled_retraining", "scheduled__2")
    first_key = naming.run_key(first.dag_id, first.run_id)
    now = datetime.now(UTC)  # changing_endpoint reads the clock
    assert locks.take("chat", first_key, "run manual__1 of gpu_train_and_serve", now=now, hold=LOCK_HOLD) is None
    waits: list[float] = []

    def first_finishes_while_the_second_waits(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            assert locks.release("chat", first_key)

    log = logging.getLogger("test.endpoint_locks")
    holders_inside: list[str] = []

    def promote() -> None:
        with changing_endpoint("chat", second, log, locks=locks, sleep=first_finishes_while_the_second_waits):
            held = locks.take("chat", "someone-else", "run x of y", now=datetime.now(UTC), hold=LOCK_HOLD)
            holders_inside.append(held.detail if held else "nobody")
            raise RuntimeError("gate failed")

    with caplog.at_level(logging.INFO, logger=log.name), pytest.raises(RuntimeError, match="gate failed"):
        promote()

    assert holders_inside == ["run scheduled__2 of gpu_scheduled_retraining"]
    assert len(waits) == 2
    assert caplog.text.count("endpoint chat is being changed by run manual__1 of gpu_train_and_serve") == 1
    assert "endpoint chat: the change before this one is done" in caplog.text
    assert locks.take("chat", "someone-else", "run x of y", now=datetime.now(UTC), hold=LOCK_HOLD) is None
