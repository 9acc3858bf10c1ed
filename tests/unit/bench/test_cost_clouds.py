"""The fake clouds refuse a create with the cloud's own capacity error, read through its real backend's table."""

from __future__ import annotations

import pytest

from bench.cost.clouds import TraceCloud
from gpuflow.core.catalog import CapacityType
from gpuflow.core.errors import CloudError, ErrorKind, Scope
from gpuflow.core.nodepool import NodePoolSpec
from tests.support.cost_worlds import MakeWorld

PLACES = {
    "aws": ("aws", "us-west-2", "usw2-az3"),
    "gcp": ("gcp", "us-east1", "us-east1-b"),
    "azure": ("azure", "eastus", None),
}
CODES = {"aws": "InsufficientInstanceCapacity", "gcp": "ZONE_RESOURCE_POOL_EXHAUSTED", "azure": "SkuNotAvailable"}


@pytest.mark.parametrize("cloud", sorted(PLACES))
def test_a_create_where_the_trace_is_down_raises_the_clouds_capacity_error(make_world: MakeWorld, cloud: str) -> None:
    world = make_world({PLACES[cloud]: [(10, 20)]})
    offer = next(o for o in world.offers if o.cloud == cloud and o.capacity is CapacityType.SPOT)
    choice = {
        "cloud": cloud,
        "region": offer.region,
        "availability_zone": offer.zone,
        "instance_type": offer.instance_type,
        "accelerator": "T4",
        "accelerator_count": 1,
        "nodes": 1,
        "capacity_type": "spot",
    }
    cluster = world.clusters.for_region(cloud, offer.region)
    spec = NodePoolSpec.from_choice(choice, cluster, dag_id="bench_cost", run_id="job-0")
    now = 0
    fake = TraceCloud(cluster, world, lambda: now)
    with pytest.raises(CloudError) as refused:
        fake.create_node_pool(spec)
    assert (refused.value.code, refused.value.kind, refused.value.scope) == (
        CODES[cloud],
        ErrorKind.CAPACITY,
        Scope.OFFER,
    )
    now = 10
    assert fake.create_node_pool(spec) == spec.ref
