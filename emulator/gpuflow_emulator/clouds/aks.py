"""Azure AKS in azure-mgmt-containerservice's ARM wire format (`operations/_operations.py`).

Managed cluster get, listClusterUserCredential (a kubeconfig for the emulated cluster: for an Entra-integrated
one, the kubelogin exec format AKS returns by default since Kubernetes 1.24), agent pools
create-or-update/get/list/delete as long-running operations polled through `Azure-AsyncOperation`.
A failed operation's status body carries ARM's `error.code` (AllocationFailed, ZonalAllocationFailed,
SkuNotAvailable, OverconstrainedAllocationRequest, QuotaExceeded), which azure-core surfaces as
`HttpResponseError.error.code`. Served over TLS only: the SDK will not send a bearer token over http.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from datetime import datetime
from email.utils import format_datetime
from typing import Any

import yaml
from aiohttp import web

from gpuflow_emulator.auth import AKS_SERVER_APP_ID, ENTRA_TENANT
from gpuflow_emulator.clouds import clusters
from gpuflow_emulator.clouds.nodepools import NodePools
from gpuflow_emulator.clouds.pools import (
    GB,
    AfterPreemption,
    CloudFault,
    Interruption,
    Operation,
    Pool,
    PoolError,
    PoolState,
)
from gpuflow_emulator.clouds.scenarios import CAPACITY, QUOTA, SERVER, SYNC, THROTTLED, Fault, Scenario
from gpuflow_emulator.config import CloudIdentity, EmulatorConfig
from gpuflow_emulator.emulator import Emulator

NOT_FOUND, INVALID, BUSY = "NOT_FOUND", "INVALID", "BUSY"
# The public client kubelogin's device-code login runs as (as in `az aks get-credentials` output).
AZURE_CLI_CLIENT_ID = "80faf920-1908-4b52-b5ef-a8e7bedfc67a"
KUBELOGIN_INSTALL_HINT = (
    "\nkubelogin is not installed which is required to connect to AAD enabled cluster.\n\n"
    "To learn more, please go to https://aka.ms/aks/kubelogin\n"
)
K8S_VERSION = "1.32.2"
PROVIDER = "providers/Microsoft.ContainerService"
# agentPools osDiskSizeGB: 0 or absent applies "the default osDisk size according to the vmSize" (AKS REST API
# reference, ManagedClusterAgentPoolProfileProperties); 128 GB for the GPU sizes gpuflow uses.
DEFAULT_OS_DISK_GB = 128
CODES = {
    NOT_FOUND: (404, "NotFound"),
    INVALID: (400, "InvalidParameter"),
    BUSY: (409, "OperationNotAllowed"),
    THROTTLED: (429, "TooManyRequests"),
    SERVER: (500, "InternalServerError"),
    CAPACITY: (400, "SkuNotAvailable"),
    QUOTA: (400, "QuotaExceeded"),
}
MESSAGES = {
    "AllocationFailed": "Allocation failed. We do not have sufficient capacity for the requested VM size in this "
    "region. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance",
    "ZonalAllocationFailed": "Allocation failed. We do not have sufficient capacity for the requested VM size in "
    "this zone. Read more about improving likelihood of allocation success at http://aka.ms/allocation-guidance",
    "OverconstrainedAllocationRequest": "Allocation failed. VM(s) with the following constraints cannot be "
    "allocated, because the condition is too restrictive. Please remove some constraints and try again. "
    "Constraints applied are: VM Size, Zone.",
    "SkuNotAvailable": "The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: "
    "{vm_size}' is currently not available in location '{region}'. Please try another size or deploy to a "
    "different location or different zone.",
    "QuotaExceeded": "Operation could not be completed as it results in exceeding approved {family} Cores quota. "
    "Additional details - Deployment Model: Resource Manager, Location: {region}, Current Limit: 0.",
    # AKS's own pre-check of a VM family's vCPU quota (1ChristianAlex/motordesk #14).
    "ErrCode_InsufficientVCPUQuota": "Insufficient vcpu quota requested {vcpus}, remaining 0 for family "
    "{family} for region {region}. Surge nodes would also consume vcpu quota.",
    # A size the subscription may not use in that location at all (dotnet/core #8000, #7603).
    "BadRequest": "The VM size of AgentPoolProfile:{pool} is not allowed in your subscription in location "
    "'{region}'.  For more details, please visit https://aka.ms/aks/quotas-skus-regions",
}
# ARM's template validation wraps the real failure in `details` (MicrosoftDocs/azure-docs #43164, mspnp/aks-baseline
# #377): a fault with this code answers with the quota refusal nested inside it.
TEMPLATE_WRAPPER = "InvalidTemplateDeployment"
TEMPLATE_MESSAGE = (
    "The template deployment '{tracking}' is not valid according to the validation procedure. The tracking id is "
    "'{tracking}'. See inner errors for details."
)
# Spot nodes with eviction policy Delete: a Scheduled Event Preempt whose NotBefore is at least 30 seconds ahead
# (Azure "Scheduled Events for Linux VMs": "Preempt | 30 seconds"); AKS node auto-drain cordons and drains the node
# on it; then the VM is deleted and the agent pool's count goes down by one: nothing replaces it.
INTERRUPTION = Interruption(
    notice_seconds=30,
    after=AfterPreemption.SHRINK,
    source="https://learn.microsoft.com/azure/aks/node-auto-drain",
)
STATES = {
    PoolState.CREATING: "Creating",
    PoolState.READY: "Succeeded",
    PoolState.FAILED: "Failed",
    PoolState.DELETING: "Deleting",
}


def render(exc: CloudFault) -> web.Response:
    fault = exc.fault
    status, code = CODES.get(fault.kind, (400, fault.kind))
    status = fault.http_status or status
    code = fault.code or ("ServiceUnavailable" if status == 503 else code)
    headers = {"Retry-After": "1"} if status == 429 else {}
    error: dict[str, Any] = {"code": code, "message": exc.message}
    if code == TEMPLATE_WRAPPER:
        tracking = str(uuid.uuid5(uuid.NAMESPACE_URL, exc.message))
        error = {
            "code": code,
            "message": TEMPLATE_MESSAGE.format(tracking=tracking),
            "details": [{"code": "QuotaExceeded", "message": exc.message}],
        }
    return web.json_response({"error": error}, status=status, headers=headers)


class AksFlavor:
    """AKS agent pools: VMSS node names, agentpool/scalesetpriority labels, the spot taint AKS adds."""

    cloud = "azure"
    interruption = INTERRUPTION

    def node_name(self, pool: Pool, index: int, zone: str) -> str:
        digest = int(hashlib.sha256(f"{pool.cluster}/{pool.name}/{pool.serial}".encode()).hexdigest(), 16)
        return f"aks-{pool.name}-{digest % 10**8:08d}-vmss{index:06x}"

    def node_labels(self, pool: Pool, zone: str) -> dict[str, str]:
        labels = {
            "topology.kubernetes.io/zone": zone,
            "kubernetes.azure.com/agentpool": pool.name,
            "agentpool": pool.name,
            "kubernetes.azure.com/mode": pool.request["properties"].get("mode", "User").lower(),
        }
        if pool.spot:
            labels["kubernetes.azure.com/scalesetpriority"] = "spot"
        if pool.accelerator:
            labels["kubernetes.azure.com/accelerator"] = "nvidia"
        return labels

    def node_taints(self, pool: Pool) -> list[dict[str, str]]:
        if pool.spot:
            return [{"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"}]
        return []

    def ships_device_plugin(self, pool: Pool) -> bool:
        """AKS GPU nodes come with drivers but no device plugin: "you need to install the NVIDIA device plugin"
        (AKS docs, "Use GPUs for compute-intensive workloads", use-nvidia-gpu)."""
        return False

    def failure(self, pool: Pool, fault: Fault) -> PoolError:
        if fault.kind == CAPACITY and fault.when != SYNC:
            zonal = bool(pool.request["properties"].get("availabilityZones"))
            default = "ZonalAllocationFailed" if zonal else "AllocationFailed"
        else:
            default = CODES[fault.kind][1]
        code = fault.code or default
        template = MESSAGES["QuotaExceeded"] if code == TEMPLATE_WRAPPER else MESSAGES.get(code, code)
        vcpus = pool.node_count * _vcpus(pool.instance_type)
        facts = {
            "vm_size": pool.instance_type,
            "family": _quota_family(pool.instance_type),
            "region": pool.region,
            "pool": pool.name,
            "vcpus": vcpus,
        }
        return PoolError(fault.kind, code, fault.message or template.format(**facts))

    def preemption(self, pool: Pool, node: str, ends_at: datetime) -> tuple[str, str]:
        """The Scheduled Event as the metadata service words its NotBefore (an RFC 1123 date)."""
        not_before = format_datetime(ends_at, usegmt=True)
        return "PreemptScheduled", f"Scheduled event Preempt for the Spot VM of node {node}: NotBefore {not_before}"


def _vcpus(vm_size: str) -> int:
    """The vCPUs of a size, from its name: the number after the family letters (Azure's VM naming
    conventions: Standard_NC4as_T4_v3 has 4)."""
    found = re.match(r"Standard_[A-Za-z]+(\d+)", vm_size)
    return int(found[1]) if found else 1


def _quota_family(vm_size: str) -> str:
    """The name of the vCPU quota a size counts against, as Azure spells it for the NCasT4_v3 sizes:
    Standard_NC4as_T4_v3 -> standardNCASv3_T4Family (AKS docs, GPU node pools)."""
    found = re.match(r"Standard_([A-Z]+)\d+([a-z]*)_?([A-Za-z0-9]*?)_?(v\d+)?$", vm_size)
    if found is None:
        return f"{vm_size} family"
    series, features, accelerator, version = found.groups()
    tail = f"_{accelerator}" if accelerator else ""
    return f"standard{series}{features.upper()}{version or ''}{tail}Family"


# ARM refuses these in tag names on every resource (Kubernetes label keys such as "gpuflow.io/run" included).
RESERVED_TAG_CHARACTERS = "<>%&\\?/"


def _check_tags(tags: dict[str, Any]) -> None:
    bad = sorted(name for name in tags if any(c in RESERVED_TAG_CHARACTERS for c in name))
    if bad:
        message = f"The tag names '{','.join(bad)}' have reserved characters '<,>,%,&,\\,?,/' or control characters."
        raise CloudFault(Fault(INVALID, code="InvalidTagNameCharacters"), message)


def kubelogin_user() -> dict[str, Any]:
    """The user of an Entra-integrated cluster's kubeconfig (Kubernetes >= 1.24: the exec format by default), as
    `az aks get-credentials` writes it: kubelogin, interactive device-code login, for the AKS server app."""
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "kubelogin",
            "args": [
                "get-token",
                "--environment",
                "AzurePublicCloud",
                "--server-id",
                AKS_SERVER_APP_ID,
                "--client-id",
                AZURE_CLI_CLIENT_ID,
                "--tenant-id",
                ENTRA_TENANT,
                "--login",
                "devicecode",
            ],
            "env": None,
            "installHint": KUBELOGIN_INSTALL_HINT,
            "provideClusterInfo": False,
        }
    }


def _taint(text: str) -> dict[str, str]:
    """`key=value:Effect` as AKS takes nodeTaints."""
    pair, _, effect = text.partition(":")
    key, _, value = pair.partition("=")
    return {"key": key, "value": value, "effect": effect}


class AksApi:
    """Routes of the ARM Microsoft.ContainerService API over the shared node-pool engine."""

    CLUSTER = "/subscriptions/{sub}/resourceGroups/{rg}/" + PROVIDER + "/managedClusters/{cluster}"
    OPERATIONS = "/subscriptions/{sub}/" + PROVIDER + "/locations/{location}"

    def __init__(self, config: EmulatorConfig, pools: NodePools, emulator: Emulator, scenario: Scenario) -> None:
        self.config, self.pools, self.emulator = config, pools, emulator
        # Clients wait Retry-After seconds between polls; the SDK parses it as a whole number (>= 1).
        self.retry_after = str(max(1, round(scenario.seconds(10))))
        pools.register(AksFlavor())

    def routes(self) -> list[web.RouteDef]:
        pool = self.CLUSTER + "/agentPools/{pool}"
        return [
            web.get(self.CLUSTER, self.get_cluster, name="ManagedClustersGet"),
            web.post(
                self.CLUSTER + "/listClusterUserCredential", self.user_credentials, name="ListClusterUserCredentials"
            ),
            web.get(self.CLUSTER + "/agentPools", self.list_pools, name="AgentPoolsList"),
            web.get(pool, self.get_pool, name="AgentPoolsGet"),
            web.put(pool, self.put_pool, name="AgentPoolsCreateOrUpdate"),
            web.delete(pool, self.delete_pool, name="AgentPoolsDelete"),
            web.get(self.OPERATIONS + "/operations/{operation}", self.operation_status, name="OperationStatus"),
            web.get(self.OPERATIONS + "/operationresults/{operation}", self.operation_result, name="OperationResult"),
        ]

    def _cluster(self, request: web.Request) -> tuple[str, CloudIdentity]:
        info = request.match_info
        found = clusters.find(
            self.config, "azure", info["cluster"], subscription_id=info["sub"], resource_group=info["rg"]
        )
        if found is None:
            message = (
                f"The Resource 'Microsoft.ContainerService/managedClusters/{info['cluster']}' under resource "
                f"group '{info['rg']}' was not found."
            )
            raise CloudFault(Fault(NOT_FOUND, code="ResourceNotFound"), message)
        return found[0].name, found[1]

    def _find_pool(self, request: web.Request) -> Pool | None:
        cluster, _ = self._cluster(request)
        pool = self.pools.get("azure", cluster, request.match_info["pool"])
        return None if pool is None or pool.state is PoolState.GONE else pool

    def _pool(self, request: web.Request) -> Pool:
        pool = self._find_pool(request)
        if pool is None:
            raise CloudFault(Fault(NOT_FOUND), f"Agent pool '{request.match_info['pool']}' not found.")
        return pool

    async def get_cluster(self, request: web.Request) -> web.Response:
        name, identity = self._cluster(request)
        server = self.emulator.server_url(name)
        body = {
            "id": request.path,
            "name": name,
            "location": identity.region,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "properties": {
                "provisioningState": "Succeeded",
                "powerState": {"code": "Running"},
                "kubernetesVersion": K8S_VERSION,
                "currentKubernetesVersion": K8S_VERSION,
                "dnsPrefix": name,
                "fqdn": server.split("://", 1)[1].split("/", 1)[0],
                "nodeResourceGroup": f"MC_{identity.resource_group}_{name}_{identity.region}",
                "agentPoolProfiles": [
                    {"name": p.name, **self._pool_json(request, p)["properties"]}
                    for p in self.pools.list("azure", name)
                ],
            },
        }
        return web.json_response(body)

    async def user_credentials(self, request: web.Request) -> web.Response:
        name, identity = self._cluster(request)
        config = self.emulator.kubeconfig(name)
        if identity.entra:
            config["users"] = [{"name": f"clusterUser_{identity.resource_group}_{name}", "user": kubelogin_user()}]
            config["contexts"][0]["context"]["user"] = config["users"][0]["name"]
        value = base64.b64encode(yaml.safe_dump(config, sort_keys=False).encode()).decode()
        return web.json_response({"kubeconfigs": [{"name": "clusterUser", "value": value}]})

    async def list_pools(self, request: web.Request) -> web.Response:
        cluster, _ = self._cluster(request)
        return web.json_response({"value": [self._pool_json(request, p) for p in self.pools.list("azure", cluster)]})

    async def get_pool(self, request: web.Request) -> web.Response:
        return web.json_response(self._pool_json(request, self._pool(request)))

    async def put_pool(self, request: web.Request) -> web.Response:
        cluster, identity = self._cluster(request)
        body = await request.json()
        properties = body.get("properties") or {}
        _check_tags(properties.get("tags") or {})
        existing = self._find_pool(request)
        if existing is not None:
            return self._update(request, existing, properties)
        zones = tuple(f"{identity.region}-{z}" for z in properties.get("availabilityZones") or ()) or ("0",)
        pool = Pool(
            cloud="azure",
            cluster=cluster,
            name=request.match_info["pool"],
            region=identity.region,
            zones=zones,
            instance_type=properties.get("vmSize", "Standard_D2s_v3"),
            node_count=int(properties.get("count", 1)),
            disk_bytes=int(properties.get("osDiskSizeGB") or DEFAULT_OS_DISK_GB) * GB,
            spot=properties.get("scaleSetPriority") == "Spot",
            labels={k: str(v) for k, v in (properties.get("nodeLabels") or {}).items()},
            taints=[_taint(t) for t in properties.get("nodeTaints") or []],
            request={"properties": properties},
        )
        operation = self.pools.create(pool)
        return self._accepted(request, operation, 201, self._pool_json(request, pool))

    def _update(self, request: web.Request, pool: Pool, properties: dict[str, Any]) -> web.Response:
        """A PUT of an existing pool: its count and node labels may change (AKS relabels nodes in place)."""
        if pool.state is PoolState.DELETING:
            raise CloudFault(Fault(BUSY), f"Operation is not allowed: agent pool {pool.name} is being deleted.")
        count = int(properties.get("count", pool.node_count))
        labels = {k: str(v) for k, v in (properties.get("nodeLabels") or {}).items()}
        if "nodeLabels" in properties and labels != pool.labels:
            pool.request["properties"]["nodeLabels"] = labels
            self.pools.relabel(pool, labels)
        if pool.state is PoolState.READY and count != pool.node_count:
            pool.request["properties"]["count"] = count
            operation = self.pools.resize(pool, count)
        else:
            operation = self.pools.track("create", pool)
        return self._accepted(request, operation, 200, self._pool_json(request, pool))

    async def delete_pool(self, request: web.Request) -> web.Response:
        pool = self._find_pool(request)
        if pool is None:
            return web.Response(status=204)
        operation = self.pools.delete(pool)
        return self._accepted(request, operation, 202, None, location=True)

    def _operation_url(self, request: web.Request, operation: Operation, kind: str) -> str:
        pool = operation.pool
        return (
            f"{request.scheme}://{request.host}/subscriptions/{request.match_info['sub']}/{PROVIDER}/locations/"
            f"{pool.region}/{kind}/{operation.id}?api-version={request.query.get('api-version', '')}"
        )

    def _accepted(
        self, request: web.Request, operation: Operation, status: int, body: Any, location: bool = False
    ) -> web.Response:
        headers = {
            "Azure-AsyncOperation": self._operation_url(request, operation, "operations"),
            "Retry-After": self.retry_after,
        }
        if location:
            headers["Location"] = self._operation_url(request, operation, "operationresults")
        if body is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    def _operation(self, request: web.Request) -> Operation:
        operation = self.pools.operations.get(request.match_info["operation"])
        if operation is None or operation.pool.cloud != "azure":
            raise CloudFault(Fault(NOT_FOUND), f"Operation {request.match_info['operation']} not found.")
        return operation

    async def operation_status(self, request: web.Request) -> web.Response:
        operation = self._operation(request)
        body: dict[str, Any] = {"id": request.path, "name": operation.id, "status": "InProgress"}
        if operation.done:
            body["status"] = "Failed" if operation.error else "Succeeded"
        if operation.done and operation.error:
            body["error"] = {"code": operation.error.code, "message": operation.error.message}
        headers = {} if operation.done else {"Retry-After": self.retry_after}
        return web.json_response(body, headers=headers)

    async def operation_result(self, request: web.Request) -> web.Response:
        operation = self._operation(request)
        if not operation.done:
            return web.Response(status=202, headers={"Retry-After": self.retry_after})
        return web.Response(status=204)

    def _pool_json(self, request: web.Request, pool: Pool) -> dict[str, Any]:
        properties = pool.request["properties"]
        cluster_path = request.path.split("/agentPools", 1)[0]
        return {
            "id": f"{cluster_path}/agentPools/{pool.name}",
            "name": pool.name,
            "type": "Microsoft.ContainerService/managedClusters/agentPools",
            "properties": {
                "count": pool.node_count,
                "vmSize": pool.instance_type,
                "osType": "Linux",
                "osDiskSizeGB": pool.disk_bytes // GB,
                "type": "VirtualMachineScaleSets",
                "mode": properties.get("mode", "User"),
                "orchestratorVersion": K8S_VERSION,
                "currentOrchestratorVersion": K8S_VERSION,
                **{k: v for k, v in properties.items() if k not in ("count", "vmSize", "osDiskSizeGB")},
                "provisioningState": "Failed" if pool.error else STATES.get(pool.state, "Deleting"),
                "powerState": {"code": "Running"},
                # AgentPoolStatus.provisioningError: AKS keeps the failure on the pool, not only on the operation.
                **(
                    {"status": {"provisioningError": {"code": pool.error.code, "message": pool.error.message}}}
                    if pool.error
                    else {}
                ),
            },
        }
