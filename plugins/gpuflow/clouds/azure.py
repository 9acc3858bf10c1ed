"""AKS agent pools through azure-mgmt-containerservice's ``ContainerServiceClient``.

The Azure provider has no AKS hook, so ``AksHook`` below builds the client the way the provider's hooks
do, from the Airflow Azure connection: ``login``/``password`` + extra ``tenantId`` for a service principal,
else ``DefaultAzureCredential``; extras may add ``base_url``, ``ca_bundle`` (a CA to trust for it) and
``static_token`` (a pre-issued bearer token) and ``authority`` (an Entra host other than Azure's public one).
Failures are read from ``error.code`` of API errors and
from the agent pool's ``status.provisioningError.code``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from gpuflow.clouds import aks_token, kubeconfig
from gpuflow.clouds.calls import classified, codes_in_text
from gpuflow.clouds.connections import extras
from gpuflow.clouds.http_status import kind_for_status
from gpuflow.core.catalog import CapacityType
from gpuflow.core.clusters import Cluster
from gpuflow.core.disks import gib_in_gb
from gpuflow.core.errors import CloudError, ErrorKind, Scope
from gpuflow.core.nodepool import NodePoolRef, NodePoolSpec, NodePoolStatus, PoolState

STATES = {
    "Creating": PoolState.CREATING,
    "Updating": PoolState.CREATING,
    "Scaling": PoolState.CREATING,
    "Succeeded": PoolState.READY,
    "Failed": PoolState.FAILED,
    "Canceled": PoolState.FAILED,
    "Deleting": PoolState.DELETING,
}
CODES: dict[str, tuple[ErrorKind, Scope]] = {
    "AllocationFailed": (ErrorKind.CAPACITY, Scope.OFFER),
    "ZonalAllocationFailed": (ErrorKind.CAPACITY, Scope.OFFER),
    "OverconstrainedAllocationRequest": (ErrorKind.CAPACITY, Scope.OFFER),
    "OverconstrainedZonalAllocationRequest": (ErrorKind.CAPACITY, Scope.OFFER),
    "SkuNotAvailable": (ErrorKind.CAPACITY, Scope.OFFER),
    "QuotaExceeded": (ErrorKind.QUOTA, Scope.REGION),
    # AKS's own check of a VM family's vCPU quota in the region (1ChristianAlex/motordesk #14).
    "ErrCode_InsufficientVCPUQuota": (ErrorKind.QUOTA, Scope.REGION),
    "TooManyRequests": (ErrorKind.TRANSIENT, Scope.REGION),
    "RetryableError": (ErrorKind.TRANSIENT, Scope.REGION),
    "InternalServerError": (ErrorKind.TRANSIENT, Scope.REGION),
    "InternalOperationError": (ErrorKind.TRANSIENT, Scope.REGION),
    "ServiceUnavailable": (ErrorKind.TRANSIENT, Scope.REGION),
    "AuthorizationFailed": (ErrorKind.AUTH, Scope.CLOUD),
    "AuthenticationFailed": (ErrorKind.AUTH, Scope.CLOUD),
    "InvalidAuthenticationToken": (ErrorKind.AUTH, Scope.CLOUD),
    "InvalidParameter": (ErrorKind.INVALID, Scope.OFFER),
    "BadRequest": (ErrorKind.INVALID, Scope.OFFER),
    "ResourceNotFound": (ErrorKind.NOT_FOUND, Scope.OFFER),
    "NotFound": (ErrorKind.NOT_FOUND, Scope.OFFER),
}
# AKS wraps VM allocation failures in its own codes (e.g. "ReconcileVMSSAgentPoolFailed") and names the
# Compute code only in the message; look the known codes up as whole words there.
_QUOTA_TEXT = re.compile(r"\bquota\b", re.IGNORECASE)
# A VM family's vCPU quota in a region ("exceeding approved standardNCASv3_T4Family Cores quota", "for family
# StandardDasv7Family"): it blocks that family there, not the region ("Total Regional Cores quota" does).
_FAMILY_QUOTA = re.compile(r"\bstandard\w+Family Cores quota|\bfor family \w+", re.IGNORECASE)
# A size the subscription may not use in that location at all, as a BadRequest: "The VM size of
# AgentPoolProfile:nodepool1 is not allowed in your subscription in location 'westus'." (dotnet/core #8000, #7603).
# Lifting it takes a support request, as a quota does: the offer is blocked as long, nothing else.
_SIZE_NOT_ALLOWED = re.compile(r"VM size of \S+ is not allowed in your subscription", re.IGNORECASE)
# Long-running operations are sent, not followed: the pipeline polls the pool itself (get_node_pool, in a
# trigger). azure-core's default poller would start a thread per call that keeps polling ARM, against the
# subscription's read throttle, until the operation ends or the process exits.
FIRE_AND_FORGET = False


class StaticTokenCredential:
    """A ``TokenCredential`` for a bearer token issued elsewhere (the connection's ``static_token``)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self.token, int(time.time()) + 3600)


class AksHook:
    """Builds the AKS management client from an Airflow Azure connection."""

    def __init__(self, connection_id: str, subscription_id: str) -> None:
        self.connection_id = connection_id
        self.subscription_id = subscription_id

    def get_conn(self) -> Any:
        from azure.mgmt.containerservice import ContainerServiceClient

        settings = extras(self.connection_id)
        options: dict[str, Any] = {}
        if settings.get("base_url"):
            options["base_url"] = settings["base_url"]
        if settings.get("ca_bundle"):
            options["connection_verify"] = settings["ca_bundle"]
        return ContainerServiceClient(self._credential(settings), self.subscription_id, **options)

    def _credential(self, settings: Mapping[str, Any]) -> Any:
        if settings.get("static_token"):
            return StaticTokenCredential(str(settings["static_token"]))

        principal = self.service_principal(settings)
        if principal is not None:
            return aks_token.service_principal(
                *principal, authority=settings.get("authority"), ca_bundle=settings.get("ca_bundle")
            )
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()

    def service_principal(self, settings: Mapping[str, Any]) -> tuple[str, str, str] | None:
        """(tenant, client id, secret) of the connection's service principal, if it names one."""
        from airflow.sdk import BaseHook

        connection = BaseHook.get_connection(self.connection_id)
        tenant = settings.get("tenantId") or settings.get("tenant_id")
        if connection.login and connection.password and tenant:
            return str(tenant), str(connection.login), str(connection.password)
        return None


class AksBackend:
    """Agent pools of one AKS cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.resource_group = cluster.settings["resource_group"]

    @cached_property
    def client(self) -> Any:
        return AksHook(self.cluster.connection_id, self.cluster.settings["subscription_id"]).get_conn()

    def create_node_pool(self, spec: NodePoolSpec) -> NodePoolRef:
        """PUT is create-or-update, so a retried create finds and keeps its own pool."""
        with classified(self):
            self.client.agent_pools.begin_create_or_update(
                self.resource_group, self.cluster.name, spec.name, _agent_pool(spec), polling=FIRE_AND_FORGET
            )
        return spec.ref

    def get_node_pool(self, ref: NodePoolRef) -> NodePoolStatus:
        from azure.core.exceptions import ResourceNotFoundError

        pool = None
        with classified(self, absorb=lambda exc: isinstance(exc, ResourceNotFoundError)):
            pool = self.client.agent_pools.get(self.resource_group, ref.cluster, ref.name)
        return NodePoolStatus(ref, PoolState.GONE) if pool is None else self._status(ref, pool)

    def delete_node_pool(self, ref: NodePoolRef) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with classified(self, absorb=lambda exc: isinstance(exc, ResourceNotFoundError)):
            self.client.agent_pools.begin_delete(self.resource_group, ref.cluster, ref.name, polling=FIRE_AND_FORGET)

    def list_node_pools(self, labels: Mapping[str, str]) -> list[NodePoolStatus]:
        with classified(self):
            pools = list(self.client.agent_pools.list(self.resource_group, self.cluster.name))
        statuses = [
            self._status(NodePoolRef("azure", self.cluster.region, self.cluster.name, p.name), p) for p in pools
        ]
        return [s for s in statuses if labels.items() <= s.labels.items()]

    def label_node_pool(self, ref: NodePoolRef, labels: Mapping[str, str]) -> None:
        """An agent pool update is a PUT of the whole pool: read it, merge the node labels, write it back."""
        with classified(self):
            pool = self.client.agent_pools.get(self.resource_group, ref.cluster, ref.name)
            pool.node_labels = {**(pool.node_labels or {}), **labels}
            pool.tags = {**(pool.tags or {}), **azure_tags(labels)}
            self.client.agent_pools.begin_create_or_update(
                self.resource_group, ref.cluster, ref.name, pool, polling=FIRE_AND_FORGET
            )

    def resize_node_pool(self, ref: NodePoolRef, nodes: int) -> None:
        """A PUT of the whole agent pool with its new ``count`` (the way ``az aks nodepool scale`` does it)."""
        with classified(self):
            pool = self.client.agent_pools.get(self.resource_group, ref.cluster, ref.name)
            pool.count = nodes
            self.client.agent_pools.begin_create_or_update(
                self.resource_group, ref.cluster, ref.name, pool, polling=FIRE_AND_FORGET
            )

    def kube_config(self) -> dict[str, Any]:
        """listClusterUserCredential's kubeconfig. An Entra-integrated cluster's runs ``kubelogin`` (interactive
        device-code login by default), which workers do not have: its user is replaced by
        ``gpuflow.clouds.aks_token``, which mints the Entra token for the same server application as the
        connection's service principal (handed over in the exec ``env``) or with ``DefaultAzureCredential``.
        """
        with classified(self):
            credentials = self.client.managed_clusters.list_cluster_user_credentials(
                self.resource_group, self.cluster.name
            )
        config: dict[str, Any] = yaml.safe_load(credentials.kubeconfigs[0].value)
        for entry in config.get("users") or []:
            login = (entry.get("user") or {}).get("exec") or {}
            if Path(str(login.get("command", ""))).name.startswith("kubelogin"):
                entry["user"] = self._entra_user(list(login.get("args") or []))
        return config

    def _entra_user(self, kubelogin_args: list[str]) -> dict[str, Any]:
        settings = extras(self.cluster.connection_id)
        if settings.get("static_token"):
            message = (
                f"connection {self.cluster.connection_id!r}: extra static_token cannot sign in to the Entra-integrated "
                f"AKS cluster {self.cluster.name!r} (it needs a token for {aks_token.AKS_SERVER_ID}/.default, minted "
                "whenever Kubernetes asks); give the connection a service principal (login, password and extra "
                "tenantId) or remove static_token to use DefaultAzureCredential"
            )
            raise CloudError(
                cloud="azure",
                code="StaticTokenNotForAks",
                kind=ErrorKind.AUTH,
                scope=Scope.CLOUD,
                message=message,
                resource=self.cluster.name,
            )
        hook = AksHook(self.cluster.connection_id, self.cluster.settings["subscription_id"])
        principal = hook.service_principal(settings)
        env = dict(zip(aks_token.SERVICE_PRINCIPAL_VARIABLES, principal, strict=True)) if principal else {}
        server_id = _flag(kubelogin_args, "--server-id") or aks_token.AKS_SERVER_ID
        options = [
            *(["--authority", str(settings["authority"])] if settings.get("authority") else []),
            *(["--ca-bundle", str(settings["ca_bundle"])] if settings.get("ca_bundle") else []),
        ]
        return kubeconfig.exec_user(aks_token.__name__, "--server-id", server_id, *options, env=env)

    def classify(self, exc: BaseException) -> CloudError:
        """ARM's error, or the first known error nested in its ``details`` (template validation wraps the real
        one: InvalidTemplateDeployment with QuotaExceeded inside, MicrosoftDocs/azure-docs #43164)."""
        error = getattr(exc, "error", None)
        code = getattr(error, "code", None) or ""
        message = getattr(error, "message", None) or str(getattr(exc, "message", "") or exc)
        inner = next((d for d in _nested(error) if getattr(d, "code", None) in CODES), None)
        if inner is not None:
            code, message = str(inner.code), f"{message} {inner.message}" if message else str(inner.message)
        return self._error(code, message, getattr(exc, "status_code", None))

    def _error(self, code: str, message: str, http_status: int | None = None) -> CloudError:
        if code not in CODES and (found := codes_in_text(message, CODES)):
            code = found[0]
        if _SIZE_NOT_ALLOWED.search(message):
            kind, scope = ErrorKind.QUOTA, Scope.OFFER
        elif code in CODES:
            kind, scope = CODES[code]
        elif code == "OperationNotAllowed" and _QUOTA_TEXT.search(message):
            kind, scope = ErrorKind.QUOTA, Scope.REGION  # Azure reports core quota this way
        else:
            kind, scope = kind_for_status(http_status)
        if kind is ErrorKind.QUOTA and scope is Scope.REGION and _FAMILY_QUOTA.search(message):
            scope = Scope.FAMILY
        return CloudError(
            cloud="azure",
            code=code or f"HTTP{http_status}",
            kind=kind,
            scope=scope,
            message=message,
            resource=self.cluster.name,
        )

    def _status(self, ref: NodePoolRef, pool: Any) -> NodePoolStatus:
        state = STATES.get(pool.provisioning_state or "", PoolState.CREATING)
        problem = getattr(getattr(pool, "status", None), "provisioning_error", None)
        error = None
        if state is PoolState.FAILED:
            code = getattr(problem, "code", None) or "ProvisioningFailed"
            error = self._error(code, getattr(problem, "message", None) or f"agent pool {ref.name} failed")
        size = pool.count or 0
        return NodePoolStatus(
            ref,
            state,
            ready_nodes=size if state is PoolState.READY else 0,
            error=error,
            labels=dict(pool.node_labels or {}),
            instance_type=pool.vm_size or "",
            node_count=size,
            spot=pool.scale_set_priority == "Spot",
        )


def _nested(error: Any) -> list[Any]:
    """The errors inside ``error.details`` (azure-core's ODataV4Format), depth first."""
    found = []
    for detail in getattr(error, "details", None) or []:
        found += [detail, *_nested(detail)]
    return found


def azure_tags(labels: Mapping[str, str]) -> dict[str, str]:
    """Our labels as Azure tags (for cost reports in Azure): ARM refuses '/' in a tag name, so
    ``gpuflow.io/run`` is tagged ``gpuflow.io_run``. The node labels keep the Kubernetes keys."""
    return {key.replace("/", "_"): value for key, value in labels.items()}


def _flag(args: list[str], name: str) -> str | None:
    """The value after ``name`` in a command line."""
    return args[args.index(name) + 1] if name in args[:-1] else None


def _agent_pool(spec: NodePoolSpec) -> Any:
    from azure.mgmt.containerservice.models import AgentPool
    from azure.mgmt.containerservice.models import AgentPoolManagedClusterAgentPoolProfileProperties as Properties

    spot = spec.capacity_type is CapacityType.SPOT
    properties = Properties(
        count=spec.nodes,
        vm_size=spec.instance_type,
        os_disk_size_gb=gib_in_gb(spec.disk_gib),
        mode="User",
        os_type="Linux",
        availability_zones=[spec.zone] if spec.zone else None,
        node_labels=dict(spec.labels),
        node_taints=[f"{t.key}={t.value}:{t.effect}" for t in spec.taints],
        tags=azure_tags(spec.labels),
        scale_set_priority="Spot" if spot else "Regular",
        scale_set_eviction_policy="Delete" if spot else None,
        spot_max_price=-1 if spot else None,
    )
    return AgentPool(properties=properties)
