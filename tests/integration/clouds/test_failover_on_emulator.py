"""Failover across clouds with the real backends against the emulator's failure scenarios."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from gpuflow_emulator.testing import EmulatorProcess

from gpuflow.clouds.base import backend_for
from gpuflow.core.catalog import load_catalog
from gpuflow.core.clouds import CLOUDS
from gpuflow.core.clusters import load_clusters
from gpuflow.core.nodepool import NodePoolSpec, PoolState
from gpuflow.core.planner import plan
from gpuflow.core.request import PlanRequest
from gpuflow.provisioning import Provisioner, Run
from gpuflow.state.store import BlockStore
from tests.support.offers import one_gpu_choice


def provisioner(tmp_path: Path) -> Provisioner:
    return Provisioner(
        clusters=load_clusters(),
        memory=BlockStore(f"sqlite:///{tmp_path / 'state.db'}"),
        run=Run("failover_test", "manual__1"),
        sleep=lambda seconds: None,
    )


def settle(spec: NodePoolSpec, timeout: float = 30) -> Any:
    backend = backend_for(spec.cluster)
    deadline = time.monotonic() + timeout
    while True:
        status = backend.get_node_pool(spec.ref)
        if status.state in (PoolState.READY, PoolState.FAILED) or time.monotonic() > deadline:
            return status
        time.sleep(0.3)


@pytest.mark.parametrize("clouds_emulator", ["stockout-two-clouds"], indirect=True)
def test_sync_then_async_stockout_ends_on_the_third_offer(clouds_emulator: EmulatorProcess, tmp_path: Path) -> None:
    p = provisioner(tmp_path)
    choices = [one_gpu_choice(cloud) for cloud in CLOUDS]
    spec, index = p.create_first(choices)
    assert index == 1  # AWS refused synchronously; GCP accepted
    status = settle(spec)
    assert status.state is PoolState.FAILED
    assert status.error is not None
    p.abandon(spec, choices[1], status.error)
    spec, offset = p.create_first(choices[2:])
    assert (spec.cluster.cloud, offset) == ("azure", 0)
    assert settle(spec).state is PoolState.READY
    remembered = {(b.cloud, b.zone) for b in p.memory.active(datetime.now(UTC))}
    assert {("aws", "use1-az1"), ("gcp", "us-central1-a")} <= remembered
    leftovers = [pool for pool in clouds_emulator.pools() if pool["cloud"] in ("aws", "gcp")]
    assert all(pool.get("state") in ("DELETING", "GONE", "STOPPING") for pool in leftovers), leftovers
    replan = plan(
        PlanRequest(accelerator="L4", clouds=("aws", "gcp"), blocked=tuple(p.memory.active(datetime.now(UTC)))),
        load_catalog(),
        clusters=load_clusters().regions,
    )
    options = [replan.chosen, *replan.fallbacks]
    assert all((o.offer.cloud, o.offer.zone) not in {("aws", "use1-az1"), ("gcp", "us-central1-a")} for o in options)


@pytest.mark.parametrize("clouds_emulator", ["flaky-api"], indirect=True)
@pytest.mark.parametrize("cloud_index", [0, 1, 2])
def test_throttled_create_is_retried_without_a_duplicate_pool(
    clouds_emulator: EmulatorProcess, tmp_path: Path, cloud_index: int
) -> None:
    """The SDKs retry throttling themselves (botocore, azure-core); where one does not (GKE over REST), the
    provisioner does. Either way the create is sent again and exactly one pool exists."""
    p = provisioner(tmp_path)
    spec, index = p.create_first([one_gpu_choice(CLOUDS[cloud_index])])
    assert index == 0
    creates = [c for c in clouds_emulator.calls(spec.cluster.cloud) if "create" in str(c.get("operation", "")).lower()]
    assert len(creates) >= 2, creates
    assert creates[0].get("status") in (400, 429), creates[0]
    assert len([pool for pool in clouds_emulator.pools() if pool["name"] == spec.name]) == 1
