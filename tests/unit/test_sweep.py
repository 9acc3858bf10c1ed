"""The one sweep with the teardown's and the janitor's rules, on fake clusters (the emulator tests run it for real)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from gpuflow import sweep as sweeping
from gpuflow.core import naming
from gpuflow.core.clusters import Cluster
from gpuflow.core.nodepool import NodePoolRef, NodePoolStatus, PoolState
from gpuflow.kube.cluster import KubeObject
from gpuflow.operators.teardown import Keep, teardown_decision
from gpuflow.sweep import Decision, failed_clusters, survey, sweep

LABEL = {"gpuflow.io/run": "r1"}


class FakeCluster:
    """A backend and a Kubernetes API in one: pools and objects by name, and what was done to them."""

    def __init__(self, cluster: Cluster, pools: Iterable[str] = (), objects: Iterable[KubeObject] = ()) -> None:
        self.cluster = cluster
        self.pools = dict.fromkeys(pools, PoolState.READY)
        self.objects = list(objects)
        self.done: list[str] = []
        self.down = False

    def ref(self, name: str) -> NodePoolRef:
        return NodePoolRef(self.cluster.cloud, self.cluster.region, self.cluster.name, name)

    def list_node_pools(self, labels: Mapping[str, str]) -> list[NodePoolStatus]:
        if self.down:
            raise ConnectionError("API down")
        return [NodePoolStatus(self.ref(n), state, labels=dict(LABEL)) for n, state in self.pools.items()]

    def delete_node_pool(self, ref: NodePoolRef) -> None:
        self.done.append(f"delete NodePool/{ref.name}")
        self.pools[ref.name] = PoolState.GONE

    def label_node_pool(self, ref: NodePoolRef, labels: Mapping[str, str]) -> None:
        self.done.append(f"stamp NodePool/{ref.name}")

    def kube_config(self) -> Any:
        if self.down:
            raise ConnectionError("API down")
        return self


@pytest.fixture
def clusters(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeCluster]:
    gke = FakeCluster(
        Cluster("gcp", "us-central1", "gke", "c"),
        pools=["serving", "abandoned"],
        objects=[KubeObject("Deployment", "ep"), KubeObject("Service", "ep"), KubeObject("Pod", "ep-1", owned=True)],
    )
    eks = FakeCluster(Cluster("aws", "us-east-1", "eks", "c"), pools=["other"], objects=[KubeObject("Pod", "train")])
    monkeypatch.setattr(sweeping, "api_client", lambda fake: fake)
    monkeypatch.setattr(sweeping, "labelled_objects", lambda fake, namespace, selector: fake.objects)
    monkeypatch.setattr(
        sweeping, "delete_objects", lambda fake, ns, objs: fake.done.extend(f"delete {o.ref}" for o in objs)
    )
    monkeypatch.setattr(
        sweeping, "label_objects", lambda fake, ns, objs, labels: fake.done.extend(f"stamp {o.ref}" for o in objs)
    )
    return {"gke": gke, "eks": eks}


def holdings_of(clusters: dict[str, FakeCluster], *, settled_out: bool) -> list[sweeping.Holdings]:
    fakes = {(fake.cluster.cloud, fake.cluster.name): fake for fake in clusters.values()}

    def backend(cluster: Cluster) -> Any:
        return fakes[(cluster.cloud, cluster.name)]

    return [
        survey(fake.cluster, "default", LABEL, settled_out=settled_out, backends=backend) for fake in fakes.values()
    ]


def test_the_teardown_stamps_the_kept_pool_and_its_endpoint_and_deletes_the_rest(
    clusters: dict[str, FakeCluster],
) -> None:
    keep = Keep(clusters["gke"].ref("serving"), datetime(2030, 1, 1, tzinfo=UTC))
    holdings = holdings_of(clusters, settled_out=False)
    decision = teardown_decision(holdings, keep)
    swept = sweep(holdings, decision, whole_clusters=False)

    assert clusters["gke"].done == [
        "stamp Deployment/ep",
        "stamp Service/ep",
        "stamp NodePool/serving",
        "delete NodePool/abandoned",
    ]
    assert clusters["eks"].done == ["delete Pod/train", "delete NodePool/other"]
    assert swept.stamped_objects == ["Deployment/ep", "Service/ep"]
    assert [ref.name for ref in swept.deleted_pools] == ["abandoned", "other"]
    assert sweeping.wait_until_gone(swept, LABEL, decision, timeout_s=0, poll_interval_s=0) == []


def test_a_promoted_revision_is_kept_as_its_named_endpoints_without_an_expiry(
    clusters: dict[str, FakeCluster],
) -> None:
    keep = Keep(clusters["gke"].ref("serving"), None, nodes=2, endpoint="chat")
    decision = teardown_decision(holdings_of(clusters, settled_out=False), keep)
    assert decision.stamp == {naming.ENDPOINT_LABEL: "chat", naming.KEPT_NODES_LABEL: "2"}
    assert keep.to_dict(["Service/chat"])["expires_at"] is None


def test_a_cluster_that_cannot_be_reached_is_reported_and_spares_no_other(clusters: dict[str, FakeCluster]) -> None:
    clusters["eks"].down = True
    holdings = holdings_of(clusters, settled_out=False)
    swept = sweep(holdings, teardown_decision(holdings, None), whole_clusters=False)

    assert "delete NodePool/serving" in clusters["gke"].done
    assert [h.where for h in swept.requested] == ["gcp/gke"]
    assert failed_clusters(holdings) == {
        "aws/eks": "listing node pools: ConnectionError: API down; listing objects: ConnectionError: API down"
    }


def test_the_janitor_acts_only_on_what_it_condemns_and_leaves_a_half_listed_cluster_alone(
    clusters: dict[str, FakeCluster],
) -> None:
    clusters["gke"].pools["abandoned"] = PoolState.DELETING
    holdings = holdings_of(clusters, settled_out=True)
    gke, eks = holdings
    assert [p.ref.name for p in gke.pools] == ["serving"]  # already deleting: not judged again
    assert [o.ref for o in gke.objects] == ["Deployment/ep", "Service/ep"]  # the pod goes with its Deployment
    eks.failures["listing objects"] = "ConnectionError: API down"

    sweep(
        holdings,
        Decision(delete=frozenset({gke.key("Service", "ep"), eks.key("NodePool", "other")})),
        whole_clusters=True,
    )

    assert clusters["gke"].done == ["delete Service/ep"]
    assert clusters["eks"].done == []
