"""Scenario files: the named ones load and do what they say; decisions are deterministic and scoped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.core.exceptions import HttpResponseError
from botocore.exceptions import ClientError
from google.api_core import exceptions
from google.cloud import container_v1
from gpuflow_emulator.clouds import clients, scenarios
from gpuflow_emulator.clouds.scenarios import CAPACITY, QUOTA, Target
from gpuflow_emulator.testing import DEFAULT_CONFIG, EmulatorProcess

SCENARIOS = DEFAULT_CONFIG.parent / "scenarios"
GKE_PARENT = "projects/gpuflow-demo/locations/us-central1/clusters/gpuflow-usc1"


def target(pool: str = "p", cloud: str = "gcp", accelerators: int = 1, nodes: int = 1) -> Target:
    return Target(cloud, "us-central1", ("us-central1-a",), "g2-standard-4", False, pool, nodes, accelerators)


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_named_scenario_loads(path: Path) -> None:
    assert scenarios.load(path).time_scale >= 1


def test_unknown_knob_is_rejected() -> None:
    with pytest.raises(ValueError, match="stockout"):
        scenarios.parse({"rules": [{"match": {}, "stockout": True}]})


def test_seeded_capacity_draws_repeat_exactly() -> None:
    raw = {"seed": 5, "rules": [{"match": {}, "capacity": {"probability": 0.5}}]}
    first = [scenarios.parse(raw).decide(target(f"p{i}"), []).fault for i in range(40)]
    again = [scenarios.parse(raw).decide(target(f"p{i}"), []).fault for i in range(40)]
    assert first == again
    assert 5 < sum(f is not None for f in first) < 35


def test_quota_counts_live_pools_in_the_rule_scope_only() -> None:
    scenario = scenarios.parse({"rules": [{"match": {"cloud": "gcp"}, "quota": {"accelerators": 8}}]})
    assert scenario.decide(target(accelerators=8), [target(cloud="aws", accelerators=8)]).fault is None
    fault = scenario.decide(target(accelerators=8), [target(accelerators=1)]).fault
    assert fault is not None
    assert fault.kind == QUOTA


def test_capacity_in_nodes_is_shared_by_the_pools_it_matches() -> None:
    scenario = scenarios.parse({"rules": [{"match": {"zone": "us-central1-*"}, "capacity": {"nodes": 2}}]})
    assert scenario.decide(target(nodes=2), []).fault is None
    fault = scenario.decide(target(nodes=1), [target(nodes=2)]).fault
    assert fault is not None
    assert fault.kind == CAPACITY


def test_preempt_after_seconds_is_for_spot_pools_and_preempts_once_unless_told_more() -> None:
    scenario = scenarios.parse({"time_scale": 10, "rules": [{"match": {"pool": "p*"}, "preempt_after_seconds": 60}]})
    spot = Target("gcp", "us-central1", ("us-central1-a",), "g2-standard-4", True, "p", 1, 1)
    decision = scenario.decide(spot, [])
    assert (decision.preempt_after_seconds, decision.preemptions) == (6, 1)
    assert scenario.decide(target(), []).preempt_after_seconds is None  # on-demand
    twice = scenarios.parse({"rules": [{"match": {}, "preempt_after_seconds": 60, "preemptions": 2}]})
    assert twice.decide(spot, []).preemptions == 2


def test_time_scale_divides_every_delay() -> None:
    scenario = scenarios.parse({"time_scale": 10, "defaults": {"provisioning_seconds": 30, "deleting_seconds": 5}})
    decision = scenario.decide(target(), [])
    assert (decision.provisioning_seconds, decision.deleting_seconds) == (3, 0.5)


@pytest.fixture(scope="module")
def flaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    scenario = yaml.safe_load((SCENARIOS / "flaky-api.yaml").read_text())
    with EmulatorProcess.start_clouds(tmp_path_factory.mktemp("flaky"), scenario) as running:
        yield running


def eks_request(name: str) -> dict[str, Any]:
    return {
        "clusterName": "gpuflow-use1",
        "nodegroupName": name,
        "subnets": ["subnet-0a11"],
        "instanceTypes": ["g6.xlarge"],
        "nodeRole": "arn:aws:iam::123456789012:role/gpuflow-eks-node",
    }


def test_flaky_eks_throttles_the_first_create_and_fails_every_third_describe(flaky: EmulatorProcess) -> None:
    assert flaky.calls("aws") == []
    eks = clients.eks(flaky.clouds()["aws"], "us-east-1", max_attempts=1)
    with pytest.raises(ClientError) as caught:
        eks.create_nodegroup(**eks_request("flaky"))
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    eks.create_nodegroup(**eks_request("flaky"))
    for _ in range(2):
        eks.describe_nodegroup(clusterName="gpuflow-use1", nodegroupName="flaky")
    with pytest.raises(ClientError) as caught:
        eks.describe_nodegroup(clusterName="gpuflow-use1", nodegroupName="flaky")
    assert caught.value.response["Error"]["Code"] == "ServerException"
    retrying = clients.eks(flaky.clouds()["aws"], "us-east-1")
    for _ in range(3):
        retrying.describe_nodegroup(clusterName="gpuflow-use1", nodegroupName="flaky")
    assert [c["injected"] for c in flaky.calls("aws")][:2] == ["THROTTLED", None]


def test_flaky_gke_throttles_the_first_create_and_fails_every_third_get(flaky: EmulatorProcess) -> None:
    gke = clients.gke(flaky.clouds()["gcp"])
    pool = container_v1.NodePool(name="flaky", initial_node_count=1, config={"machine_type": "g2-standard-4"})
    with pytest.raises(exceptions.TooManyRequests) as caught:
        gke.create_node_pool(parent=GKE_PARENT, node_pool=pool)
    assert caught.value.reason == "RATE_LIMIT_EXCEEDED"
    gke.create_node_pool(parent=GKE_PARENT, node_pool=pool)
    for _ in range(2):
        gke.get_node_pool(name=f"{GKE_PARENT}/nodePools/flaky", retry=None)
    with pytest.raises(exceptions.ServiceUnavailable):
        gke.get_node_pool(name=f"{GKE_PARENT}/nodePools/flaky", retry=None)


def test_flaky_aks_throttles_the_first_create_and_fails_every_third_get(flaky: EmulatorProcess) -> None:
    urls = flaky.clouds()
    aks: Any = clients.aks(urls["azure"], urls["azure_ca"], retry_total=0)  # parameters given as JSON
    body: dict[str, Any] = {"properties": {"count": 1, "vmSize": "Standard_NC4as_T4_v3"}}
    with pytest.raises(HttpResponseError) as caught:
        aks.agent_pools.begin_create_or_update("gpuflow", "gpuflow-eastus", "flaky", body)
    assert caught.value.status_code == 429
    assert caught.value.error is not None
    assert caught.value.error.code == "TooManyRequests"
    aks.agent_pools.begin_create_or_update("gpuflow", "gpuflow-eastus", "flaky", body).result()
    while sum(call["operation"] == "AgentPoolsGet" for call in flaky.calls("azure")) < 2:  # the poller GETs too
        aks.agent_pools.get("gpuflow", "gpuflow-eastus", "flaky")
    with pytest.raises(HttpResponseError) as caught:
        aks.agent_pools.get("gpuflow", "gpuflow-eastus", "flaky")
    assert caught.value.status_code == 500


def test_quota_exhausted_gcp_refuses_gpu_pools_on_gcp_only(tmp_path: Path) -> None:
    scenario = yaml.safe_load((SCENARIOS / "quota-exhausted-gcp.yaml").read_text())
    with EmulatorProcess.start_clouds(tmp_path, scenario) as emulator:
        urls = emulator.clouds()
        pool = container_v1.NodePool(
            name="gpu",
            initial_node_count=1,
            config=container_v1.NodeConfig(
                machine_type="g2-standard-4",
                accelerators=[container_v1.AcceleratorConfig(accelerator_count=1, accelerator_type="nvidia-l4")],
            ),
        )
        with pytest.raises(exceptions.Forbidden) as caught:
            clients.gke(urls["gcp"]).create_node_pool(parent=GKE_PARENT, node_pool=pool)
        assert 'Insufficient project quota to satisfy request: resource "GPUS_ALL_REGIONS"' in caught.value.message
        clients.eks(urls["aws"], "us-east-1", 1).create_nodegroup(**eks_request("gpu"))
        assert [p["cloud"] for p in emulator.pools()] == ["aws"]
