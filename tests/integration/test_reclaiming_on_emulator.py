"""The janitor's cluster work on the emulator: a cluster whose API fails is reported, the others still swept."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from functools import partial

import pytest
from gpuflow_emulator.testing import EmulatorProcess

from gpuflow.clouds.base import backend_for
from gpuflow.clouds.calls import retrying
from gpuflow.core import naming
from gpuflow.core.catalog import load_catalog
from gpuflow.core.clusters import load_clusters
from gpuflow.core.janitor import RunInfo, RunState, judge
from gpuflow.core.nodepool import NodePoolSpec
from gpuflow.operators.runtime import JOB_NAMESPACE
from gpuflow.reclaiming import found_in, reclaim
from gpuflow.sweep import survey

CHOICE = {
    "cloud": "gcp",
    "region": "us-central1",
    "availability_zone": "us-central1-a",
    "instance_type": "g2-standard-4",
    "accelerator": "L4",
    "accelerator_count": 1,
    "nodes": 2,
    "capacity_type": "on-demand",
}


def test_a_failing_cluster_is_reported_and_the_others_are_still_swept(clouds_emulator: EmulatorProcess) -> None:
    configured = load_clusters()
    gke = configured.for_region("gcp", "us-central1")
    spec = NodePoolSpec.from_choice(CHOICE, gke, dag_id="gpu_train_and_serve", run_id="crashed")
    backend_for(gke).create_node_pool(spec)
    missing = dataclasses.replace(configured.for_region("aws", "us-east-1"), name="no-such-cluster")

    sweeps = [survey(missing, JOB_NAMESPACE), survey(gke, JOB_NAMESPACE)]
    found = [item for sweep in sweeps for item in found_in(sweep, load_catalog().offers)]
    (pool,) = found
    assert (pool.name, pool.gpus) == (spec.name, 2)
    assert pool.hourly_usd is not None
    now = datetime.now(UTC)
    verdicts = judge(found, {naming.run_key("gpu_train_and_serve", "crashed"): RunInfo(RunState.FAILED)}, now)
    failed = reclaim(sweeps, verdicts).failed

    assert list(failed) == ["aws/no-such-cluster"]
    assert "ResourceNotFoundException" in failed["aws/no-such-cluster"]
    states = {p["name"]: p["state"] for p in clouds_emulator.pools()}
    assert states.get(spec.name, "GONE") in {"DELETING", "GONE"}
    assert survey(gke, JOB_NAMESPACE).pools == []  # a pool already deleting is not judged again


@pytest.mark.parametrize("clouds_emulator", ["busy-gke-cluster"], indirect=True)
def test_a_delete_refused_with_please_wait_is_tried_again(clouds_emulator: EmulatorProcess) -> None:
    """GKE's 400 FAILED_PRECONDITION "please wait and try again" must not end the cluster's sweep."""
    gke = load_clusters().for_region("gcp", "us-central1")
    spec = NodePoolSpec.from_choice(CHOICE, gke, dag_id="gpu_train_and_serve", run_id="busy")
    backend = backend_for(gke)
    retrying(partial(backend.create_node_pool, spec), what="create", sleep=lambda _: time.sleep(0.2))

    sweep = survey(gke, JOB_NAMESPACE)
    verdicts = judge(
        found_in(sweep, load_catalog().offers),
        {naming.run_key("gpu_train_and_serve", "busy"): RunInfo(RunState.FAILED)},
        datetime.now(UTC),
    )
    assert reclaim([sweep], verdicts).failed == {}
    deletes = [c["status"] for c in clouds_emulator.calls("gcp") if c["operation"] == "DeleteNodePool"]
    assert deletes == [400, 200]
