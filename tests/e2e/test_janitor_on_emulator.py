"""gpu_janitor, keep-time and the endpoint watchdog end to end on the emulator, in Airflow (dag.test on the
session's metadata DB).

Leaks are planted the way runs make them: pools through the cloud backends (so the clouds hold them with
their real labels), endpoint objects through the Kubernetes API, run labels in the run registry.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from gpuflow_emulator.testing import EmulatorProcess, eventually

from gpuflow.clouds.base import backend_for
from gpuflow.core import naming
from gpuflow.core.nodepool import NodePoolRef
from gpuflow.kube.cluster import api_client, apply, label_objects, labelled_objects
from gpuflow.kube.objects import metadata
from gpuflow.operators.runtime import JOB_NAMESPACE
from gpuflow.serving.client import OpenAIClient, service_proxy_endpoint
from gpuflow.serving.load import SteadyLoad
from gpuflow.serving.vllm_args import PORT
from gpuflow.state.runs import RunRegistry
from tests.e2e.test_pipeline_on_emulator import CONF, run_objects, task_states
from tests.support.offers import cluster_of, one_gpu_pool_spec

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "gpu_train_and_serve"


def dag_from(file: str, dag_id: str) -> Any:
    return DagBag(dag_folder=str(ROOT / "dags" / file)).dags[dag_id]


@pytest.fixture
def janitor(airflow_db: Path) -> Any:
    return dag_from("gpu_janitor.py", "gpu_janitor")


@pytest.fixture
def watchdog(airflow_db: Path) -> Any:
    return dag_from("gpu_endpoint_watchdog.py", "gpu_endpoint_watchdog")


@pytest.fixture
def pipeline(airflow_db: Path) -> Any:
    return dag_from("gpu_train_and_serve.py", PIPELINE)


def plant_pool(cloud: str, run_id: str, labels: dict[str, str] | None = None) -> NodePoolRef:
    """A 1-node GPU pool requested through the cloud's backend; ``labels`` replace the run's own labels."""
    spec = one_gpu_pool_spec(cloud, dag_id=PIPELINE, run_id=run_id)
    if labels is not None:
        spec = dataclasses.replace(spec, labels=labels)
    return backend_for(spec.cluster).create_node_pool(spec)


def plant_endpoint(cloud: str, run_id: str, extra: dict[str, str] | None = None) -> Any:
    """A Secret, a Service and a sleeping Deployment carrying the run's labels (plus ``extra``)."""
    labels = {**naming.ownership_labels(PIPELINE, run_id), **(extra or {})}
    name = f"ep-{naming.run_key(PIPELINE, run_id)[:8]}"
    pod = {"containers": [{"name": "main", "image": "python:3.11-slim", "command": ["sleep", "600"]}]}
    selector = {"app": name}
    manifests = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": metadata(name, JOB_NAMESPACE, labels)},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(name, JOB_NAMESPACE, labels),
            "spec": {"selector": selector, "ports": [{"port": 8000}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(name, JOB_NAMESPACE, labels),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {"metadata": {"labels": {**labels, **selector}}, "spec": pod},
            },
        },
    ]
    client = api_client(backend_for(cluster_of(cloud)).kube_config())
    apply(client, manifests)
    return client


def ended_run(pipeline: Any) -> str:
    """A real run of the pipeline that failed (an invalid request), as a crashed run's owner."""
    run = pipeline.test(run_conf={**CONF, "accelerator": "H10"})
    assert run.state == "failed"
    return str(run.run_id)


def pools_by_name(emulator: EmulatorProcess) -> dict[str, str]:
    return {p["name"]: p["state"] for p in emulator.pools()}


def watch(watchdog: Any) -> dict[str, Any]:
    run = watchdog.test()
    assert run.state == "success", task_states(run)
    result: dict[str, Any] = next(ti for ti in run.get_task_instances()).xcom_pull(task_ids="watch")
    return result


def sweep(janitor: Any) -> dict[str, Any]:
    run = janitor.test()
    assert run.state == "success", task_states(run)
    summary: dict[str, Any] = next(ti for ti in run.get_task_instances()).xcom_pull(task_ids="sweep")
    return summary


def test_janitor_reclaims_crashed_and_expired_runs_keeps_the_rest_and_is_idempotent(
    janitor: Any, pipeline: Any, clouds_emulator: EmulatorProcess
) -> None:
    now = datetime.now(UTC)
    registry = RunRegistry()
    crashed = ended_run(pipeline)
    registry.register(PIPELINE, crashed, now=now)
    crashed_pool = plant_pool("aws", crashed)
    crashed_client = plant_endpoint("aws", crashed)

    expired_pool = plant_pool("gcp", "expired")
    registry.register(PIPELINE, "expired", now=now)  # never run in this Airflow: only its expiry decides
    backend_for(cluster_of("gcp")).label_node_pool(expired_pool, naming.expiry_label(now - timedelta(minutes=1)))
    plant_endpoint("gcp", "expired", naming.expiry_label(now - timedelta(minutes=1)))

    later = naming.expiry_label(now + timedelta(hours=1))
    kept_pool = plant_pool("azure", "kept", {**naming.ownership_labels(PIPELINE, "kept"), **later})
    plant_endpoint("azure", "kept", later)
    theirs = plant_pool("aws", "theirs", {"team": "research"})

    first = sweep(janitor)

    deleted = {(r["kind"], r["name"]) for r in first["resources"] if r["action"] == "deleted"}
    assert ("NodePool", crashed_pool.name) in deleted
    assert ("NodePool", expired_pool.name) in deleted
    assert {kind for kind, name in deleted if name.startswith("ep-")} == {"Deployment", "Service", "Secret"}
    assert len(deleted) == 8  # two pools, two endpoints of three objects
    kept = {r["name"]: r["reason"] for r in first["resources"] if r["action"] == "kept"}
    assert kept[kept_pool.name].startswith("kept until ")
    assert theirs.name not in {r["name"] for r in first["resources"]}  # never even listed
    assert first["gpus_released"] == 2
    assert first["usd_per_hour_stopped"] > 0
    assert first["overdue_gpu_hours"] > 0  # the expired pool, a minute past its keep-time

    states = pools_by_name(clouds_emulator)
    assert states.get(crashed_pool.name, "GONE") in {"DELETING", "GONE"}
    assert states.get(expired_pool.name, "GONE") in {"DELETING", "GONE"}
    assert states[kept_pool.name] != "DELETING"
    assert states[theirs.name] != "DELETING"
    selector = f"{naming.RUN_LABEL}={naming.run_key(PIPELINE, crashed)}"
    assert [o.kind for o in labelled_objects(crashed_client, JOB_NAMESPACE, selector) if not o.deleting] in (
        [],
        ["Pod"],  # the Deployment's pod, until garbage collection takes it
    )
    assert clouds_emulator.labelled(naming.RUN_LABEL, naming.run_key(PIPELINE, "kept"))

    second = sweep(janitor)
    assert [r for r in second["resources"] if r["action"] == "deleted"] == []
    assert second["reclaimed"] == 0


