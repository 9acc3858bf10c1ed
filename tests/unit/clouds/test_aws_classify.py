"""EKS/EC2 failures are classified from their codes, using payloads as the services return them."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from gpuflow.clouds.aws import EksBackend
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import ErrorKind, Scope
from gpuflow.core.nodepool import NodePoolRef, PoolState

CLUSTER = Cluster("aws", "us-east-1", "gpuflow-use1", "gpuflow_aws", {"subnets": {}, "node_role_arn": "arn"})
REF = NodePoolRef("aws", "us-east-1", "gpuflow-use1", "gf-pool")


def client_error(code: str, message: str, operation: str = "CreateNodegroup") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    ("code", "message", "kind", "scope"),
    [
        (
            "InsufficientInstanceCapacity",
            "We currently do not have sufficient p4d.24xlarge capacity in the Availability Zone you requested "
            "(us-east-1b). Our system will be working on provisioning additional capacity.",
            ErrorKind.CAPACITY,
            Scope.OFFER,
        ),
        (
            "Unsupported",
            "Your requested instance type (p5.48xlarge) is not supported in your requested Availability Zone "
            "(us-east-1c). Please retry your request by not specifying an Availability Zone.",
            ErrorKind.CAPACITY,
            Scope.OFFER,
        ),
        (
            "VcpuLimitExceeded",
            "You have requested more vCPU capacity than your current vCPU limit of 0 allows for the instance "
            "bucket that the specified instance type belongs to.",
            ErrorKind.QUOTA,
            Scope.REGION,
        ),
        ("ResourceLimitExceededException", "Nodegroups per cluster limit exceeded", ErrorKind.QUOTA, Scope.REGION),
        ("ThrottlingException", "Rate exceeded", ErrorKind.TRANSIENT, Scope.REGION),
        ("RequestLimitExceeded", "Request limit exceeded.", ErrorKind.TRANSIENT, Scope.REGION),
        ("ServiceUnavailableException", "Service unavailable", ErrorKind.TRANSIENT, Scope.REGION),
        (
            "AccessDeniedException",
            "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: eks:CreateNodegroup",
            ErrorKind.AUTH,
            Scope.CLOUD,
        ),
        ("InvalidParameterException", "Subnet subnet-1 does not exist", ErrorKind.INVALID, Scope.OFFER),
    ],
)
def test_client_errors_are_classified_by_code(code: str, message: str, kind: ErrorKind, scope: Scope) -> None:
    error = EksBackend(CLUSTER).classify(client_error(code, message))
    assert (error.code, error.kind, error.scope) == (code, kind, scope)
    assert error.message == message


def test_launch_failure_health_issue_is_read_for_the_ec2_code() -> None:
    group = {
        "status": "DEGRADED",
        "labels": {},
        "health": {
            "issues": [
                {
                    "code": "AsgInstanceLaunchFailures",
                    "message": "Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot "
                    "capacity available that matches your request. Launching EC2 instance failed.",
                    "resourceIds": ["eks-gf-pool-1234"],
                }
            ]
        },
    }
    status = EksBackend(CLUSTER)._status(REF, group)
    assert status.state is PoolState.FAILED
    assert status.error is not None
    assert (status.error.code, status.error.kind) == ("InsufficientInstanceCapacity", ErrorKind.CAPACITY)


def test_subnet_out_of_addresses_blocks_the_zone() -> None:
    group = {
        "status": "CREATE_FAILED",
        "health": {"issues": [{"code": "InsufficientFreeAddresses", "message": "Subnet has no free addresses"}]},
    }
    status = EksBackend(CLUSTER)._status(REF, group)
    assert status.error is not None
    assert (status.error.kind, status.error.scope) == (ErrorKind.CAPACITY, Scope.ZONE)
