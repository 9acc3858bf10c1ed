"""Cost truth on the emulator: a pool the teardown could not confirm deleted is recorded as an open ledger entry,
and the janitor closes it with the time it reclaims the pool, so the ledger never under-counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gpuflow_emulator.testing import EmulatorProcess

from gpuflow.clouds.base import backend_for
from gpuflow.core import naming
from gpuflow.core.handoffs import PoolHandoff, Unconfirmed
from gpuflow.core.janitor import RunInfo, RunState
from gpuflow.operators.cost import CostReportOperator
from gpuflow.operators.janitor import JanitorOperator
from gpuflow.operators.teardown import UNCONFIRMED_XCOM
from gpuflow.state.ledger import Ledger
from tests.support.offers import one_gpu_choice, one_gpu_pool_spec

pytestmark = pytest.mark.timeout(180)
DAG_ID = "gpu_train_and_serve"
CHOICE = {**one_gpu_choice("gcp"), "hourly_usd": 0.8}
HELD_FOR = timedelta(hours=1)


class TaskInstance:
    """The XCom half of a task instance, keyed by task and key as the cost report and the janitor read it."""

    def __init__(self, pulled: dict[tuple[str, str], Any]) -> None:
        self.pulled = pulled

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.pulled.get((task_ids, key))

    def xcom_push(self, key: str, value: Any) -> None:
        self.pulled[("janitor", key)] = value


def cost_report(run_id: str, unconfirmed: Unconfirmed | None) -> dict[str, Any]:
    """Run the cost report of a run whose pool was requested an hour ago, after a teardown that left
    ``unconfirmed`` (None: it pushed nothing, as when it crashed)."""
    spec = one_gpu_pool_spec("gcp", dag_id=DAG_ID, run_id=run_id)
    pool = PoolHandoff.of(spec, 0, CHOICE, [], (datetime.now(UTC) - HELD_FOR).isoformat()).to_xcom()
    plan = {"plan": {"chosen": CHOICE, "fallbacks": [], "estimated_total_usd": 1.0}, "job": None}
    pulled = {("plan", "return_value"): plan, ("create_node_pool", "return_value"): pool}
    pulled[("wait_node_pool", "return_value")] = pool
    if unconfirmed is not None:
        pulled[("teardown", UNCONFIRMED_XCOM)] = unconfirmed.to_xcom()
    context = {"ti": TaskInstance(pulled), "dag": SimpleNamespace(dag_id=DAG_ID), "run_id": run_id}
    summary = CostReportOperator(task_id="cost_report").execute(context)  # type: ignore[arg-type]
    assert summary is not None
    return summary


def test_the_janitor_closes_the_open_entry_of_a_pool_the_teardown_could_not_delete(
    clouds_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = "teardown_failed"
    spec = one_gpu_pool_spec("gcp", dag_id=DAG_ID, run_id=run_id)
    backend_for(spec.cluster).create_node_pool(spec)
    # The teardown could not reach the pool's cluster (an API down): nothing there is confirmed deleted.
    summary = cost_report(run_id, Unconfirmed(clusters=((spec.cluster.cloud, spec.cluster.name),)))
    (recorded,) = Ledger().entries(DAG_ID, run_id)
    assert (recorded.is_open, recorded.pool, summary["open"]) == (True, spec.ref.path, 1)
    assert "the janitor closes this entry when it reclaims it" in recorded.table()

    janitor = JanitorOperator(task_id="janitor")
    failed = {naming.run_key(DAG_ID, run_id): RunInfo(RunState.FAILED)}
    monkeypatch.setattr(janitor, "_runs", lambda keys, now: failed)
    reclaimed_after = datetime.now(UTC)
    result = janitor.execute({"ti": TaskInstance({})})  # type: ignore[typeddict-item]

    assert any(r["name"] == spec.name and r["action"] == "deleted" for r in result["resources"])
    (closed,) = Ledger().entries(DAG_ID, run_id)
    assert (closed.is_open, closed.ended_by) == (False, "janitor: run failed")
    assert closed.held_until >= reclaimed_after
    held_h = (closed.held_until - closed.held_from).total_seconds() / 3600
    assert held_h >= HELD_FOR.total_seconds() / 3600
    assert closed.cost_usd == pytest.approx(held_h * CHOICE["hourly_usd"])
    assert closed.cost_usd > recorded.cost_usd


@pytest.mark.parametrize(
    ("unconfirmed", "is_open"),
    [(Unconfirmed(), False), (None, True)],
    ids=["teardown-confirmed-it-gone", "teardown-said-nothing"],
)
def test_the_entry_is_open_unless_the_teardown_confirmed_the_pool_deleted(
    unconfirmed: Unconfirmed | None, is_open: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPUFLOW_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    cost_report("manual__1", unconfirmed)
    (entry,) = Ledger().entries(DAG_ID, "manual__1")
    assert entry.is_open is is_open
    assert entry.ended_by == ("the pool was not confirmed deleted" if is_open else "teardown")
