"""The XCom contracts between tasks: the wire format stays the dicts tasks always pushed, and a missing key
is named."""

from __future__ import annotations

from typing import Any

import pytest

from gpuflow.core.clusters import Cluster
from gpuflow.core.handoffs import DeployedEndpoint, EndpointRef, HandoffError, PlanHandoff, PoolHandoff, Unconfirmed
from gpuflow.core.nodepool import NodePoolRef, NodePoolSpec
from tests.support.offers import one_gpu_choice

CHOICE = {**one_gpu_choice("gcp"), "nodes": 2}
CLUSTER = Cluster(
    "gcp", "us-central1", "gke-a", "gpuflow_gcp", {"project": "p", "location": "us-central1"}, "gs://gke-a-artifacts"
)
PLAN = {"chosen": CHOICE, "fallbacks": [{**CHOICE, "region": "us-east1"}], "estimated_total_usd": 1.25}


def test_the_pool_xcom_is_the_dict_the_pool_tasks_always_pushed() -> None:
    spec = NodePoolSpec.from_choice(CHOICE, CLUSTER, dag_id="gpu_train_and_serve", run_id="r1")
    handoff = PoolHandoff.of(spec, 0, CHOICE, ["gcp/us-central1 accepted"], "2026-01-01T00:00:00+00:00")
    wire = {
        "index": 0,
        "choice": CHOICE,
        "pool": spec.ref.to_dict(),
        "cluster": {
            "cloud": "gcp",
            "region": "us-central1",
            "name": "gke-a",
            "connection_id": "gpuflow_gcp",
            "settings": {"project": "p", "location": "us-central1"},
            "artifacts": "gs://gke-a-artifacts",
            "local": False,
        },
        "resource": "nvidia.com/gpu",
        "attempts": ["gcp/us-central1 accepted"],
        "requested_at": "2026-01-01T00:00:00+00:00",
    }
    assert handoff.to_xcom() == wire
    assert list(handoff.to_xcom()) == list(wire)
    assert PoolHandoff.from_xcom(wire) == handoff


def test_the_plan_xcom_round_trips_and_gives_the_options_in_failover_order() -> None:
    base = {
        "revision": "chat-1234abcd",
        "model_uri": "gs://b/r/model",
        "adapters_uri": "gs://b/endpoints/chat/adapters",
    }
    wire: dict[str, Any] = {"plan": PLAN, "job": {"job_name": "j", "keep_endpoint_minutes": 5}, "adapter_base": base}
    handoff = PlanHandoff.from_xcom(wire)
    assert handoff.to_xcom() == wire
    assert handoff.adapter_base == base
    assert PlanHandoff.from_xcom({"plan": PLAN, "job": None}).adapter_base is None  # an XCom from before the field
    assert [c["region"] for c in handoff.choices] == ["us-central1", "us-east1"]
    assert handoff.estimated_total_usd == 1.25
    assert handoff.job_fields()["job_name"] == "j"


def test_a_plan_made_without_a_job_says_so_when_a_job_is_asked_for() -> None:
    handoff = PlanHandoff.from_xcom({"plan": PLAN, "job": None})
    with pytest.raises(HandoffError, match="no job"):
        handoff.job_fields()


def test_the_endpoint_xcoms_round_trip() -> None:
    ref = {"cluster": "gke-a", "namespace": "default", "name": "job-1a2b3c4d"}
    assert EndpointRef.from_xcom(ref).to_xcom() == ref
    assert list(EndpointRef.from_xcom(ref).to_xcom()) == list(ref)
    deployed = {"name": "job-1a2b3c4d", "namespace": "default", "model": "s3://b/m/model", "served_model_name": "m"}
    assert DeployedEndpoint.from_xcom(deployed).to_xcom() == deployed


@pytest.mark.parametrize(
    ("read", "wire", "message"),
    [
        (PoolHandoff.from_xcom, {"index": 0, "choice": CHOICE}, "the node pool XCom has no 'pool'"),
        (PlanHandoff.from_xcom, {"job": None}, "the plan XCom has no 'plan'"),
        (PlanHandoff.from_xcom, {"plan": {"chosen": CHOICE}}, "the plan's plan XCom has no 'fallbacks'"),
        (EndpointRef.from_xcom, {"cluster": "gke-a", "name": "x"}, "the endpoint XCom has no 'namespace'"),
    ],
)
def test_a_missing_key_is_named_with_the_keys_there_are(read: Any, wire: dict[str, Any], message: str) -> None:
    with pytest.raises(HandoffError) as raised:
        read(wire)
    assert str(raised.value).startswith(message)
    assert isinstance(raised.value, KeyError)


def test_unconfirmed_covers_pools_left_and_every_pool_on_a_cluster_where_a_step_failed() -> None:
    left = NodePoolRef("gcp", "us-central1", "gpuflow-usc1", "gf-left")
    on_failed = NodePoolRef("aws", "us-east-1", "gpuflow-use1", "gf-any")
    unconfirmed = Unconfirmed.from_xcom(Unconfirmed((left,), (("aws", "gpuflow-use1"),)).to_xcom())
    assert unconfirmed.covers(left)
    assert unconfirmed.covers(on_failed)
    assert not unconfirmed.covers(NodePoolRef("gcp", "us-central1", "gpuflow-usc1", "gf-deleted"))
