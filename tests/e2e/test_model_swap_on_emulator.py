"""A named endpoint, end to end with real work: train a tiny Llama, serve it with real vLLM (CPU), promote a
retrained one onto it under a steady load, refuse a model that fails the gate, load a LoRA adapter trained on the live
model into its pod without a restart, and delete the endpoint.

The first run is also the pipeline's test with real training and serving: smoke test, benchmark, artifacts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
from gpuflow_emulator.stores import StoresConfig
from gpuflow_emulator.testing import EmulatorProcess, eventually, processes_with_marker
from sqlalchemy import select

from gpuflow.clouds.base import backend_for
from gpuflow.core import naming
from gpuflow.core.clusters import Cluster
from gpuflow.core.handoffs import PoolHandoff
from gpuflow.kube.cluster import api_client, read_service, serving_pods
from gpuflow.operators.runtime import JOB_NAMESPACE
from gpuflow.serving.client import OpenAIClient, service_proxy_endpoint
from gpuflow.serving.load import SteadyLoad
from gpuflow.serving.vllm_args import PORT
from tests.support.emulated_clouds import bucket_keys, point_airflow_at, start_emulator

ROOT = Path(__file__).resolve().parents[2]
ML_PYTHON = ROOT / ".venv-ml" / "bin" / "python"
ENDPOINT = "chat"
MODEL = "gpuflow-tiny"
PROMPT = "The quick brown fox"
CONF: dict[str, Any] = {
    "accelerator": "L4",
    "count": 1,
    "capacity": "on-demand",
    "clouds": ["gcp"],
    "job_name": "real",
    "dataset_uri": str(ROOT / "include" / "training" / "data" / "corpus.txt"),
    "served_model_name": MODEL,
    "max_model_len": 256,
    "benchmark_requests": 0,
    "endpoint_name": ENDPOINT,
    # Two vLLMs on two shared cores: the CPU's noise is not what this test measures; the bad run's bound is.
    "gate_ttft_p99_ratio": 100,
    "gate_throughput_ratio": 0,
    # Every revision loads LoRA adapters at run time, for the adapter run.
    "enable_lora": True,
    "max_lora_rank": 8,
}

pytestmark = [
    pytest.mark.skipif(not ML_PYTHON.exists(), reason="build the ML environment with `make ml-env`"),
    pytest.mark.timeout(900),  # five runs, two vLLM starts: about 5 minutes here, more on a loaded machine
]


def training(seed: int, steps: int) -> list[str]:
    return ["python", "-m", "gpuflow_training", "--steps", str(steps), "--seed", str(seed)]


class Swap:
    """The emulator, the DAGs and the endpoint's cluster, shared by the test's runs."""

    def __init__(self, emulator: EmulatorProcess) -> None:
        self.deleter = dag("gpu_endpoint_delete")
        self.emulator = emulator
        self.cluster: Cluster | None = None

    def run(self, **conf: Any) -> Any:
        # A fresh DAG each time: DAG.test() leaves a run's conf in the DAG's params, where the next run would find it.
        run = dag("gpu_train_and_serve").test(run_conf={**CONF, **conf})
        pool = xcom(run, "wait_node_pool")
        if self.cluster is None and pool:
            self.cluster = PoolHandoff.from_xcom(pool).cluster
        return run

    def client(self, timeout_s: float = 30) -> OpenAIClient:
        assert self.cluster is not None
        config = backend_for(self.cluster).kube_config()
        return OpenAIClient(service_proxy_endpoint(config, JOB_NAMESPACE, ENDPOINT, PORT), timeout_s=timeout_s)

    def answer(self) -> str:
        with self.client() as client:
            return client.complete(MODEL, PROMPT, max_tokens=12, temperature=0).text

    def live_revision(self) -> str:
        assert self.cluster is not None
        service = read_service(api_client(backend_for(self.cluster).kube_config()), JOB_NAMESPACE, ENDPOINT)
        assert service is not None, "the endpoint's front Service is gone"
        return str(service["selector"][naming.REVISION_LABEL])

    def serving_pods(self) -> dict[str, tuple[str, int]]:
        """The live revision's pods: name -> (uid, restarts)."""
        assert self.cluster is not None
        client = api_client(backend_for(self.cluster).kube_config())
        return serving_pods(client, JOB_NAMESPACE, f"{naming.REVISION_LABEL}={self.live_revision()}")

    def of_run(self, run: Any) -> list[str]:
        return self.emulator.labelled(naming.RUN_LABEL, naming.run_key(run.dag_id, run.run_id))


class LoadThroughPromotion(threading.Thread):
    """A steady load through the endpoint from the moment the run's ``promote`` task runs until ``stop``: training
    beside a busy vLLM on two cores would crawl, and the swap is what is measured."""

    def __init__(self, swap: Swap) -> None:
        super().__init__(name="load-through-promotion", daemon=True)
        self.swap = swap
        self.stopping = threading.Event()
        self.load: SteadyLoad | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            eventually(self._promoting, timeout=1200, interval=0.2, what="the promote task to run")
            with self.swap.client() as client, SteadyLoad(client, MODEL) as self.load:
                self.stopping.wait()
        except BaseException as exc:  # reported by the test, on its own thread
            self.error = exc

    def stop(self) -> SteadyLoad:
        self.stopping.set()
        self.join(timeout=60)
        if self.error is not None:
            raise self.error
        assert self.load is not None
        return self.load

    @staticmethod
    def _promoting() -> bool:
        with create_session() as session:
            running = select(TaskInstance.run_id).where(
                TaskInstance.task_id == "promote", TaskInstance.state == "running"
            )
            return session.scalar(running) is not None


