"""On a running Airflow, the scheduler (whose LocalExecutor workers fork every task) and the DAG processor (which forks
every parse) import the DAG files' libraries once, before they first fork (``gpuflow.preload``)."""

from __future__ import annotations

from tests.live.conftest import Live


def test_the_scheduler_and_the_dag_processor_import_the_dags_libraries_once_before_forking(live: Live) -> None:
    live.airflow.wait_for_dag("gpu_train_and_serve")  # the DAG processor has forked to parse it

    for component in ("scheduler", "dag-processor"):
        log = live.airflow.log_path(component).read_text(errors="replace")
        assert "gpuflow preload: imported" in log, component
        assert "gpuflow preload: could not import" not in log, component
    for component in ("api-server", "triggerer"):  # they fork no task or parse: nothing to import early
        assert "gpuflow preload" not in live.airflow.log_path(component).read_text(errors="replace"), component
