"""gpu_train_and_serve end to end on the emulator, in Airflow (dag.test on the session's metadata DB)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.models.renderedtifields import RenderedTaskInstanceFields
from airflow.sdk.exceptions import ParamValidationError
from gpuflow_emulator.stores import StoresConfig
from gpuflow_emulator.testing import EmulatorProcess, free_port
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from gpuflow.core import naming
from gpuflow.core.handoffs import PoolHandoff
from gpuflow.operators.runtime import JOB_NAMESPACE
from gpuflow.state.store import BlockStore
from tests.support.emulated_clouds import FAKE_TRAINING, bucket_keys
from tests.support.rerun import clear_and_rerun

ROOT = Path(__file__).resolve().parents[2]
CONF: dict[str, Any] = {
    "accelerator": "L4",
    "count": 1,
    "capacity": "on-demand",
    "job_name": "e2e",
    **FAKE_TRAINING,
    "served_model_name": "tiny",
    "benchmark_requests": 4,
    "benchmark_rate": 20.0,
}


@pytest.fixture
def dag(airflow_db: Path) -> Any:
    """A fresh DAG per test: ``dag.test`` writes a run's conf into the DAG object's params."""
    return DagBag(dag_folder=str(ROOT / "dags" / "gpu_train_and_serve.py")).dags["gpu_train_and_serve"]


def task_states(run: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def run_objects(emulator: EmulatorProcess, run: Any) -> list[str]:
    """Every pool and Kubernetes object on the emulator that carries the run's label."""
    return emulator.labelled(naming.RUN_LABEL, naming.run_key(run.dag_id, run.run_id))


def test_happy_path_trains_serves_benchmarks_and_leaves_nothing(dag: Any, clouds_emulator: EmulatorProcess) -> None:
    run = dag.test(run_conf={**CONF, "clouds": ["gcp"]})
    states = task_states(run)
    assert run.state == "success", states
    assert states.pop("watcher") == "success"  # the verdict: every work task did its work
    assert set(states.values()) == {"success"}
    assert run_objects(clouds_emulator, run) == []
    calls = clouds_emulator.calls("gcp")
    assert any(c.get("operation", "").lower().startswith("create") for c in calls), calls[:3]


@pytest.mark.parametrize(("cloud", "accelerator"), [("aws", "L4"), ("azure", "T4")])  # Azure offers no L4
def test_the_model_is_trained_into_the_clusters_bucket_and_the_endpoint_downloads_it(
    dag: Any, clouds_emulator: EmulatorProcess, object_stores: StoresConfig, cloud: str, accelerator: str
) -> None:
    """Pods see nothing of the worker's disk: the model must go to the bucket of the cluster the run lands on (in
    its cloud), and the endpoint's init container must copy it from there before vLLM (the double refuses a model
    directory without config.json) starts. gcp is the happy path's."""
    run = dag.test(run_conf={**CONF, "clouds": [cloud], "accelerator": accelerator, "benchmark_requests": 0})
    states = task_states(run)
    assert run.state == "success", states
    ti = next(ti for ti in run.get_task_instances() if ti.task_id == "wait_node_pool")
    cluster = PoolHandoff.from_xcom(ti.xcom_pull(task_ids="wait_node_pool")).cluster
    assert cluster.cloud == cloud
    run_dir = f"{cluster.artifacts}/{run.dag_id}/{naming.run_key(run.dag_id, run.run_id)}"
    assert any(key.endswith("/model/config.json") for key in bucket_keys(object_stores, run_dir)), run_dir


def test_conf_outside_the_form_schema_is_refused_at_trigger(dag: Any, clouds_emulator: EmulatorProcess) -> None:
    with pytest.raises(ParamValidationError, match="job_name"):
        dag.test(run_conf={**CONF, "job_name": "Not DNS safe!"})
    assert all(clouds_emulator.calls(cloud) == [] for cloud in ("aws", "gcp", "azure"))


