from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gpuflow.core import failover
from gpuflow.core.catalog import CapacityType
from gpuflow.core.errors import CloudError, ErrorKind, Scope
from gpuflow.core.failover import Action, Target, decide

NOW = datetime(2026, 11, 29, tzinfo=UTC)
TARGET = Target("gcp", "us-central1", "us-central1-a", "a3-highgpu-8g", CapacityType.SPOT, "H100")


def error(kind: ErrorKind, scope: Scope, code: str = "CODE") -> CloudError:
    return CloudError(cloud="gcp", code=code, kind=kind, scope=scope, message="refused")


def test_zonal_stockout_blocks_that_instance_in_that_zone_for_everyone() -> None:
    decision = decide(error(ErrorKind.CAPACITY, Scope.OFFER), TARGET, attempt=1, now=NOW, jitter=0)
    assert decision.action is Action.NEXT
    assert decision.shared
    assert decision.block is not None
    assert (decision.block.zone, decision.block.instance_type) == ("us-central1-a", "a3-highgpu-8g")
    assert decision.block.expires_at == NOW + failover.BLOCK_TTL[ErrorKind.CAPACITY]


def test_global_gpu_quota_blocks_the_whole_cloud() -> None:
    decision = decide(error(ErrorKind.QUOTA, Scope.CLOUD, "GPUS_ALL_REGIONS"), TARGET, attempt=1, now=NOW, jitter=0)
    assert decision.block is not None
    assert (decision.block.cloud, decision.block.region, decision.block.zone) == ("gcp", None, None)


def test_regional_quota_blocks_the_region() -> None:
    decision = decide(error(ErrorKind.QUOTA, Scope.REGION), TARGET, attempt=1, now=NOW, jitter=0)
    assert decision.block is not None
    assert (decision.block.region, decision.block.zone) == ("us-central1", None)


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 2.0), (2, 4.0), (5, 32.0)])
def test_transient_errors_retry_with_capped_exponential_backoff(attempt: int, ceiling: float) -> None:
    low = decide(error(ErrorKind.TRANSIENT, Scope.REGION), TARGET, attempt=attempt, now=NOW, jitter=0)
    high = decide(error(ErrorKind.TRANSIENT, Scope.REGION), TARGET, attempt=attempt, now=NOW, jitter=0.999)
    assert low.action is Action.RETRY
    assert low.delay_s == ceiling / 2
    assert ceiling / 2 <= high.delay_s <= ceiling


def test_transient_errors_give_up_on_the_offer_after_the_retry_budget() -> None:
    decision = decide(error(ErrorKind.TRANSIENT, Scope.REGION), TARGET, attempt=6, now=NOW, jitter=0)
    assert decision.action is Action.NEXT
    assert decision.block is None


def test_auth_failure_blocks_the_cloud_for_this_run_only() -> None:
    decision = decide(error(ErrorKind.AUTH, Scope.CLOUD), TARGET, attempt=1, now=NOW, jitter=0)
    assert decision.action is Action.NEXT
    assert decision.block is not None
    assert decision.block.region is None
    assert not decision.shared


@pytest.mark.parametrize("kind", [ErrorKind.INVALID, ErrorKind.NOT_FOUND])
def test_invalid_requests_stop_with_the_clouds_message(kind: ErrorKind) -> None:
    decision = decide(error(kind, Scope.OFFER, "ValidationException"), TARGET, attempt=1, now=NOW, jitter=0)
    assert decision.action is Action.STOP
    assert "ValidationException: refused" in decision.reason


def test_a_quota_of_one_family_blocks_that_family_in_that_region_and_market_only() -> None:
    """A P-instance vCPU quota on AWS leaves the G instances of the region, and on-demand P, usable."""
    p4d = Target("aws", "us-east-1", "use1-az1", "p4d.24xlarge", CapacityType.SPOT, "A100")
    decision = decide(error(ErrorKind.QUOTA, Scope.FAMILY, "VcpuLimitExceeded"), p4d, attempt=1, now=NOW, jitter=0)
    block = decision.block
    assert block is not None
    assert (block.region, block.zone, block.quota_family, block.capacity_type) == (
        "us-east-1",
        None,
        "P",
        CapacityType.SPOT,
    )
    assert block.covers("aws", "us-east-1", "use1-az4", "p5.48xlarge", CapacityType.SPOT, "H100")
    assert not block.covers("aws", "us-east-1", "use1-az1", "g6.xlarge", CapacityType.SPOT, "L4")
    assert not block.covers("aws", "us-east-1", "use1-az1", "p4d.24xlarge", CapacityType.ON_DEMAND, "A100")
    assert not block.covers("aws", "us-west-2", "usw2-az1", "p4d.24xlarge", CapacityType.SPOT, "A100")
