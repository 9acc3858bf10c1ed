"""EKS parity with moto: the same boto3 call sequence gives the same shapes and error codes on both.

moto makes node groups ACTIVE at once and the emulator goes through CREATING, so states are compared
after each side settles; moto's shapes are the reference for which fields a response carries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import ClientError
from gpuflow_emulator.clouds import clients
from gpuflow_emulator.testing import EmulatorProcess, eventually
from moto import mock_aws

CLUSTER, REGION = "gpuflow-use1", "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/gpuflow-eks-node"
# moto fills in remote-access fields that EKS returns only when the request configured SSH access.
MOTO_ONLY_DEFAULTS = {"ResponseMetadata", "remoteAccess", "remoteAccessSecurityGroup"}


def shape(value: Any) -> Any:
    """The structure of a response: keys and value types, not values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items() if key not in MOTO_ONLY_DEFAULTS}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def outcome(call: Callable[[], Any]) -> Any:
    try:
        return shape(call())
    except ClientError as exc:
        return exc.response["Error"]["Code"]


def sequence(eks: Any) -> dict[str, Any]:
    """The calls a backend makes, each reduced to its shape or its error code."""
    request = {
        "clusterName": CLUSTER,
        "nodegroupName": "parity",
        "scalingConfig": {"minSize": 0, "maxSize": 2, "desiredSize": 1},
        "subnets": ["subnet-0a11"],
        "instanceTypes": ["g6.xlarge"],
        "nodeRole": ROLE,
        "labels": {"gpuflow.io/run": "r1"},
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}],
        "capacityType": "SPOT",
    }
    results = {"create": outcome(lambda: eks.create_nodegroup(**request))}
    eventually(
        lambda: eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName="parity")["nodegroup"]["status"] == "ACTIVE",
        timeout=10,
    )
    described = eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName="parity")["nodegroup"]
    results["values"] = {
        key: described[key] for key in ("status", "capacityType", "labels", "taints", "scalingConfig", "instanceTypes")
    }
    results["list"] = eks.list_nodegroups(clusterName=CLUSTER)["nodegroups"]
    relabel = {"addOrUpdateLabels": {"gpuflow.io/expires-at": "1900000000"}}
    results["relabel"] = outcome(
        lambda: eks.update_nodegroup_config(clusterName=CLUSTER, nodegroupName="parity", labels=relabel)
    )
    results["relabelled"] = eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName="parity")["nodegroup"]["labels"]
    results["duplicate"] = outcome(lambda: eks.create_nodegroup(**request))
    results["missing"] = outcome(lambda: eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName="nope"))
    results["missing_cluster"] = outcome(lambda: eks.describe_cluster(name="nope"))
    results["delete"] = outcome(lambda: eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName="parity"))
    return results


def moto_results() -> dict[str, Any]:
    with mock_aws():
        eks = boto3.client("eks", region_name=REGION)
        eks.create_cluster(name=CLUSTER, roleArn=ROLE, resourcesVpcConfig={"subnetIds": ["subnet-0a11"]})
        return sequence(eks)


def test_eks_call_sequence_matches_moto(clouds: EmulatorProcess) -> None:
    expected = moto_results()
    actual = sequence(clients.eks(clouds.clouds()["aws"], REGION, max_attempts=1))
    for step in ("duplicate", "missing", "missing_cluster", "values", "list", "relabel", "relabelled"):
        assert actual[step] == expected[step], step
    for step in ("create", "delete"):
        moto_fields = expected[step]["nodegroup"]
        ours = actual[step]["nodegroup"]
        missing = {key for key in moto_fields if key not in ours}
        assert not missing, f"{step}: fields moto has and the emulator lacks: {missing}"
        assert {key: ours[key] for key in moto_fields} == moto_fields, step