@pytest.mark.parametrize(
    ("bad", "artifacts"),
    [
        ({"accelerator": "H10"}, None),
        ({"hf_token_conn_id": "hf_missing"}, None),
        ({"hf_token_conn_id": "gpuflow_azure"}, None),
        ({"output_uri": "/srv/gpuflow/run"}, None),
        ({}, "/srv/gpuflow/artifacts"),
    ],
    ids=[
        "unknown-accelerator",
        "token-connection-missing",
        "not-a-token-connection",
        "output-on-the-workers-disk",
        "artifacts-on-the-workers-disk",
    ],
)
def test_invalid_request_fails_in_the_first_task_before_any_cloud_call(
    dag: Any, clouds_emulator: EmulatorProcess, bad: dict[str, str], artifacts: str | None, monkeypatch: Any
) -> None:
    if artifacts:  # a cloud pod cannot see the worker's disk: the model would be lost (clusters.yaml, local)
        monkeypatch.setenv("GPUFLOW_ARTIFACTS_URI", artifacts)
    run = dag.test(run_conf={**CONF, **bad})
    states = task_states(run)
    assert run.state == "failed"
    assert states["plan"] == "failed"
    assert states["create_node_pool"] != "success"
    assert all(clouds_emulator.calls(cloud) == [] for cloud in ("aws", "gcp", "azure"))


@pytest.mark.parametrize("clouds_emulator", ["stockout-cheapest-region"], indirect=True)
def test_stockout_after_acceptance_fails_over_and_is_remembered(dag: Any, clouds_emulator: EmulatorProcess) -> None:
    run = dag.test(run_conf={**CONF, "clouds": ["gcp"], "benchmark_requests": 0})
    assert run.state == "success", task_states(run)
    ready = next(ti for ti in run.get_task_instances() if ti.task_id == "wait_node_pool").xcom_pull(
        task_ids="wait_node_pool"
    )
    assert ready["choice"]["region"] != "us-central1"
    assert any("failed after acceptance" in line and "us-central1" in line for line in ready["attempts"])
    assert run_objects(clouds_emulator, run) == []
    first = ready["attempts"][0].split()[0]  # cloud/region/zone of the option that stocked out
    blocked = BlockStore().active(datetime.now(UTC))
    assert any(f"{b.cloud}/{b.region}/{b.zone}" == first for b in blocked)
    replanned = dag.test(run_conf={**CONF, "clouds": ["gcp"], "benchmark_requests": 0})
    plan = next(ti for ti in replanned.get_task_instances() if ti.task_id == "plan").xcom_pull(task_ids="plan")
    chosen = plan["plan"]["chosen"]
    assert f"{chosen['cloud']}/{chosen['region']}/{chosen['availability_zone']}" != first
    assert plan["plan"]["rejected"]["blocked"] >= 1


@pytest.mark.parametrize("clouds_emulator", ["quota-exhausted-gcp"], indirect=True)
def test_global_quota_on_one_cloud_moves_the_run_to_another(dag: Any, clouds_emulator: EmulatorProcess) -> None:
    run = dag.test(run_conf={**CONF, "clouds": ["gcp", "aws"], "benchmark_requests": 0})
    assert run.state == "success", task_states(run)
    ready = next(ti for ti in run.get_task_instances() if ti.task_id == "wait_node_pool").xcom_pull(
        task_ids="wait_node_pool"
    )
    assert ready["choice"]["cloud"] == "aws"
    assert run_objects(clouds_emulator, run) == []


def test_training_that_exits_non_zero_fails_the_run_and_tears_everything_down(
    dag: Any, clouds_emulator: EmulatorProcess
) -> None:
    failing = ["python", "-c", "import sys; print('diverged at step 3'); sys.exit(1)"]
    run = dag.test(run_conf={**CONF, "clouds": ["gcp"], "training_command": failing})
    states = task_states(run)
    assert run.state == "failed"
    assert states["train"] == "failed"
    assert states["deploy_endpoint"] == "upstream_failed"
    assert states["teardown"] == "success"
    assert run_objects(clouds_emulator, run) == []


