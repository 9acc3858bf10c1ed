"""GCP GKE in google-cloud-container's REST wire format (container_v1 `transports/rest_base.py`).

Get cluster, create/get/list/delete node pool, set node pool size, get operation, under
`/v1/projects/P/locations/L/...`. Requests arrive with `$alt=json;enum-encoding=int`, so enums may be
numbers or names. A stockout or quota failure after acceptance ends the create operation as DONE with
`error` set and the GKE code in its message, and the node pool in ERROR; synchronous failures are
Google API errors whose ErrorInfo `reason` is the code, so api_core raises its real exception types.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gpuflow_emulator.clouds import clusters, machines
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
from gpuflow_emulator.clouds.scenarios import BUSY, CAPACITY, QUOTA, SERVER, SYNC, THROTTLED, Fault
from gpuflow_emulator.config import CloudIdentity, EmulatorConfig
from gpuflow_emulator.timeutil import iso

NOT_FOUND, CONFLICT, INVALID = "NOT_FOUND", "CONFLICT", "INVALID"
K8S_VERSION = "1.32.2-gke.1000"
# (HTTP status, google.rpc status, ErrorInfo reason) per fault kind.
CODES = {
    NOT_FOUND: (404, "NOT_FOUND", "NOT_FOUND"),
    CONFLICT: (409, "ALREADY_EXISTS", "ALREADY_EXISTS"),
    INVALID: (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
    THROTTLED: (429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED"),
    SERVER: (503, "UNAVAILABLE", "UNAVAILABLE"),
    CAPACITY: (429, "RESOURCE_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED"),
    QUOTA: (403, "PERMISSION_DENIED", "QUOTA_EXCEEDED"),
    BUSY: (400, "FAILED_PRECONDITION", "FAILED_PRECONDITION"),
}
# Faults whose real answers carry only a status and a message, no ErrorInfo: GKE's quota refusal (gcloud shows
# "ResponseError: code=403, message=Insufficient regional quota ...", vanvalenlab/kiosk-console #367; the JSON
# body is {"code": 403, "message": ..., "status": "PERMISSION_DENIED"}, kubeflow/kubeflow #842) and "please wait"
# (hashicorp/terraform-provider-google #10366). A scenario that names a `code` still gets it as the reason.
WITHOUT_ERROR_INFO = frozenset({QUOTA, BUSY})
# A stockout after acceptance: GKE keeps the pool, RUNNING_WITH_ERROR, and goes on trying to create its VMs
# (hashicorp/terraform-provider-google #3304, #10823; GoogleCloudPlatform/magic-modules #5225).
ASYNC_STOCKOUT_CODE = "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"
RUNNING_WITH_ERROR = "RUNNING_WITH_ERROR"
HTTP_STATUS_NAMES = {500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
RPC_RESOURCE_EXHAUSTED = 8
# Taint effects arrive as numbers (enum-encoding=int) or names.
TAINT_EFFECTS: dict[int | str, str] = {
    1: "NoSchedule",
    2: "PreferNoSchedule",
    3: "NoExecute",
    "NO_SCHEDULE": "NoSchedule",
    "PREFER_NO_SCHEDULE": "PreferNoSchedule",
    "NO_EXECUTE": "NoExecute",
}
POOL_STATUS = {PoolState.CREATING: "PROVISIONING", PoolState.READY: "RUNNING", PoolState.DELETING: "STOPPING"}
OPERATION_TYPES = {
    "create": "CREATE_NODE_POOL",
    "delete": "DELETE_NODE_POOL",
    "resize": "SET_NODE_POOL_SIZE",
    "update": "UPGRADE_NODES",  # what GKE reports for UpdateNodePool
}
# The taint GKE puts on every GPU node itself (GKE "About GPUs in GKE").
# NodeConfig diskSizeGb: "If unspecified, the default disk size is 100GB" (GKE API reference, NodeConfig).
DEFAULT_DISK_GB = 100
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
# Spot VMs: terminated 30 seconds after the notice; the kubelet's graceful node shutdown gives non-system Pods the
# first 15 seconds and critical system Pods the next 15. The node pool's managed instance group recreates the VM
# under the same name when capacity allows (kubernetes/cloud-provider-gcp #368: "GCE MIGs currently reuse the
# instance name").
INTERRUPTION = Interruption(
    notice_seconds=30,
    shutdown_windows=(15, 15),
    after=AfterPreemption.RECREATE,
    source="https://cloud.google.com/kubernetes-engine/docs/concepts/spot-vms",
)


def render(exc: CloudFault) -> web.Response:
    fault = exc.fault
    status, rpc_status, reason = CODES.get(fault.kind, (400, "FAILED_PRECONDITION", fault.kind))
    if fault.http_status:
        status, rpc_status = fault.http_status, HTTP_STATUS_NAMES.get(fault.http_status, rpc_status)
    error: dict[str, Any] = {"code": status, "message": exc.message, "status": rpc_status}
    if fault.code or fault.kind not in WITHOUT_ERROR_INFO:
        metadata = {"quota_metric": fault.metric} if fault.metric else {}
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": fault.code or reason,
                "domain": "container.googleapis.com",
                "metadata": metadata,
            }
        ]
    return web.json_response({"error": error}, status=status)


def gke_accelerator(pool: Pool) -> str | None:
    """GKE's accelerator type of the pool: the requested one, else that of the machine type's built-in GPUs."""
    requested = pool.request.get("config", {}).get("accelerators") or []
    if requested:
        return str(requested[0]["acceleratorType"])
    if pool.accelerator is None:
        return None
    return machines.gke_accelerators().types.get(pool.accelerator)


class GkeFlavor:
    """GKE node pools: node names, labels (gke-nodepool, gke-accelerator, gke-spot), the GPU taint GKE adds."""

    cloud = "gcp"
    interruption = INTERRUPTION

    def node_name(self, pool: Pool, index: int, zone: str) -> str:
        digest = hashlib.sha256(f"{pool.cluster}/{pool.name}/{pool.serial}/{zone}".encode()).hexdigest()
        return f"gke-{pool.cluster}-{pool.name}"[:40] + f"-{digest[:8]}-{digest[8:12]}{index}"

    def node_labels(self, pool: Pool, zone: str) -> dict[str, str]:
        labels = {"topology.kubernetes.io/zone": zone, "cloud.google.com/gke-nodepool": pool.name}
        if accelerator := gke_accelerator(pool):
            labels[machines.gke_accelerators().label] = accelerator
        if pool.spot:
            labels["cloud.google.com/gke-spot"] = "true"
        return labels

    def node_taints(self, pool: Pool) -> list[dict[str, str]]:
        if pool.accelerator and pool.resource == machines.gke_accelerators().resource:
            return [dict(GPU_TAINT)]
        return []

    def ships_device_plugin(self, pool: Pool) -> bool:
        """GKE runs its own GPU device plugin DaemonSet on GPU nodes, and TPU nodes advertise google.com/tpu."""
        return True

    def failure(self, pool: Pool, fault: Fault) -> PoolError:
        zone = pool.zones[0]
        if fault.when == SYNC and fault.kind == QUOTA:
            return PoolError(fault.kind, fault.code or "", fault.message or _quota_refusal(pool, fault))
        if fault.kind == QUOTA:
            metric = fault.metric or "NVIDIA_GPUS"
            where = "globally" if metric == "GPUS_ALL_REGIONS" else f"in region {pool.region}"
            detail = f"Quota '{metric}' exceeded.  Limit: 0.0 {where}."
        else:
            detail = (
                f"The zone 'projects/{pool.request['project']}/zones/{zone}' does not have enough resources "
                "available to fulfill the request.  '(resource type:compute)'."
            )
        detail = fault.message or detail
        if fault.when == SYNC:
            return PoolError(fault.kind, fault.code or CODES[fault.kind][2], detail)
        if fault.kind == CAPACITY:  # the pool stays, RUNNING_WITH_ERROR, with no node; words of #3304
            code = fault.code or ASYNC_STOCKOUT_CODE
            message = (
                f"{zone}: Deploy error: Not all instances running in IGM after 45.677691201s. Expect "
                f"{pool.node_count}. Current errors: [{code}]: Instance '{self.node_name(pool, 0, zone)}' "
                f"creation failed: {detail} - ; ."
            )
            return PoolError(fault.kind, code, message, RUNNING_WITH_ERROR)
        code = fault.code or CODES[fault.kind][2]
        message = (
            f"Google Compute Engine: Not all instances running in IGM. Expected {pool.node_count}, running 0, "
            f"transitioning 0. Current errors: [{code}]: Instance '{self.node_name(pool, 0, zone)}' creation "
            f"failed: {detail}"
        )
        return PoolError(fault.kind, code, message)

    def preemption(self, pool: Pool, node: str, ends_at: datetime) -> tuple[str, str]:
        when = iso(ends_at)
        return "Preempted", f"Compute Engine preempted the Spot VM of node {node}; it shuts down at {when}"


class GkeApi:
    """Routes of the GKE v1 API over the shared node-pool engine."""

    PREFIX = "/v1/projects/{project}/locations/{location}"

    def __init__(self, config: EmulatorConfig, pools: NodePools, server_url: Any) -> None:
        self.config, self.pools, self.server_url = config, pools, server_url
        pools.register(GkeFlavor())

    def routes(self) -> list[web.RouteDef]:
        cluster = self.PREFIX + "/clusters/{cluster}"
        pool = cluster + "/nodePools/{pool:[^/:]+}"
        return [
            web.get(cluster, self.get_cluster, name="GetCluster"),
            web.post(cluster + "/nodePools", self.create_node_pool, name="CreateNodePool"),
            web.get(cluster + "/nodePools", self.list_node_pools, name="ListNodePools"),
            web.get(pool, self.get_node_pool, name="GetNodePool"),
            web.put(pool, self.update_node_pool, name="UpdateNodePool"),
            web.delete(pool, self.delete_node_pool, name="DeleteNodePool"),
            web.post(pool + ":setSize", self.set_size, name="SetNodePoolSize"),
            web.get(self.PREFIX + "/operations/{operation}", self.get_operation, name="GetOperation"),
        ]

    def _cluster(self, request: web.Request) -> tuple[str, CloudIdentity]:
        info = request.match_info
        found = clusters.find(self.config, "gcp", info["cluster"], project=info["project"], location=info["location"])
        if found is None:
            path = f"projects/{info['project']}/locations/{info['location']}/clusters/{info['cluster']}"
            raise CloudFault(Fault(NOT_FOUND), f"Not found: {path}.")
        return found[0].name, found[1]

    def _pool(self, request: web.Request) -> Pool:
        cluster, _ = self._cluster(request)
        pool = self.pools.get("gcp", cluster, request.match_info["pool"])
        if pool is None or pool.state is PoolState.GONE:
            raise CloudFault(Fault(NOT_FOUND), f"Not found: {request.path}.")
        return pool

    def _link(self, request: web.Request, path: str) -> str:
        info = request.match_info
        return f"{request.scheme}://{request.host}/v1/projects/{info['project']}/locations/{info['location']}/{path}"

    async def get_cluster(self, request: web.Request) -> web.Response:
        name, identity = self._cluster(request)
        body = {
            "name": name,
            "location": identity.location,
            "locations": list(identity.zones),
            "endpoint": self.server_url(name),
            "status": "RUNNING",
            "currentMasterVersion": K8S_VERSION,
            "currentNodeVersion": K8S_VERSION,
            "initialClusterVersion": K8S_VERSION,
            "masterAuth": {"clusterCaCertificate": ""},
            "selfLink": self._link(request, f"clusters/{name}"),
            "nodePools": [self._pool_json(request, p) for p in self.pools.list("gcp", name)],
            "createTime": iso(_utc(0)),
        }
        return web.json_response(body)

    async def create_node_pool(self, request: web.Request) -> web.Response:
        cluster, identity = self._cluster(request)
        spec = (await request.json())["nodePool"]
        name = spec["name"]
        if self.pools.get("gcp", cluster, name) is not None:
            raise CloudFault(Fault(CONFLICT), f"Already exists: {request.path}/{name}.")
        config = spec.get("config") or {}
        zones = tuple(spec.get("locations") or identity.zones)
        requested = config.get("accelerators") or []
        pool = Pool(
            cloud="gcp",
            cluster=cluster,
            name=name,
            region=identity.region,
            zones=zones,
            instance_type=config.get("machineType", "e2-medium"),
            node_count=int(spec.get("initialNodeCount", 0)) * len(zones),
            disk_bytes=int(config.get("diskSizeGb") or DEFAULT_DISK_GB) * GB,
            spot=bool(config.get("spot") or config.get("preemptible")),
            labels={k: str(v) for k, v in (config.get("labels") or {}).items()},
            taints=[
                {"key": t["key"], "value": t.get("value", ""), "effect": TAINT_EFFECTS[t.get("effect", 1)]}
                for t in config.get("taints") or []
            ],
            accelerator=requested[0]["acceleratorType"] if requested else None,
            accelerators_per_node=int(requested[0].get("acceleratorCount", 0)) if requested else 0,
            resource=machines.gke_accelerators().resource if requested else None,
            request={**spec, "locations": list(zones), "project": request.match_info["project"]},
        )
        operation = self.pools.create(pool)
        return web.json_response(self._operation_json(request, operation))

    async def get_node_pool(self, request: web.Request) -> web.Response:
        return web.json_response(self._pool_json(request, self._pool(request)))

    async def list_node_pools(self, request: web.Request) -> web.Response:
        cluster, _ = self._cluster(request)
        return web.json_response({"nodePools": [self._pool_json(request, p) for p in self.pools.list("gcp", cluster)]})

    async def set_size(self, request: web.Request) -> web.Response:
        pool = self._pool(request)
        count = int((await request.json()).get("nodeCount", 0))
        pool.request["initialNodeCount"] = count
        return web.json_response(self._operation_json(request, self.pools.resize(pool, count * len(pool.zones))))

    async def update_node_pool(self, request: web.Request) -> web.Response:
        """Node labels only: ``labels.labels`` replaces the pool's node labels, as GKE documents it."""
        pool = self._pool(request)
        body = await request.json()
        if pool.state is PoolState.DELETING:
            raise CloudFault(Fault(INVALID), f"Node pool {pool.name} is being deleted.")
        if "labels" not in body:
            return web.json_response(self._operation_json(request, self.pools.track("update", pool)))
        labels = {k: str(v) for k, v in (body["labels"].get("labels") or {}).items()}
        pool.request.setdefault("config", {})["labels"] = labels
        return web.json_response(self._operation_json(request, self.pools.relabel(pool, labels)))

    async def delete_node_pool(self, request: web.Request) -> web.Response:
        return web.json_response(self._operation_json(request, self.pools.delete(self._pool(request))))

    async def get_operation(self, request: web.Request) -> web.Response:
        self._cluster_of_location(request)
        operation = self.pools.operations.get(request.match_info["operation"])
        if operation is None or operation.pool.cloud != "gcp":
            raise CloudFault(Fault(NOT_FOUND), f"Not found: {request.path}.")
        return web.json_response(self._operation_json(request, operation))

    def _cluster_of_location(self, request: web.Request) -> None:
        info = request.match_info
        if not any(
            c.cloud
            and c.cloud.provider == "gcp"
            and (c.cloud.project, c.cloud.location) == (info["project"], info["location"])
            for c in self.config.clusters
        ):
            raise CloudFault(Fault(NOT_FOUND), f"Not found: {request.path}.")

    def _pool_json(self, request: web.Request, pool: Pool) -> dict[str, Any]:
        spec = pool.request
        status = (pool.error.status or "ERROR") if pool.error else POOL_STATUS.get(pool.state, "STOPPING")
        body: dict[str, Any] = {
            "name": pool.name,
            "config": {
                "machineType": pool.instance_type,
                **(spec.get("config") or {}),
                "diskSizeGb": pool.disk_bytes // GB,
            },
            "initialNodeCount": int(spec.get("initialNodeCount", 0)),
            "locations": spec["locations"],
            "selfLink": self._link(request, f"clusters/{pool.cluster}/nodePools/{pool.name}"),
            "version": K8S_VERSION,
            "status": status,
            "instanceGroupUrls": [],
            "podIpv4CidrSize": 24,
            "etag": f"{pool.serial}-{int(pool.modified_at)}",
        }
        if pool.error:
            body["statusMessage"] = pool.error.message
            body["conditions"] = [{"message": pool.error.message, "canonicalCode": "RESOURCE_EXHAUSTED"}]
        return body

    def _operation_json(self, request: web.Request, operation: Operation) -> dict[str, Any]:
        pool = operation.pool
        body: dict[str, Any] = {
            "name": operation.id,
            "zone": request.match_info["location"],
            "location": request.match_info["location"],
            "operationType": OPERATION_TYPES[operation.kind],
            "status": "DONE" if operation.done else "RUNNING",
            "selfLink": self._link(request, f"operations/{operation.id}"),
            "targetLink": self._link(request, f"clusters/{pool.cluster}/nodePools/{pool.name}"),
            "startTime": iso(_utc(operation.started_at)),
        }
        if operation.done:
            body["endTime"] = iso(_utc(pool.modified_at))
        if operation.done and operation.error:
            body["error"] = {"code": RPC_RESOURCE_EXHAUSTED, "message": operation.error.message}
            body["statusMessage"] = operation.error.message
        return body


