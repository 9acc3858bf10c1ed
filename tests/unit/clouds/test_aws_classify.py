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
            Scope.FAMILY,  # the P or G bucket of that region, not every instance there
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


def group(status: str, code: str, message: str) -> dict[str, object]:
    """A DescribeNodegroup ``nodegroup`` with one health issue."""
    issue = {"code": code, "message": message, "resourceIds": ["eks-gf-pool-1234"]}
    return {"status": status, "scalingConfig": {"desiredSize": 1}, "health": {"issues": [issue]}, "labels": {}}


def test_a_launch_failure_seen_while_the_group_is_still_creating_fails_it_now() -> None:
    launch = (  # aws/containers-roadmap #2204
        "Could not launch On-Demand Instances. InsufficientInstanceCapacity - We currently do not have sufficient "
        "p4d.24xlarge capacity in the Availability Zone you requested (us-east-1a). Launching EC2 instance failed."
    )
    status = EksBackend(CLUSTER)._status(REF, group("CREATING", "AsgInstanceLaunchFailures", launch))
    assert status.state is PoolState.FAILED
    assert status.error is not None
    assert (status.error.code, status.error.kind) == ("InsufficientInstanceCapacity", ErrorKind.CAPACITY)


def test_nodes_that_cannot_join_stop_the_run_with_what_to_fix() -> None:
    # aws/containers-roadmap #764
    status = EksBackend(CLUSTER)._status(
        REF, group("CREATE_FAILED", "NodeCreationFailure", "Instances failed to join the kubernetes cluster")
    )
    assert status.error is not None
    assert (status.error.kind, status.error.scope) == (ErrorKind.INVALID, Scope.CLOUD)
    assert "AmazonEKSWorkerNodePolicy" in status.error.message


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("IamNodeRoleNotFound", ErrorKind.INVALID),
        ("Ec2SubnetInvalidConfiguration", ErrorKind.INVALID),
        ("ClusterUnreachable", ErrorKind.INVALID),
        ("AccessDenied", ErrorKind.INVALID),  # as a health issue: the nodes', not the caller's
        ("AmiIdNotFound", ErrorKind.INVALID),
        ("Ec2InstanceTypeDoesNotExist", ErrorKind.CAPACITY),
        ("AutoScalingGroupRateLimitExceeded", ErrorKind.TRANSIENT),  # not a quota, though it ends so
        ("IamThrottling", ErrorKind.TRANSIENT),
    ],
)
def test_health_issue_codes_of_botocore_s_model(code: str, kind: ErrorKind) -> None:
    status = EksBackend(CLUSTER)._status(REF, group("CREATE_FAILED", code, "as EKS says"))
    assert status.error is not None
    assert status.error.kind is kind


def test_every_code_read_is_one_aws_really_returns() -> None:
    """Codes of EC2 and EKS errors and botocore's Issue.code enum; an invented one (Ec2InsufficientCapacity) would
    never match anything."""
    import botocore.session

    from gpuflow.clouds.aws import CODES, MISCONFIGURED

    issue_codes = set(botocore.session.get_session().get_service_model("eks").shape_for("Issue").members["code"].enum)
    assert set(MISCONFIGURED) <= issue_codes
    assert "Ec2InsufficientCapacity" not in CODES
