"""GKE and AKS failures classified from the payloads the services return (messages as published)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from azure.core.exceptions import HttpResponseError
from google.api_core import exceptions as google_errors
from google.cloud.container_v1 import types

from gpuflow.clouds.azure import AksBackend
from gpuflow.clouds.gcp import GkeBackend
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import ErrorKind, Scope
from gpuflow.core.nodepool import NodePoolRef, PoolState

GKE = Cluster("gcp", "us-central1", "gpuflow-usc1", "gpuflow_gcp", {"project": "p", "location": "us-central1"})
AKS = Cluster("azure", "eastus", "gpuflow-eastus", "gpuflow_azure", {"subscription_id": "s", "resource_group": "g"})
STOCKOUT_TEXT = (
    "Google Compute Engine: Not all instances running in IGM after 31.5s. Expected 1, running 0, transitioning 1. "
    "Current errors: [ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS]: Instance 'gke-gf-pool-1' creation failed: The zone "
    "'projects/p/zones/us-central1-a' does not have enough resources available to fulfill the request."
)


@pytest.mark.parametrize(
    ("exc", "code", "kind", "scope"),
    [
        (
            google_errors.Forbidden("Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 1.0 globally."),
            "GPUS_ALL_REGIONS",
            ErrorKind.QUOTA,
            Scope.CLOUD,
        ),
        (
            google_errors.Forbidden(
                "QUOTA_EXCEEDED: Quota 'NVIDIA_L4_GPUS' exceeded. Limit: 0.0 in region us-central1."
            ),
            "QUOTA_EXCEEDED",
            ErrorKind.QUOTA,
            Scope.FAMILY,  # L4s in that region: the region's other GPU types are counted apart
        ),
        (google_errors.TooManyRequests("Rate limit exceeded"), "HTTP429", ErrorKind.TRANSIENT, Scope.REGION),
        (google_errors.ServiceUnavailable("backend error"), "HTTP503", ErrorKind.TRANSIENT, Scope.REGION),
        (
            google_errors.Unauthorized("Request had invalid authentication credentials."),
            "HTTP401",
            ErrorKind.AUTH,
            Scope.CLOUD,
        ),
        (google_errors.BadRequest("Invalid machine type"), "HTTP400", ErrorKind.INVALID, Scope.OFFER),
        (  # vanvalenlab/kiosk-console #367: a bare 403, no ErrorInfo; a quota of that GPU in that region
            google_errors.Forbidden(
                'Insufficient regional quota to satisfy request: resource "PREEMPTIBLE_NVIDIA_V100_GPUS": request '
                "requires '2.0' and is short '1.0'. project has a quota of '1.0' with '1.0' available. View and "
                "manage quotas at https://console.cloud.google.com/iam-admin/quotas?usage=USED."
            ),
            "PREEMPTIBLE_NVIDIA_V100_GPUS",
            ErrorKind.QUOTA,
            Scope.FAMILY,
        ),
        (  # kubeflow/examples #597: the project-wide form
            google_errors.Forbidden(
                'Insufficient project quota to satisfy request: resource "GPUS_ALL_REGIONS": request requires '
                "'16.0' and is short '4.0'. project has a quota of '12.0' with '12.0' available."
            ),
            "GPUS_ALL_REGIONS",
            ErrorKind.QUOTA,
            Scope.CLOUD,
        ),
        (  # hashicorp/terraform-provider-google #10366: another operation runs on the cluster
            google_errors.BadRequest(
                "Operation operation-1634563651427-e3d4b2e0 is currently deleting a node pool for cluster "
                "default-cluster. Please wait and try again once it is done."
            ),
            "FAILED_PRECONDITION",
            ErrorKind.TRANSIENT,
            Scope.REGION,
        ),
    ],
)
def test_gke_api_errors(exc: Exception, code: str, kind: ErrorKind, scope: Scope) -> None:
    error = GkeBackend(GKE).classify(exc)
    assert (error.code, error.kind, error.scope) == (code, kind, scope)


def test_gke_pool_in_error_is_read_from_its_condition_and_status_message() -> None:
    pool = types.NodePool(
        name="gf-pool",
        status=types.NodePool.Status.ERROR,
        status_message=STOCKOUT_TEXT,
        conditions=[types.StatusCondition(code=types.StatusCondition.Code.GCE_STOCKOUT, message="stockout")],
    )
    status = GkeBackend(GKE)._status(NodePoolRef("gcp", "us-central1", "gpuflow-usc1", "gf-pool"), pool)
    assert status.state is PoolState.FAILED
    assert status.error is not None
    assert (status.error.code, status.error.kind, status.error.scope) == (
        "GCE_STOCKOUT",
        ErrorKind.CAPACITY,
        Scope.OFFER,
    )
    assert "does not have enough resources" in status.error.message


def test_gke_pool_in_error_without_conditions_is_read_from_the_message() -> None:
    pool = types.NodePool(name="gf-pool", status=types.NodePool.Status.ERROR, status_message=STOCKOUT_TEXT)
    status = GkeBackend(GKE)._status(NodePoolRef("gcp", "us-central1", "gpuflow-usc1", "gf-pool"), pool)
    assert status.error is not None
    assert status.error.code == "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"


RUNNING_WITH_ERROR_TEXT = (  # hashicorp/terraform-provider-google #3304
    "us-west1-c: Deploy error: Not all instances running in IGM after 45.677691201s. Expect 1. Current errors: "
    "[ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS]: Instance 'gke-kube-test-92aefcaa-7t8l' creation failed: The zone "
    "'projects/kube-env-181/zones/us-west1-c' does not have enough resources available to fulfill the request.  "
    "'(resource type:compute)'. - ; ."
)


def test_gke_pool_running_with_a_stockout_has_failed_and_counts_no_node() -> None:
    pool = types.NodePool(
        name="gf-pool",
        initial_node_count=1,
        status=types.NodePool.Status.RUNNING_WITH_ERROR,
        status_message=RUNNING_WITH_ERROR_TEXT,
    )
    status = GkeBackend(GKE)._status(NodePoolRef("gcp", "us-central1", "gpuflow-usc1", "gf-pool"), pool)
    assert (status.state, status.ready_nodes) == (PoolState.FAILED, 0)
    assert status.error is not None
    assert (status.error.code, status.error.kind, status.error.scope) == (
        "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        ErrorKind.CAPACITY,
        Scope.OFFER,
    )


def test_gke_pool_running_with_an_error_it_does_not_name_is_not_ready_yet() -> None:
    pool = types.NodePool(
        name="gf-pool",
        initial_node_count=1,
        status=types.NodePool.Status.RUNNING_WITH_ERROR,
        status_message="us-west1-c: Deploy error: Not all instances running in IGM after 12s. Expect 1.",
    )
    status = GkeBackend(GKE)._status(NodePoolRef("gcp", "us-central1", "gpuflow-usc1", "gf-pool"), pool)
    assert (status.state, status.ready_nodes, status.error) == (PoolState.CREATING, 0, None)


def azure_error(status: int, code: str, message: str) -> HttpResponseError:
    exc = HttpResponseError(message=message)
    exc.status_code = status
    exc.error = SimpleNamespace(code=code, message=message)  # type: ignore[assignment]
    return exc


@pytest.mark.parametrize(
    ("status", "code", "message", "kind", "scope"),
    [
        (
            409,
            "OperationNotAllowed",
            "Operation could not be completed as it results in exceeding approved standardNCASv3_T4Family Cores "
            "quota. Additional details - Deployment Model: Resource Manager, Location: eastus, Current Limit: 0.",
            ErrorKind.QUOTA,
            Scope.FAMILY,
        ),
        (
            400,
            "SkuNotAvailable",
            "The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: "
            "Standard_NC24ads_A100_v4' is currently not available in location 'eastus'.",
            ErrorKind.CAPACITY,
            Scope.OFFER,
        ),
        (
            200,
            "AllocationFailed",
            "Allocation failed. We do not have sufficient capacity for the requested VM size in this region.",
            ErrorKind.CAPACITY,
            Scope.OFFER,
        ),
        (429, "TooManyRequests", "The request is being throttled.", ErrorKind.TRANSIENT, Scope.REGION),
        (
            403,
            "AuthorizationFailed",
            "The client does not have authorization to perform action 'Microsoft.ContainerService/.../write'.",
            ErrorKind.AUTH,
            Scope.CLOUD,
        ),
        (  # 1ChristianAlex/motordesk #14
            400,
            "ErrCode_InsufficientVCPUQuota",
            "Insufficient vcpu quota requested 2, remaining 0 for family StandardDasv7Family for region eastus. "
            "Surge nodes would also consume vcpu quota.",
            ErrorKind.QUOTA,
            Scope.FAMILY,
        ),
        (  # dotnet/core #8000: barred for the subscription, a long block of the offer, not a stop
            400,
            "BadRequest",
            "The VM size of AgentPoolProfile:nodepool1 is not allowed in your subscription in location 'westus'.  "
            "For more details, please visit https://aka.ms/aks/quotas-skus-regions",
            ErrorKind.QUOTA,
            Scope.OFFER,
        ),
    ],
)
def test_aks_api_errors(status: int, code: str, message: str, kind: ErrorKind, scope: Scope) -> None:
    error = AksBackend(AKS).classify(azure_error(status, code, message))
    assert (error.code, error.kind, error.scope) == (code, kind, scope)


def test_aks_error_nested_in_template_validation_details_is_read_for_it() -> None:
    """MicrosoftDocs/azure-docs #43164: InvalidTemplateDeployment, with the quota refusal in its details."""
    inner = SimpleNamespace(
        code="QuotaExceeded",
        message="The operation couldn't be completed as it results in exceeding quota limit of Core. Maximum "
        "allowed: 4, Current in use: 0, Additional requested: 40.",
        details=[],
    )
    exc = azure_error(
        400,
        "InvalidTemplateDeployment",
        "The template deployment 'e9a37e68' is not valid according to the validation procedure. The tracking id is "
        "'90f41981'. See inner errors for details.",
    )
    exc.error.details = [inner]  # type: ignore[union-attr]
    error = AksBackend(AKS).classify(exc)
    assert (error.code, error.kind, error.scope) == ("QuotaExceeded", ErrorKind.QUOTA, Scope.REGION)  # all cores
    assert "Maximum allowed: 4" in error.message


def test_aks_failed_pool_wrapping_a_compute_code_is_read_for_it() -> None:
    problem = SimpleNamespace(
        code="ReconcileVMSSAgentPoolFailed",
        message='Code="ZonalAllocationFailed" Message="Allocation failed. We do not have sufficient capacity."',
    )
    pool = SimpleNamespace(
        provisioning_state="Failed",
        status=SimpleNamespace(provisioning_error=problem),
        count=1,
        node_labels={},
        vm_size="Standard_NC4as_T4_v3",
        scale_set_priority="Regular",
    )
    status = AksBackend(AKS)._status(NodePoolRef("azure", "eastus", "gpuflow-eastus", "gfpool"), pool)
    assert status.error is not None
    assert (status.error.code, status.error.kind) == ("ZonalAllocationFailed", ErrorKind.CAPACITY)