def dag(dag_id: str) -> Any:
    return DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py")).dags[dag_id]


def xcom(run: Any, task_id: str, key: str = "return_value") -> Any:
    return next(ti for ti in run.get_task_instances() if ti.task_id == task_id).xcom_pull(task_ids=task_id, key=key)


def states(run: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


@pytest.fixture
def swap(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, object_stores: StoresConfig
) -> Iterator[Swap]:
    with start_emulator(tmp_path / "emulator", "default", object_stores, real_ml=True) as emulator:
        point_airflow_at(emulator, monkeypatch, tmp_path, object_stores)
        monkeypatch.setenv("GPUFLOW_SWAP_DRAIN_S", "3")
        yield Swap(emulator)
        pid = emulator.process.pid
    assert processes_with_marker(pid) == []


def test_a_named_endpoint_is_created_swapped_under_load_kept_on_a_failed_gate_and_deleted(
    swap: Swap, object_stores: StoresConfig
) -> None:
    # 0. An adapter needs a live model to adapt: refused at plan, before anything is paid for.
    early = swap.run(job_name="tuned", adapter_rank=4)
    assert (early.state, states(early)["plan"]) == ("failed", "failed")
    assert swap.emulator.labelled(naming.RUN_LABEL, naming.run_key(early.dag_id, early.run_id)) == []

    # 1. The endpoint does not exist: the run trains, serves, benchmarks, and creates it.
    first = swap.run(training_command=training(seed=1, steps=30), benchmark_requests=8)
    assert first.state == "success", states(first)
    smoke = xcom(first, "smoke_test")
    assert smoke["completion_text"].strip()
    assert smoke["chat_text"].strip()
    assert any(m.startswith("vllm:") for m in smoke["metrics"])
    bench = xcom(first, "benchmark")
    assert (bench["completed"], bench["failed"]) == (8, 0)
    assert 0 < bench["ttft"]["median_ms"] <= bench["e2el"]["median_ms"]
    assert swap.cluster is not None
    run_dir = f"{swap.cluster.artifacts}/gpu_train_and_serve/{naming.run_key(first.dag_id, first.run_id)}"
    keys = bucket_keys(object_stores, run_dir)
    assert any(key.endswith("/model/config.json") for key in keys), keys
    assert any(key.endswith("/benchmark/benchmark.png") for key in keys), keys
    assert xcom(first, "promote")["previous"] is None
    kept = xcom(first, "teardown")["kept"]
    assert kept["endpoint"] == ENDPOINT
    assert kept["expires_at"] is None
    assert not [r for r in swap.of_run(first) if r.startswith("pod/") and "train" in r], "training pod left"
    first_revision, first_answer = swap.live_revision(), swap.answer()

    # 2. A retrained model takes the endpoint over, with a steady load through it for the whole promotion.
    through = LoadThroughPromotion(swap)
    through.start()
    second = swap.run(training_command=training(seed=2, steps=20))
    load = through.stop()
    assert second.state == "success", states(second)
    assert (load.failed, load.sent > 20) == (0, True), f"{load.failed} of {load.sent} requests failed"
    promoted = xcom(second, "promote")
    assert promoted["previous"] == first_revision
    assert promoted["load"]["during"]["failed"] == 0
    assert promoted["load"]["during"]["sent"] > 0
    logging.getLogger(__name__).warning("swap figures: %s; test load %s", promoted, load.figures().describe())
    assert swap.live_revision() == promoted["revision"] != first_revision
    assert swap.answer() != first_answer, "the endpoint still answers as the first model"
    assert swap.of_run(first) == [], "the retired revision or its pool is left"

    # 3. A model that fails the gate: the run fails naming it, the live model keeps serving, nothing is left of it.
    second_answer = swap.answer()
    third = swap.run(training_command=training(seed=3, steps=10), gate_throughput_ratio=100)
    assert third.state == "failed"
    assert states(third)["promote"] == "failed"
    gate = xcom(third, "promote", key="gate")
    assert not gate["passed"]
    assert "gate_throughput_ratio" in gate["reasons"][0]
    assert swap.live_revision() == promoted["revision"]
    assert swap.answer() == second_answer
    assert swap.of_run(third) == []

    # 4. An adapter trained on the live model is loaded into its pod at run time: no new pod, no restart, the base
    # model's answers unchanged and its steady load unbroken.
    pods = swap.serving_pods()
    tuned = swap.run(job_name="tuned", adapter_rank=4, training_command=training(seed=4, steps=10))
    assert tuned.state == "success", states(tuned)
    assert xcom(tuned, "deploy_endpoint") is None  # no revision of its own
    loaded = xcom(tuned, "promote")
    logging.getLogger(__name__).warning("adapter load figures: %s", loaded)
    assert (loaded["adapter"], loaded["revision"], loaded["restarted"]) == ("tuned", promoted["revision"], 0)
    assert loaded["load"]["during"]["failed"] == 0
    assert swap.serving_pods() == pods
    with swap.client() as client:
        assert "tuned" in client.models()
        assert client.complete("tuned", PROMPT, max_tokens=12, temperature=0).text.strip()
    assert swap.answer() == second_answer
    assert swap.of_run(tuned) == []

    # 5. Deleting the endpoint is an explicit act, and leaves nothing.
    deleted = swap.deleter.test(run_conf={"endpoint_name": ENDPOINT})
    assert deleted.state == "success", states(deleted)
    assert swap.emulator.labelled(naming.ENDPOINT_LABEL, ENDPOINT) == []
    assert swap.of_run(second) == []
