"""The watcher's verdict on a run, from its work tasks' states."""

from __future__ import annotations

from gpuflow.operators.watcher import run_verdict

DONE = {"plan": "success", "wait_node_pool": "success", "train": "success", "benchmark": "success"}


def test_a_run_whose_work_all_succeeded_has_no_verdict() -> None:
    assert run_verdict(DONE) is None


def test_a_failed_task_fails_the_run_naming_it() -> None:
    states = {**DONE, "train": "failed", "benchmark": "upstream_failed"}
    assert run_verdict(states) == ("a pipeline task failed (benchmark, train; see its log); the run fails with it")


def test_a_run_marked_failed_by_a_person_is_said_to_be_stopped() -> None:
    """Airflow fails the running task and skips the pending ones."""
    verdict = run_verdict({**DONE, "train": "failed", "benchmark": "skipped"})
    assert verdict is not None
    assert verdict.startswith("the run was stopped: train ended failed and benchmark never ran")
