"""The failover loop over a plan's options, with a scripted backend standing in at the protocol seam."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gpuflow.core.clusters import Cluster, Clusters, load_clusters
from gpuflow.core.errors import CloudError, ErrorKind, Scope
from gpuflow.core.nodepool import NodePoolRef, NodePoolSpec, NodePoolStatus, PoolState
from gpuflow.provisioning import Provisioner, ProvisioningFailed, Run
from gpuflow.state.store import BlockStore

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def choice(cloud: str, region: str, zone: str | None, instance: str = "g6.xlarge") -> dict[str, Any]:
    return {
        "cloud": cloud,
        "region": region,
        "availability_zone": zone,
        "instance_type": instance,
        "accelerator": "L4",
        "accelerator_count": 1,
        "nodes": 1,
        "capacity_type": "spot",
    }


@dataclass
class ScriptedBackend:
    """Raises the scripted errors for a zone, in order, then accepts; records every call."""

    cluster: Cluster
    script: dict[str | None, list[CloudError]]
    calls: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    fail_delete: bool = False

    def create_node_pool(self, spec: NodePoolSpec) -> NodePoolRef:
        self.calls.append(f"create {spec.zone}")
        errors = self.script.get(spec.zone, [])
        if errors:
            raise errors.pop(0)
        return spec.ref

    def get_node_pool(self, ref: NodePoolRef) -> NodePoolStatus:
        return NodePoolStatus(ref, PoolState.READY)

    def delete_node_pool(self, ref: NodePoolRef) -> None:
        if self.fail_delete:
            raise error("aws", "InternalFailure", ErrorKind.TRANSIENT, Scope.REGION)
        self.deleted.append(ref.name)

    def list_node_pools(self, labels: Mapping[str, str]) -> list[NodePoolStatus]:
        return []

    def label_node_pool(self, ref: NodePoolRef, labels: Mapping[str, str]) -> None:
        raise NotImplementedError

    def resize_node_pool(self, ref: NodePoolRef, nodes: int) -> None:
        raise NotImplementedError

    def kube_config(self) -> dict[str, Any]:
        return {}

    def classify(self, exc: BaseException) -> CloudError:
        raise NotImplementedError


def error(cloud: str, code: str, kind: ErrorKind, scope: Scope) -> CloudError:
    return CloudError(cloud=cloud, code=code, kind=kind, scope=scope, message="refused")


@pytest.fixture
def clusters() -> Clusters:
    return load_clusters()


def provisioner(clusters: Clusters, tmp_path: Path, backend: ScriptedBackend) -> Provisioner:
    return Provisioner(
        clusters=clusters,
        memory=BlockStore(f"sqlite:///{tmp_path / 'state.db'}"),
        run=Run("gpu_train_and_serve", "manual__1"),
        backends=lambda cluster: backend,
        sleep=lambda seconds: None,
        clock=lambda: NOW,
    )


def test_stockout_moves_to_the_next_option_and_is_remembered(clusters: Clusters, tmp_path: Path) -> None:
    stockout = error("aws", "InsufficientInstanceCapacity", ErrorKind.CAPACITY, Scope.OFFER)
    backend = ScriptedBackend(clusters.for_region("aws", "us-east-1"), {"use1-az1": [stockout]})
    p = provisioner(clusters, tmp_path, backend)
    spec, index = p.create_first([choice("aws", "us-east-1", "use1-az1"), choice("aws", "us-east-1", "use1-az2")])
    assert (spec.zone, index) == ("use1-az2", 1)
    (remembered,) = p.memory.active(NOW)
    assert (remembered.zone, remembered.instance_type) == ("use1-az1", "g6.xlarge")
    assert "use1-az1 g6.xlarge spot: next (InsufficientInstanceCapacity: refused)" in p.attempts[0]


def test_transient_errors_are_retried_on_the_same_offer(clusters: Clusters, tmp_path: Path) -> None:
    throttled = error("aws", "ThrottlingException", ErrorKind.TRANSIENT, Scope.REGION)
    backend = ScriptedBackend(clusters.for_region("aws", "us-east-1"), {"use1-az1": [throttled, throttled]})
    _, index = provisioner(clusters, tmp_path, backend).create_first([choice("aws", "us-east-1", "use1-az1")])
    assert index == 0
    assert backend.calls == ["create use1-az1"] * 3


def test_region_quota_skips_the_rest_of_the_region(clusters: Clusters, tmp_path: Path) -> None:
    quota = error("aws", "VcpuLimitExceeded", ErrorKind.QUOTA, Scope.REGION)
    backend = ScriptedBackend(clusters.for_region("aws", "us-east-1"), {"use1-az1": [quota]})
    options = [
        choice("aws", "us-east-1", "use1-az1"),
        choice("aws", "us-east-1", "use1-az2"),
        choice("aws", "us-west-2", "usw2-az1"),
    ]
    _, index = provisioner(clusters, tmp_path, backend).create_first(options)
    assert index == 2
    assert backend.calls == ["create use1-az1", "create usw2-az1"]


def test_invalid_request_stops_failover(clusters: Clusters, tmp_path: Path) -> None:
    invalid = error("aws", "InvalidParameterException", ErrorKind.INVALID, Scope.OFFER)
    backend = ScriptedBackend(clusters.for_region("aws", "us-east-1"), {"use1-az1": [invalid]})
    with pytest.raises(ProvisioningFailed, match="InvalidParameterException"):
        provisioner(clusters, tmp_path, backend).create_first(
            [choice("aws", "us-east-1", "use1-az1"), choice("aws", "us-east-1", "use1-az2")]
        )
    assert backend.calls == ["create use1-az1"]


def test_every_option_failing_names_each_attempt(clusters: Clusters, tmp_path: Path) -> None:
    stockout = error("aws", "InsufficientInstanceCapacity", ErrorKind.CAPACITY, Scope.OFFER)
    backend = ScriptedBackend(clusters.for_region("aws", "us-east-1"), {"use1-az1": [stockout]})
    with pytest.raises(ProvisioningFailed, match=r"no offer could be provisioned \(1 options\).*use1-az1"):
        provisioner(clusters, tmp_path, backend).create_first([choice("aws", "us-east-1", "use1-az1")])


def test_a_failed_pool_is_deleted_before_it_counts_as_a_failure(clusters: Clusters, tmp_path: Path) -> None:
    backend = ScriptedBackend(clusters.for_region("aws", "us-east-1"), {})
    p = provisioner(clusters, tmp_path, backend)
    option = choice("aws", "us-east-1", "use1-az1")
    spec, _ = p.create_first([option])
    p.abandon(spec, option, error("aws", "InsufficientInstanceCapacity", ErrorKind.CAPACITY, Scope.OFFER))
    assert backend.deleted == [spec.name]
    assert p.memory.active(NOW)


def test_failover_stops_when_deleting_the_failed_pool_fails(clusters: Clusters, tmp_path: Path) -> None:
    backend = ScriptedBackend(clusters.for_region("aws", "us-east-1"), {}, fail_delete=True)
    p = provisioner(clusters, tmp_path, backend)
    option = choice("aws", "us-east-1", "use1-az1")
    spec, _ = p.create_first([option])
    with pytest.raises(ProvisioningFailed, match="failover stopped"):
        p.abandon(spec, option, error("aws", "InsufficientInstanceCapacity", ErrorKind.CAPACITY, Scope.OFFER))


def test_a_pool_failed_by_a_misconfigured_cluster_stops_failover(clusters: Clusters, tmp_path: Path) -> None:
    """Nodes that cannot join (a node role without its policies) would fail the same way on every offer."""
    backend = ScriptedBackend(clusters.for_region("aws", "us-east-1"), {})
    p = provisioner(clusters, tmp_path, backend)
    option = choice("aws", "us-east-1", "use1-az1")
    spec, _ = p.create_first([option])
    misconfigured = error("aws", "NodeCreationFailure", ErrorKind.INVALID, Scope.CLOUD)
    with pytest.raises(ProvisioningFailed, match="NodeCreationFailure"):
        p.abandon(spec, option, misconfigured)
    assert backend.deleted == [spec.name]  # the pool is deleted all the same
    assert p.memory.active(NOW) == []


def test_candidates_narrow_the_options_and_the_index_is_the_plans_own(clusters: Clusters, tmp_path: Path) -> None:
    stockout = error("aws", "InsufficientInstanceCapacity", ErrorKind.CAPACITY, Scope.OFFER)
    backend = ScriptedBackend(clusters.for_region("aws", "us-east-1"), {"use1-az2": [stockout]})
    options = [choice("aws", "us-east-1", zone) for zone in ("use1-az1", "use1-az2", "use1-az4", "use1-az6")]
    spec, index = provisioner(clusters, tmp_path, backend).create_first(options, [1, 3])
    assert (spec.zone, index) == ("use1-az6", 3)
    assert backend.calls == ["create use1-az2", "create use1-az6"]
