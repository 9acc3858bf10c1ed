"""gpu_scheduled_retraining end to end on the emulator (dag.test): the config's job, with a trivial training
command in place of the real one, trains, serves, benchmarks and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from gpuflow_emulator.testing import EmulatorProcess

from gpuflow.core import naming
from gpuflow.core.retraining import load_retraining_config
from tests.support.emulated_clouds import FAKE_TRAINING

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dag(airflow_db: Path) -> Any:
    return DagBag(dag_folder=str(ROOT / "dags" / "gpu_scheduled_retraining.py")).dags["gpu_scheduled_retraining"]


def test_a_retraining_run_with_the_configured_job_promotes_onto_its_endpoint_which_deletes_whole(
    dag: Any, clouds_emulator: EmulatorProcess
) -> None:
    # The training command needs no ML environment; one cloud and a short benchmark keep the test fast (the teardown
    # sweeps every cluster of the allowed clouds). The rest (accelerator, capacity, budget, serving) is the config's.
    conf = {
        **FAKE_TRAINING,
        "clouds": ["gcp"],
        "benchmark_requests": 4,
        "benchmark_rate": 20.0,
    }
    run = dag.test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert states.pop("watcher") == "success"
    assert set(states.values()) == {"success"}
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    job = tis["plan"].xcom_pull(task_ids="plan")["job"]
    config = load_retraining_config()
    assert job["served_model_name"] == config.job.served_model_name
    assert job["dataset_uri"] == config.job.dataset_uri
    endpoint = config.job.endpoint_name
    assert tis["promote"].xcom_pull(task_ids="promote")["endpoint"] == endpoint
    assert tis["teardown"].xcom_pull(task_ids="teardown")["kept"]["endpoint"] == endpoint
    assert clouds_emulator.labelled(naming.ENDPOINT_LABEL, endpoint)  # the revision and its pool serve on
    deleter = DagBag(dag_folder=str(ROOT / "dags" / "gpu_endpoint_delete.py")).dags["gpu_endpoint_delete"]
    assert deleter.test(run_conf={"endpoint_name": endpoint}).state == "success"
    assert clouds_emulator.labelled(naming.ENDPOINT_LABEL, endpoint) == []
    assert clouds_emulator.labelled(naming.RUN_LABEL, naming.run_key(run.dag_id, run.run_id)) == []
