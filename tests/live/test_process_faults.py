"""The short part of the chaos suite (``make chaos``, ``bench/chaos``) that runs in ``make test``: a task's own
process killed outright as soon as it runs ``create_node_pool`` (found by its process title, so the kill lands in
the second or so the task lives). Its retry must carry the run to ``success``, and nothing may be left on the clouds
(the whole suite, with the triggerer and scheduler kills, is ``make chaos``)."""

from __future__ import annotations

import pytest

from bench.chaos.scenarios import DAG_ID, FAULTS, process_fault
from tests.live.conftest import Live

pytestmark = pytest.mark.timeout(900)


def test_a_task_process_killed_while_creating_the_node_pool_is_retried_to_success(live: Live) -> None:
    live.airflow.wait_for_dag(DAG_ID)
    live.airflow.unpause(DAG_ID)
    fault = next(f for f in FAULTS if (f.victim, f.task_id) == ("task", "create_node_pool"))

    row = process_fault(live.airflow, live.emulator, "sqlite", fault)

    assert row.states == {"success": 1}, row.line()
    assert row.retried >= 1, row.line()  # the kill landed and a new try carried on
    assert (row.left_before_janitor, row.left_after_janitor) == (0, 0), row.line()
    assert row.kept_promise, row.line()