def test_a_kept_endpoint_serves_after_the_run_survives_a_preemption_and_goes_once_expired(
    janitor: Any, watchdog: Any, pipeline: Any, clouds_emulator: EmulatorProcess
) -> None:
    """Kept on an AKS spot pool, which shrinks when its node is preempted and never brings it back: the watchdog
    scales the pool back to its kept size and the endpoint serves again, under load; the janitor removes it all
    once the keep-time is over."""
    conf = {"clouds": ["azure"], "accelerator": "T4", "capacity": "spot", "keep_endpoint_minutes": 30}
    run = pipeline.test(run_conf={**CONF, **conf, "benchmark_requests": 0})
    assert run.state == "success", task_states(run)
    tasks = {t.task_id: t for t in run.get_task_instances()}
    kept = tasks["teardown"].xcom_pull(task_ids="teardown")["kept"]
    name = tasks["deploy_endpoint"].xcom_pull(task_ids="deploy_endpoint")["name"]
    assert sorted(kept["objects"]) == [f"Deployment/{name}", f"Service/{name}"]
    expiry = str(kept["expires_at_epoch"])
    pool = next(p for p in clouds_emulator.pools() if p["name"] == kept["pool"]["name"])
    assert (pool["state"], pool["labels"][naming.EXPIRES_LABEL]) == ("READY", expiry)
    assert pool["labels"][naming.KEPT_NODES_LABEL] == "1"
    assert not [o for o in run_objects(clouds_emulator, run) if o.startswith("pod/e2e-train")]
    backend = backend_for(cluster_of("azure"))
    kubeconfig = backend.kube_config()
    client = api_client(kubeconfig)
    selector = f"{naming.RUN_LABEL}={naming.run_key(run.dag_id, run.run_id)}"
    stamped = {o.ref: o.labels.get(naming.EXPIRES_LABEL) for o in labelled_objects(client, JOB_NAMESPACE, selector)}
    assert {stamped[ref] for ref in kept["objects"]} == {expiry}
    ref = NodePoolRef.from_dict(kept["pool"])
    proxy = service_proxy_endpoint(kubeconfig, JOB_NAMESPACE, name, PORT)
    with OpenAIClient(proxy) as served:
        assert served.models() == ["tiny"]
    assert watch(watchdog)["resized"] == []  # a whole pool is left alone

    with OpenAIClient(proxy, timeout_s=10) as loaded, SteadyLoad(loaded, "tiny") as load:
        load.wait_for_successes(5)
        preempted_at = time.monotonic()
        clouds_emulator.preempt("azure", ref.cluster, ref.name)
        eventually(lambda: backend.get_node_pool(ref).node_count == 0, timeout=60, what="AKS to shrink the pool")
        assert watch(watchdog)["resized"] == [f"azure/{ref.cluster}/{ref.name}"]
        back_after = load.serving_again_after(preempted_at, within_s=180)
    print(
        f"kept endpoint preempted under load: {load.failed} of {load.sent} requests failed, serving again after "
        f"{back_after:.1f}s"
    )
    assert load.failed > 0, "the preemption did not reach the endpoint"

    kept_by_janitor = sweep(janitor)["resources"]
    assert {r["action"] for r in kept_by_janitor} == {"kept"}
    assert {r["name"] for r in kept_by_janitor} == {kept["pool"]["name"], name}

    # The keep-time passes: stamp the expiry in the past, as a shorter keep would have.
    past = naming.expiry_label(datetime.now(UTC) - timedelta(minutes=1))
    backend.label_node_pool(ref, past)
    endpoint = [o for o in labelled_objects(client, JOB_NAMESPACE, selector) if not o.owned]
    label_objects(client, JOB_NAMESPACE, endpoint, past)
    assert watch(watchdog)["resized"] == []  # an expired pool is the janitor's
    deleted = [r for r in sweep(janitor)["resources"] if r["action"] == "deleted"]
    assert sorted((r["kind"], r["name"]) for r in deleted) == sorted(
        [("NodePool", kept["pool"]["name"]), ("Deployment", name), ("Service", name)]
    )
    eventually(lambda: run_objects(clouds_emulator, run) == [], timeout=30, what="nothing of the run left")
