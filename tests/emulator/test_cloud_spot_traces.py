"""Trace-driven spot capacity: a scenario replays a spot trace, preempting when it drops, refusing spot creates
beyond it and replacing lost nodes when it rises; a bad trace file stops the scenario from loading."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import kube, node_events, node_ready, nodes_labelled
from google.api_core import exceptions
from google.cloud import container_v1
from gpuflow_emulator.clouds import clients, scenarios
from gpuflow_emulator.clouds.scenarios import CAPACITY, Target
from gpuflow_emulator.testing import EmulatorProcess, eventually

AWS_SPOT = Target("aws", "us-east-1", ("use1-az1",), "p3.2xlarge", True, "spot", nodes=1)
GKE_PARENT = "projects/gpuflow-demo/locations/us-central1/clusters/gpuflow-usc1"


def trace_file(directory: Path, values: list[int], gap: int = 32) -> Path:
    path = directory / "trace.json"
    path.write_text(json.dumps({"metadata": {"gap_seconds": gap}, "data": values}))
    return path


def traced(spot_trace: dict[str, Any], time_scale: float = 1) -> scenarios.Scenario:
    return scenarios.parse({"time_scale": time_scale, "rules": [{"match": {"spot": True}, "spot_trace": spot_trace}]})


def test_a_trace_advances_in_cloud_time_from_its_start_tick_and_holds_its_last_value(tmp_path: Path) -> None:
    path = trace_file(tmp_path, [3, 2, 1, 0], gap=32)
    ((_, trace),) = traced({"file": str(path), "start_tick": 1}, time_scale=8).spot_traces()
    assert trace.tick_seconds == 4  # 32 cloud seconds at time_scale 8
    assert [trace.value(elapsed) for elapsed in (0, 3.9, 4, 8, 100)] == [2, 2, 1, 0, 0]


def test_tick_seconds_overrides_the_traces_own_gap(tmp_path: Path) -> None:
    ((_, trace),) = traced({"file": str(trace_file(tmp_path, [1, 0])), "tick_seconds": 2}, time_scale=4).spot_traces()
    assert trace.tick_seconds == 0.5


def test_a_relative_trace_path_is_read_from_the_project() -> None:
    file = "include/traces/preemption/1-node/aws-04-22-2023/us-east-1c_v100_1.json"
    ((_, trace),) = traced({"file": file}).spot_traces()
    assert (len(trace.values), trace.tick_seconds) == (19961, 32)


def test_spot_creates_beyond_what_the_trace_allows_fail_as_a_stockout(tmp_path: Path) -> None:
    scenario = traced({"file": str(trace_file(tmp_path, [1, 0], gap=10))})
    assert scenario.decide(AWS_SPOT, [], elapsed=0).fault is None
    fault = scenario.decide(AWS_SPOT, [AWS_SPOT], elapsed=0).fault
    assert fault is not None
    assert fault.kind == CAPACITY
    assert scenario.decide(AWS_SPOT, [], elapsed=10).fault == fault
    on_demand = Target("aws", "us-east-1", ("use1-az1",), "p3.2xlarge", False, "od", nodes=1)
    assert scenario.decide(on_demand, [], elapsed=10).fault is None


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (None, "does not exist"),
        ("not json", "is not readable JSON"),
        ('{"metadata": {"gap_seconds": 30}, "data": []}', "'data' must be a non-empty list"),
        ('{"metadata": {"gap_seconds": 30}, "data": [1, -1]}', "'data' must be a non-empty list"),
        ('{"data": [1, 0]}', "'metadata.gap_seconds' must be a positive number"),
    ],
    ids=["missing", "not-json", "empty", "negative", "no-gap"],
)
def test_a_bad_trace_file_fails_the_scenario_load_naming_the_file(
    tmp_path: Path, content: str | None, complaint: str
) -> None:
    path = tmp_path / "trace.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + re.escape(complaint)):
        traced({"file": str(path)})


def test_the_emulator_does_not_start_on_a_missing_trace_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-trace.json"
    with pytest.raises(RuntimeError, match=re.escape(str(missing))):
        EmulatorProcess.start_clouds(tmp_path / "emulator", {"rules": [{"spot_trace": {"file": str(missing)}}]})


def test_a_trace_preempts_when_it_drops_refuses_spot_creates_at_zero_and_gives_capacity_back(tmp_path: Path) -> None:
    """One spot node each on EKS and GKE; the trace allows 1, then 0 for a tick (4 s), then 1 again."""
    spot_trace = {"file": str(trace_file(tmp_path, [1, 0, 1])), "tick_seconds": 160}
    scenario = {
        "time_scale": 40,
        "defaults": {"provisioning_seconds": 20, "deleting_seconds": 10},
        "rules": [
            {"match": {"cloud": "aws", "spot": True}, "spot_trace": spot_trace},
            {"match": {"cloud": "gcp", "spot": True}, "spot_trace": spot_trace},
        ],
    }
    with EmulatorProcess.start_clouds(tmp_path / "emulator", scenario) as emulator:
        urls = emulator.clouds()
        eks, gke = clients.eks(urls["aws"], "us-east-1", max_attempts=1), clients.gke(urls["gcp"])
        eks.create_nodegroup(**eks_spot("spot1"))
        gke.create_node_pool(parent=GKE_PARENT, node_pool=gke_spot("spot1"))
        aws, gcp = kube(emulator, "gpuflow-use1"), kube(emulator, "gpuflow-usc1")
        (aws_node,) = eventually(lambda: nodes_labelled(aws, "eks.amazonaws.com/nodegroup", "spot1"))
        (gcp_node,) = eventually(lambda: nodes_labelled(gcp, "cloud.google.com/gke-nodepool", "spot1"))

        eventually(lambda: "SpotInterruption" in dict(node_events(aws, aws_node)), timeout=8, what="the drop")
        with pytest.raises(ClientError) as refused:
            eks.create_nodegroup(**eks_spot("spot2"))
        assert refused.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"
        eventually(lambda: node_ready(gcp, gcp_node) == "Unknown", what="the preempted GKE node NotReady")
        with pytest.raises(exceptions.TooManyRequests) as stockout:
            gke.create_node_pool(parent=GKE_PARENT, node_pool=gke_spot("spot2"), retry=None)
        assert stockout.value.reason == "ZONE_RESOURCE_POOL_EXHAUSTED"

        replacement = eventually(
            lambda: [n for n in nodes_labelled(aws, "eks.amazonaws.com/nodegroup", "spot1") if n != aws_node],
            timeout=10,
            what="a new EKS node once the trace rises",
        )
        eventually(lambda: node_ready(gcp, gcp_node) == "True", timeout=10, what="the GKE VM recreated")
        assert nodes_labelled(aws, "eks.amazonaws.com/nodegroup", "spot1") == replacement


def eks_spot(name: str) -> dict[str, Any]:
    return {
        "clusterName": "gpuflow-use1",
        "nodegroupName": name,
        "subnets": ["subnet-0a11"],
        "instanceTypes": ["p3.2xlarge"],
        "capacityType": "SPOT",
        "nodeRole": "arn:aws:iam::123456789012:role/gpuflow-eks-node",
    }


def gke_spot(name: str) -> container_v1.NodePool:
    config = container_v1.NodeConfig(machine_type="n1-standard-8", spot=True)
    return container_v1.NodePool(name=name, initial_node_count=1, locations=["us-central1-a"], config=config)
