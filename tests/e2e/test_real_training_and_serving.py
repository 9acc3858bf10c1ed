"""The whole pipeline with real work: train a tiny Llama, serve it with real vLLM (CPU), benchmark it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from gpuflow_emulator.stores import StoresConfig
from gpuflow_emulator.testing import processes_with_marker

from gpuflow.core import naming
from gpuflow.core.handoffs import PoolHandoff
from tests.support.emulated_clouds import bucket_keys, point_airflow_at, start_emulator

ROOT = Path(__file__).resolve().parents[2]
ML_PYTHON = ROOT / ".venv-ml" / "bin" / "python"
CONF: dict[str, Any] = {
    "accelerator": "L4",
    "count": 1,
    "capacity": "on-demand",
    "clouds": ["gcp"],
    "job_name": "real",
    "training_command": ["python", "-m", "gpuflow_training", "--steps", "40"],
    "dataset_uri": str(ROOT / "include" / "training" / "data" / "corpus.txt"),
    "served_model_name": "gpuflow-tiny",
    "max_model_len": 256,
    "benchmark_requests": 8,
    "benchmark_rate": 4.0,
}

pytestmark = pytest.mark.skipif(not ML_PYTHON.exists(), reason="build the ML environment with `make ml-env`")


def test_trained_model_is_served_by_real_vllm_and_benchmarked(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, object_stores: StoresConfig
) -> None:
    dag = DagBag(dag_folder=str(ROOT / "dags" / "gpu_train_and_serve.py")).dags["gpu_train_and_serve"]
    with start_emulator(tmp_path / "emulator", "default", object_stores, real_ml=True) as emulator:
        point_airflow_at(emulator, monkeypatch, tmp_path, object_stores)
        run = dag.test(run_conf=CONF)
        results = {ti.task_id: ti for ti in run.get_task_instances()}
        assert run.state == "success", {task: ti.state for task, ti in results.items()}
        smoke = results["smoke_test"].xcom_pull(task_ids="smoke_test")
        assert smoke["completion_text"].strip()
        assert smoke["chat_text"].strip()
        assert any(m.startswith("vllm:") for m in smoke["metrics"])
        bench = results["benchmark"].xcom_pull(task_ids="benchmark")
        assert bench["completed"] == CONF["benchmark_requests"]
        assert bench["failed"] == 0
        assert bench["output_throughput"] > 0
        assert 0 < bench["ttft"]["median_ms"] <= bench["e2el"]["median_ms"]
        cluster = PoolHandoff.from_xcom(results["wait_node_pool"].xcom_pull(task_ids="wait_node_pool")).cluster
        run_dir = f"{cluster.artifacts}/gpu_train_and_serve/{naming.run_key(run.dag_id, run.run_id)}"
        keys = bucket_keys(object_stores, run_dir)
        assert any(key.endswith("/model/config.json") for key in keys), keys
        assert any(key.endswith("/benchmark/benchmark.png") for key in keys), keys
        assert emulator.labelled(naming.RUN_LABEL, naming.run_key(run.dag_id, run.run_id)) == []
        pid = emulator.process.pid
    assert processes_with_marker(pid) == []
