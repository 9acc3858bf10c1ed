"""GKE node pools through google-cloud-container's ``ClusterManagerClient`` (REST transport).

Credentials come from the Airflow Google connection (``GoogleBaseHook``); the extras may add
``api_endpoint`` and ``anonymous: true`` (an endpoint that needs no Google credentials). Failures are
read from the node pool's ``conditions[].code`` (GCE_STOCKOUT, GCE_QUOTA_EXCEEDED) and, where Google
puts the Compute Engine code only in the text of ``status_message`` or an API error, from the known codes
as whole words in that text, the way SkyPilot's GCP failover reads them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from gpuflow.clouds import gke_token, kubeconfig
from gpuflow.clouds.calls import classified, codes_in_text
from gpuflow.clouds.connections import extras
from gpuflow.clouds.http_status import kind_for_status
from gpuflow.core.accelerators import GKE_ACCELERATOR_TYPES
from gpuflow.core.catalog import CapacityType
from gpuflow.core.clusters import Cluster
from gpuflow.core.disks import gib_in_gb
from gpuflow.core.errors import CloudError, ErrorKind, Scope
from gpuflow.core.nodepool import NodePoolRef, NodePoolSpec, NodePoolStatus, PoolState

STATES = {
    "PROVISIONING": PoolState.CREATING,
    "RECONCILING": PoolState.CREATING,
    "RUNNING": PoolState.READY,
    "RUNNING_WITH_ERROR": PoolState.CREATING,  # unless its message names a failure: see ``_status``
    "STOPPING": PoolState.DELETING,
    "ERROR": PoolState.FAILED,
}
# GKE's answers that carry no ErrorInfo, only words. A quota refusal is a 403 PERMISSION_DENIED whose text names
# the quota metric: regional (that metric in that region; vanvalenlab/kiosk-console #367) or project-wide
# (``*_ALL_REGIONS``; kubeflow/examples #597); read as a bare 403 it would be refused credentials.
_QUOTA_REFUSAL = re.compile(
    r'insufficient (regional|project) quota to satisfy request:? (?:for )?resource:? \\?"([A-Z0-9_]+)', re.I
)
# Compute Engine's quota of one GPU type in one region (NVIDIA_L4_GPUS, PREEMPTIBLE_NVIDIA_L4_GPUS for spot VMs):
# exhausting it blocks that GPU type there, in that market; a region's CPUS or addresses block the region.
_GPU_METRIC = re.compile(r"\b(?:PREEMPTIBLE_)?NVIDIA_[A-Z0-9_]+_GPUS\b|\bTPU[A-Z0-9_]*\b")
# A 400 FAILED_PRECONDITION while another operation runs on the cluster: "... is currently creating a node pool
# for cluster C. Please wait and try again once it is done." (hashicorp/terraform-provider-google #10366).
_PLEASE_WAIT = re.compile(r"please wait and try again", re.I)
# Compute Engine / GKE codes in order of preference: the global GPU quota first (it is a QUOTA_EXCEEDED whose
# metric makes it cloud-wide), then the node pool condition codes GKE sets itself, then the codes Compute
# Engine puts in messages.
GCE_CODES: dict[str, tuple[ErrorKind, Scope]] = {
    "GPUS_ALL_REGIONS": (ErrorKind.QUOTA, Scope.CLOUD),
    "GCE_STOCKOUT": (ErrorKind.CAPACITY, Scope.OFFER),
    "GCE_QUOTA_EXCEEDED": (ErrorKind.QUOTA, Scope.REGION),
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS": (ErrorKind.CAPACITY, Scope.OFFER),
    "ZONE_RESOURCE_POOL_EXHAUSTED": (ErrorKind.CAPACITY, Scope.OFFER),
    "QUOTA_EXCEEDED": (ErrorKind.QUOTA, Scope.REGION),
    "RESOURCE_EXHAUSTED": (ErrorKind.CAPACITY, Scope.OFFER),
    "stockout": (ErrorKind.CAPACITY, Scope.OFFER),
}
UNKNOWN = "UNKNOWN"  # the code of a failure whose text names no known code and comes with no HTTP status
# Connection extras whose credentials gke_token cannot rebuild in another process (see kube_config).
_STATIC_TOKEN_CREDENTIALS = ("keyfile_dict", "credential_config_file", "impersonation_chain")


def google_credentials(connection_id: str, settings: Mapping[str, Any]) -> Any:
    """The Google connection's credentials (a key, or application default credentials), or anonymous ones for an
    endpoint that needs none (``anonymous: true``, the emulator's)."""
    if settings.get("anonymous"):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    return GoogleBaseHook(gcp_conn_id=connection_id).get_credentials()


class GkeBackend:
    """Node pools of one GKE cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.parent = (
            f"projects/{cluster.settings['project']}/locations/{cluster.settings['location']}/clusters/{cluster.name}"
        )

    @cached_property
    def settings(self) -> dict[str, Any]:
        return extras(self.cluster.connection_id)

    @cached_property
    def credentials(self) -> Any:
        return google_credentials(self.cluster.connection_id, self.settings)

    @cached_property
    def client(self) -> Any:
        from google.api_core.client_options import ClientOptions
        from google.cloud.container_v1 import ClusterManagerClient

        endpoint = self.settings.get("api_endpoint")
        options = ClientOptions(api_endpoint=endpoint) if endpoint else None
        return ClusterManagerClient(transport="rest", client_options=options, credentials=self.credentials)

    def create_node_pool(self, spec: NodePoolSpec) -> NodePoolRef:
        from google.api_core.exceptions import Conflict

        # 409 ALREADY_EXISTS over REST: get-or-create, a retried task finds its own pool
        with classified(self, absorb=lambda exc: isinstance(exc, Conflict)):
            self.client.create_node_pool(parent=self.parent, node_pool=_node_pool(spec))
        return spec.ref

    def get_node_pool(self, ref: NodePoolRef) -> NodePoolStatus:
        from google.api_core.exceptions import NotFound

        pool = None
        with classified(self, absorb=lambda exc: isinstance(exc, NotFound)):
            pool = self.client.get_node_pool(name=f"{self.parent}/nodePools/{ref.name}")
        return NodePoolStatus(ref, PoolState.GONE) if pool is None else self._status(ref, pool)

    def delete_node_pool(self, ref: NodePoolRef) -> None:
        from google.api_core.exceptions import NotFound

        with classified(self, absorb=lambda exc: isinstance(exc, NotFound)):
            self.client.delete_node_pool(name=f"{self.parent}/nodePools/{ref.name}")

    def list_node_pools(self, labels: Mapping[str, str]) -> list[NodePoolStatus]:
        with classified(self):
            pools = self.client.list_node_pools(parent=self.parent).node_pools
        statuses = [self._status(NodePoolRef("gcp", self.cluster.region, self.cluster.name, p.name), p) for p in pools]
        return [s for s in statuses if labels.items() <= s.labels.items()]

    def label_node_pool(self, ref: NodePoolRef, labels: Mapping[str, str]) -> None:
        """UpdateNodePool replaces the node labels, so the current ones are read and merged first. The pool's
        own node version and image type are sent back unchanged (both are required; "-" would upgrade)."""
        from google.cloud.container_v1 import types

        name = f"{self.parent}/nodePools/{ref.name}"
        with classified(self):
            pool = self.client.get_node_pool(name=name)
            request = types.UpdateNodePoolRequest(
                name=name,
                node_version=pool.version,
                image_type=pool.config.image_type,
                labels=types.NodeLabels(labels={**pool.config.labels, **labels}),
            )
            self.client.update_node_pool(request=request)

    def resize_node_pool(self, ref: NodePoolRef, nodes: int) -> None:
        """SetNodePoolSize: gpuflow's pools are in one zone, so the pool's count is the zone's."""
        from google.cloud.container_v1 import types

        request = types.SetNodePoolSizeRequest(name=f"{self.parent}/nodePools/{ref.name}", node_count=nodes)
        with classified(self):
            self.client.set_node_pool_size(request=request)

    def kube_config(self) -> dict[str, Any]:
        """Endpoint and CA from GetCluster; the user gets its tokens as the connection's credentials allow.

        Application Default Credentials or a key file (``key_path``) can mint a token in any process, so the
        kubeconfig runs ``gpuflow.clouds.gke_token`` for each one (jobs of any length). Credentials the helper
        cannot rebuild (an inline ``keyfile_dict``, a secret that must not travel in a kubeconfig or a trigger;
        a ``credential_config_file``; an impersonation chain) give one access token instead, which Google
        lets live about an hour. Anonymous: no user credentials.
        """
        with classified(self):
            cluster = self.client.get_cluster(name=self.parent)
        server = cluster.endpoint if "://" in cluster.endpoint else f"https://{cluster.endpoint}"
        return kubeconfig.kube_config(
            self.cluster.name, server, cluster.master_auth.cluster_ca_certificate, self._user()
        )

    def _user(self) -> dict[str, Any]:
        if self.settings.get("anonymous"):
            return {}
        if any(self._field(name) for name in _STATIC_TOKEN_CREDENTIALS):
            from google.auth.transport.requests import Request

            self.credentials.refresh(Request())
            return {"token": str(self.credentials.token)}
        key_path = self._field("key_path")
        return kubeconfig.exec_user(gke_token.__name__, *(["--key-path", str(key_path)] if key_path else []))

    def _field(self, name: str) -> Any:
        """A google connection extra, under its name or the provider's older prefixed one."""
        return self.settings.get(name) or self.settings.get(f"extra__google_cloud_platform__{name}")

    def classify(self, exc: BaseException) -> CloudError:
        message = str(getattr(exc, "message", "") or exc)
        status = getattr(exc, "code", None)
        # ErrorInfo details are structured: reason (QUOTA_EXCEEDED...) and metadata (quota_metric...).
        details = [d for d in getattr(exc, "details", None) or [] if isinstance(d, dict)]
        structured = [str(getattr(exc, "reason", "") or "")]
        structured += [str(v) for d in details for v in (d.get("reason"), *(d.get("metadata") or {}).values()) if v]
        return self._error(" ".join([*structured, message]), message, status if isinstance(status, int) else None)

    def _error(self, text: str, message: str, http_status: int | None = None) -> CloudError:
        """A quota refusal or "please wait" read from its words, else the preferred known code found
        (``GCE_CODES`` order), else the HTTP status."""
        if quota := _QUOTA_REFUSAL.search(text):
            scope = Scope.CLOUD if quota[1].lower() == "project" else _regional_quota_scope(quota[2])
            return self._cloud_error(quota[2], ErrorKind.QUOTA, scope, message)
        if _PLEASE_WAIT.search(text):
            return self._cloud_error("FAILED_PRECONDITION", ErrorKind.TRANSIENT, Scope.REGION, message)
        found = set(codes_in_text(text, GCE_CODES))
        code = next((c for c in GCE_CODES if c in found), None)
        if code is not None:
            kind, scope = GCE_CODES[code]
            if scope is Scope.REGION and (metric := _GPU_METRIC.search(text)):
                scope = _regional_quota_scope(metric[0])
        else:
            code = f"HTTP{http_status}" if http_status else UNKNOWN
            kind, scope = kind_for_status(http_status)
        return self._cloud_error(code, kind, scope, message)

    def _cloud_error(self, code: str, kind: ErrorKind, scope: Scope, message: str) -> CloudError:
        return CloudError(cloud="gcp", code=code, kind=kind, scope=scope, message=message, resource=self.cluster.name)

    def _status(self, ref: NodePoolRef, pool: Any) -> NodePoolStatus:
        """The pool's state and, for a failed one, why. RUNNING_WITH_ERROR is how GKE shows a stockout: the
        pool stays with fewer nodes than asked (often none) while GKE goes on trying, and may bill a VM much
        later; when its message names a stockout or quota code the pool has failed (failover deletes it),
        otherwise it is not ready yet."""
        state = STATES.get(pool.status.name, PoolState.CREATING)
        error = None
        if state is PoolState.FAILED or pool.status.name == "RUNNING_WITH_ERROR":
            conditions = " ".join(f"{c.code.name} {c.message}" for c in pool.conditions)
            found = self._error(f"{conditions} {pool.status_message}", pool.status_message or conditions)
            named = found.code != UNKNOWN and found.kind in (ErrorKind.CAPACITY, ErrorKind.QUOTA)
            if state is PoolState.FAILED or named:
                state, error = PoolState.FAILED, found
        size = pool.initial_node_count * max(1, len(pool.locations))
        return NodePoolStatus(
            ref,
            state,
            ready_nodes=size if state is PoolState.READY else 0,
            error=error,
            labels=dict(pool.config.labels),
            instance_type=pool.config.machine_type,
            node_count=size,
            spot=bool(pool.config.spot or pool.config.preemptible),
        )


def _regional_quota_scope(metric: str) -> Scope:
    return Scope.FAMILY if _GPU_METRIC.fullmatch(metric) else Scope.REGION


def _node_pool(spec: NodePoolSpec) -> Any:
    from google.cloud.container_v1 import types

    accelerators = []
    if spec.accelerator in GKE_ACCELERATOR_TYPES:
        driver = types.GPUDriverInstallationConfig(
            gpu_driver_version=types.GPUDriverInstallationConfig.GPUDriverVersion.LATEST
        )
        accelerators.append(
            types.AcceleratorConfig(
                accelerator_count=spec.accelerator_count,
                accelerator_type=GKE_ACCELERATOR_TYPES[spec.accelerator],
                gpu_driver_installation_config=driver,
            )
        )
    config = types.NodeConfig(
        machine_type=spec.instance_type,
        disk_size_gb=gib_in_gb(spec.disk_gib),
        labels=dict(spec.labels),
        taints=[
            types.NodeTaint(key=t.key, value=t.value, effect=types.NodeTaint.Effect.NO_SCHEDULE) for t in spec.taints
        ],
        spot=spec.capacity_type is CapacityType.SPOT,
        accelerators=accelerators,
    )
    return types.NodePool(
        name=spec.name,
        initial_node_count=spec.nodes,
        locations=[spec.zone] if spec.zone else [],
        config=config,
    )