def _utc(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


def _quota_refusal(pool: Pool, fault: Fault) -> str:
    """GKE's 403 text for a create beyond a quota: regional, or project-wide for an ``*_ALL_REGIONS`` metric.

    Words of vanvalenlab/kiosk-console #367 and m-lab/etl #798 (regional), kubeflow/examples #597 (project).
    """
    metric = fault.metric or _gpu_quota_metric(pool)
    scope = "project" if metric.endswith("_ALL_REGIONS") else "regional"
    wanted = f"{float(pool.node_count * max(1, pool.accelerators_per_node)):.1f}"
    return (
        f"Insufficient {scope} quota to satisfy request: resource \"{metric}\": request requires '{wanted}' and is "
        f"short '{wanted}'. project has a quota of '0.0' with '0.0' available. View and manage quotas at "
        f"https://console.cloud.google.com/iam-admin/quotas?usage=USED&project={pool.request['project']}."
    )


def _gpu_quota_metric(pool: Pool) -> str:
    """The regional quota metric of the pool's GPUs, as Compute Engine names them (NVIDIA_L4_GPUS, and with
    PREEMPTIBLE_ for spot VMs); CPUS for a pool without GPUs."""
    accelerator = gke_accelerator(pool)
    if accelerator is None:
        return "CPUS"
    model = accelerator.removeprefix("nvidia-").removeprefix("tesla-").upper().replace("-", "_")
    return f"{'PREEMPTIBLE_' if pool.spot else ''}NVIDIA_{model}_GPUS"