def test_a_fallback_cloud_that_cannot_be_reached_does_not_spare_the_run_s_pool(
    dag: Any, clouds_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS is only a fallback of the plan, and its API is down (expired credentials would do the same): the
    teardown still deletes the GCP pool and endpoint, then fails the run naming the cluster it could not check."""
    aws = json.loads(os.environ["AIRFLOW_CONN_GPUFLOW_AWS"])
    aws["extra"]["endpoint_url"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("AIRFLOW_CONN_GPUFLOW_AWS", json.dumps(aws))
    run = dag.test(run_conf={**CONF, "clouds": ["gcp", "aws"], "benchmark_requests": 0})
    states = task_states(run)
    plan = next(ti for ti in run.get_task_instances() if ti.task_id == "plan").xcom_pull(task_ids="plan")
    assert plan["plan"]["chosen"]["cloud"] == "gcp"
    assert any(option["cloud"] == "aws" for option in plan["plan"]["fallbacks"])
    assert states["smoke_test"] == "success"
    assert states["teardown"] == "failed"
    assert run.state == "failed"
    assert run_objects(clouds_emulator, run) == []


@pytest.mark.parametrize("clouds_emulator", ["stockout-everywhere"], indirect=True)
def test_stockout_everywhere_fails_after_trying_every_option_and_leaves_nothing(
    dag: Any, clouds_emulator: EmulatorProcess
) -> None:
    run = dag.test(run_conf={**CONF, "clouds": ["gcp", "azure"], "benchmark_requests": 0})
    states = task_states(run)
    assert run.state == "failed"
    assert states["wait_node_pool"] == "failed"
    assert states["teardown"] == "success"
    assert run_objects(clouds_emulator, run) == []


@pytest.mark.parametrize("clouds_emulator", ["eks-nodes-cannot-join"], indirect=True)
def test_nodes_that_cannot_join_stop_the_run_instead_of_failing_over(
    dag: Any, clouds_emulator: EmulatorProcess
) -> None:
    """A misconfigured EKS cluster (NodeCreationFailure) fails every offer alike: stop, say what to fix."""
    run = dag.test(run_conf={**CONF, "clouds": ["aws"], "benchmark_requests": 0})
    states = task_states(run)
    assert run.state == "failed"
    assert states["wait_node_pool"] == "failed"
    assert states["teardown"] == "success"
    plan = next(ti for ti in run.get_task_instances() if ti.task_id == "plan").xcom_pull(task_ids="plan")
    assert plan["plan"]["fallbacks"]  # there were other AWS offers to walk through
    creates = [c for c in clouds_emulator.calls("aws") if c["operation"] == "CreateNodegroup"]
    assert len(creates) == 1  # none of them was tried: each would launch GPU instances that never join
    assert run_objects(clouds_emulator, run) == []


@pytest.mark.parametrize("clouds_emulator", ["real-answers-one-run"], indirect=True)
def test_the_clouds_real_answers_are_retried_or_failed_over_as_they_mean(
    dag: Any, clouds_emulator: EmulatorProcess
) -> None:
    """GKE "please wait" is retried; GKE RUNNING_WITH_ERROR, a regional GPU quota (a bare 403, not refused
    credentials) and an EKS launch failure while CREATING each fail over at once; the run ends on EKS us-west-2."""
    run = dag.test(run_conf={**CONF, "clouds": ["gcp", "aws"], "benchmark_requests": 0})
    assert run.state == "success", task_states(run)
    ready = next(ti for ti in run.get_task_instances() if ti.task_id == "wait_node_pool").xcom_pull(
        task_ids="wait_node_pool"
    )
    assert (ready["choice"]["cloud"], ready["choice"]["region"]) == ("aws", "us-west-2")
    creates = [c["status"] for c in clouds_emulator.calls("gcp") if c["operation"] == "CreateNodePool"]
    assert creates[:3] == [400, 200, 403]  # please wait, then accepted; europe-west4 refused with its quota
    blocked = {(b.cloud, b.region, b.zone, b.quota_family) for b in BlockStore().active(datetime.now(UTC))}
    assert ("gcp", "us-central1", "us-central1-a", None) in blocked  # the stockout: that offer
    assert ("gcp", "europe-west4", None, "L4") in blocked  # the quota: L4s in that region, not the cloud
    assert ("aws", "us-east-1", "use1-az1", None) in blocked
    assert run_objects(clouds_emulator, run) == []


SECRET = "hf_planted_secret_7f3a9c"


def test_the_hugging_face_token_reaches_only_the_kubernetes_secret(
    dag: Any, clouds_emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_HF_GPUFLOW", json.dumps({"conn_type": "generic", "password": SECRET}))
    run = dag.test(run_conf={**CONF, "clouds": ["gcp"], "hf_token_conn_id": "hf_gpuflow", "benchmark_requests": 0})
    assert run.state == "success", task_states(run)
    logs = capfd.readouterr()
    assert "Secret/" in logs.out + logs.err  # the token did go to the endpoint, as a Kubernetes Secret
    assert SECRET not in logs.out + logs.err
    for ti in run.get_task_instances():
        assert SECRET not in json.dumps(ti.xcom_pull(task_ids=ti.task_id), default=str), ti.task_id
        rendered = RenderedTaskInstanceFields.get_templated_fields(ti) or {}
        assert SECRET not in json.dumps(rendered, default=str), ti.task_id
    assert run_objects(clouds_emulator, run) == []


def test_an_endpoint_that_keeps_crashing_fails_fast_with_its_log(
    dag: Any, clouds_emulator: EmulatorProcess, capfd: pytest.CaptureFixture[str]
) -> None:
    # The python image cannot run vLLM's arguments: the container exits at once, again and again.
    run = dag.test(run_conf={**CONF, "clouds": ["gcp"], "serving_image": "python:3.11-slim"})
    states = task_states(run)
    assert run.state == "failed"
    assert states["wait_endpoint"] == "failed"
    logs = capfd.readouterr()
    assert "EndpointCrashLooping" in logs.out + logs.err
    assert "restarted" in logs.out + logs.err
    assert states["teardown"] == "success"
    assert run_objects(clouds_emulator, run) == []


@pytest.mark.parametrize("clouds_emulator", ["flaky-api"], indirect=True)
def test_a_flaky_cloud_api_is_ridden_out_without_duplicates(dag: Any, clouds_emulator: EmulatorProcess) -> None:
    """Throttled creates and a 5xx on every third read: retried where transient, one pool, nothing left."""
    run = dag.test(run_conf={**CONF, "clouds": ["gcp"], "benchmark_requests": 0})
    assert run.state == "success", task_states(run)
    calls = clouds_emulator.calls("gcp")
    assert any(c.get("injected") for c in calls), "the scenario injected no fault"
    accepted = [c for c in calls if c["operation"] == "CreateNodePool" and c["status"] == 200]
    assert len(accepted) == 1, accepted
    assert run_objects(clouds_emulator, run) == []


def cluster_clients(emulator: EmulatorProcess) -> list[Any]:
    """A Kubernetes API client for each emulated cluster."""
    kubeconfigs = sorted((emulator.directory / "kubeconfigs").glob("*.yaml"))
    return [k8s_config.new_client_from_config(str(kubeconfig)) for kubeconfig in kubeconfigs]


@contextmanager
def pods_killed_when_running(emulator: EmulatorProcess, selector: str) -> Iterator[list[str]]:
    """While the block runs, delete every pod matching the label ``selector`` on any cluster as soon as it runs,
    as an eviction or ``kubectl delete pod`` would; yields the uids of the pods killed so far."""
    apis = [k8s.CoreV1Api(client) for client in cluster_clients(emulator)]
    killed: list[str] = []
    done = threading.Event()

    def kill() -> None:
        while not done.wait(0.2):
            for api in apis:
                for pod in api.list_namespaced_pod(JOB_NAMESPACE, label_selector=selector).items:
                    if pod.status.phase == "Running" and pod.metadata.uid not in killed:
                        api.delete_namespaced_pod(pod.metadata.name, JOB_NAMESPACE)
                        killed.append(pod.metadata.uid)

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    try:
        yield killed
    finally:
        done.set()
        killer.join()


def test_a_training_pod_killed_on_every_try_fails_the_run_and_tears_everything_down(
    dag: Any, clouds_emulator: EmulatorProcess
) -> None:
    """The pod running the train task is deleted underneath it mid-run, on the first try and on the retry."""
    endless = ["python", "-c", "import time; print('training step 1', flush=True); time.sleep(120)"]
    with pods_killed_when_running(clouds_emulator, "task_id=train") as killed:  # KubernetesPodOperator's label
        run = dag.test(run_conf={**CONF, "clouds": ["gcp"], "training_command": endless, "benchmark_requests": 0})
    states = task_states(run)
    assert run.state == "failed", states
    train = next(ti for ti in run.get_task_instances() if ti.task_id == "train")
    assert (train.state, train.try_number) == ("failed", 2)
    assert len(killed) == 2, killed  # one pod per try, each killed while it ran
    assert train.duration < 60, "the last try waited for its pod's command instead of failing when it was killed"
    assert states["deploy_endpoint"] == "upstream_failed"
    assert states["teardown"] == "success"
    assert run_objects(clouds_emulator, run) == []


def endpoint_objects(emulator: EmulatorProcess, run: Any) -> dict[str, str]:
    """``kind/name`` -> uid of the run's Deployments, Services and Secrets on every cluster."""
    selector = f"{naming.RUN_LABEL}={naming.run_key(run.dag_id, run.run_id)}"
    found = {}
    for client in cluster_clients(emulator):
        core, apps = k8s.CoreV1Api(client), k8s.AppsV1Api(client)
        for kind, listing in (
            ("deployment", apps.list_namespaced_deployment(JOB_NAMESPACE, label_selector=selector)),
            ("service", core.list_namespaced_service(JOB_NAMESPACE, label_selector=selector)),
            ("secret", core.list_namespaced_secret(JOB_NAMESPACE, label_selector=selector)),
        ):
            found.update({f"{kind}/{item.metadata.name}": item.metadata.uid for item in listing.items})
    return found


def test_clearing_deploy_endpoint_mid_run_reruns_it_without_duplicates(
    dag: Any, clouds_emulator: EmulatorProcess
) -> None:
    """Clear deploy_endpoint and its downstream while the run's pool and endpoint exist, as a retry mid-run would
    (Airflow re-runs the setup create_node_pool with it): the same pool and the same endpoint objects are found
    and updated in place; then the teardown removes them."""
    in_flight = "teardown|cost_report"  # marked done without running, so the run's resources stay up
    run = dag.test(run_conf={**CONF, "clouds": ["gcp"], "benchmark_requests": 0}, mark_success_pattern=in_flight)
    assert run.state == "success", task_states(run)
    pools = [p["name"] for p in clouds_emulator.pools()]
    endpoint = endpoint_objects(clouds_emulator, run)
    assert len(pools) == 1
    assert {key.split("/")[0] for key in endpoint} == {"deployment", "service"}

    rerun = clear_and_rerun(dag, run, "deploy_endpoint", mark_success_pattern=in_flight)
    tries = {ti.task_id: (ti.state, ti.try_number) for ti in rerun.get_task_instances()}
    assert rerun.state == "success", tries
    for task_id in ("create_node_pool", "deploy_endpoint", "wait_endpoint", "smoke_test"):
        assert tries[task_id] == ("success", 2), (task_id, tries)
    assert tries["train"] == ("success", 1)
    assert [p["name"] for p in clouds_emulator.pools()] == pools
    assert endpoint_objects(clouds_emulator, run) == endpoint  # same uids: replaced in place, not recreated
    creates = [c["status"] for c in clouds_emulator.calls("gcp") if c["operation"] == "CreateNodePool"]
    assert creates == [200, 409]  # the re-run's create found the run's pool (same name) and used it

    # A retried train after the training finished (its progress.json says so) starts no training pod: paid work is
    # never done twice.
    retrained = clear_and_rerun(dag, run, "train", mark_success_pattern=in_flight)
    assert retrained.state == "success", task_states(retrained)
    train = next(ti for ti in retrained.get_task_instances() if ti.task_id == "train")
    assert (train.state, train.try_number) == ("success", 2)
    assert len(list((clouds_emulator.directory / "pods").glob("*/*/train-*"))) == 1

    done = clear_and_rerun(dag, run, "teardown")
    assert done.state == "success", task_states(done)
    assert run_objects(clouds_emulator, run) == []
