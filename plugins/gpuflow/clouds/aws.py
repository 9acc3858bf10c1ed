"""EKS managed node groups through boto3, with the client from Airflow's ``EksHook``.

The hook reads credentials, region and ``endpoint_url`` (connection extra) from the Airflow connection, so
the same code reaches AWS, moto or the gpuflow emulator. Failures are read from boto's ``Error.Code``
and from the node group's ``health.issues[].code``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from gpuflow.clouds import eks_token, kubeconfig
from gpuflow.clouds.calls import classified, codes_in_text
from gpuflow.core.accelerators import NEURON
from gpuflow.core.catalog import CapacityType
from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import CloudError, ErrorKind, Scope
from gpuflow.core.nodepool import NodePoolRef, NodePoolSpec, NodePoolStatus, PoolState

STATES = {
    "CREATING": PoolState.CREATING,
    "UPDATING": PoolState.CREATING,
    "ACTIVE": PoolState.READY,
    "CREATE_FAILED": PoolState.FAILED,
    "DEGRADED": PoolState.FAILED,
    "DELETING": PoolState.DELETING,
    "DELETE_FAILED": PoolState.FAILED,
}
# boto Error.Code and node group health issue codes -> (kind, scope). Sources: EC2 and EKS API error
# references, and the codes SkyPilot's AWS provisioner retries or fails over on.
CODES: dict[str, tuple[ErrorKind, Scope]] = {
    "InsufficientInstanceCapacity": (ErrorKind.CAPACITY, Scope.OFFER),
    "InsufficientCapacity": (ErrorKind.CAPACITY, Scope.OFFER),
    "InsufficientHostCapacity": (ErrorKind.CAPACITY, Scope.OFFER),
    "SpotMaxPriceTooLow": (ErrorKind.CAPACITY, Scope.OFFER),
    "Unsupported": (ErrorKind.CAPACITY, Scope.OFFER),  # instance type not offered in that zone
    "Ec2InstanceTypeDoesNotExist": (ErrorKind.CAPACITY, Scope.OFFER),  # health issue: not in this region
    "InsufficientFreeAddresses": (ErrorKind.CAPACITY, Scope.ZONE),  # the zone's subnet is full
    # vCPU quotas count an instance-family bucket (P, G and VT, Inf, ...) per region and market, not the region.
    "VcpuLimitExceeded": (ErrorKind.QUOTA, Scope.FAMILY),
    "MaxSpotInstanceCountExceeded": (ErrorKind.QUOTA, Scope.FAMILY),
    "InstanceLimitExceeded": (ErrorKind.QUOTA, Scope.FAMILY),
    "ResourceLimitExceededException": (ErrorKind.QUOTA, Scope.REGION),
    "RequestLimitExceeded": (ErrorKind.TRANSIENT, Scope.REGION),
    "Throttling": (ErrorKind.TRANSIENT, Scope.REGION),
    "ThrottlingException": (ErrorKind.TRANSIENT, Scope.REGION),
    "TooManyRequestsException": (ErrorKind.TRANSIENT, Scope.REGION),
    "ServiceUnavailable": (ErrorKind.TRANSIENT, Scope.REGION),
    "ServiceUnavailableException": (ErrorKind.TRANSIENT, Scope.REGION),
    "ServerException": (ErrorKind.TRANSIENT, Scope.REGION),
    "InternalFailure": (ErrorKind.TRANSIENT, Scope.REGION),
    "InternalError": (ErrorKind.TRANSIENT, Scope.REGION),
    "IamThrottling": (ErrorKind.TRANSIENT, Scope.REGION),  # health issue
    "AutoScalingGroupRateLimitExceeded": (ErrorKind.TRANSIENT, Scope.REGION),  # health issue, not a quota
    "AccessDenied": (ErrorKind.AUTH, Scope.CLOUD),
    "AccessDeniedException": (ErrorKind.AUTH, Scope.CLOUD),
    "UnauthorizedOperation": (ErrorKind.AUTH, Scope.CLOUD),
    "UnrecognizedClientException": (ErrorKind.AUTH, Scope.CLOUD),
    "InvalidClientTokenId": (ErrorKind.AUTH, Scope.CLOUD),
    "ExpiredTokenException": (ErrorKind.AUTH, Scope.CLOUD),
    "AuthFailure": (ErrorKind.AUTH, Scope.CLOUD),
    "InvalidParameterException": (ErrorKind.INVALID, Scope.OFFER),
    "InvalidRequestException": (ErrorKind.INVALID, Scope.OFFER),
    "ValidationException": (ErrorKind.INVALID, Scope.OFFER),
    "ResourceNotFoundException": (ErrorKind.NOT_FOUND, Scope.OFFER),
}
# Node group health issues (botocore's eks model, Issue.code) that mean the cluster or its settings are wrong, not
# the offer: every offer on the cluster would fail the same way, after launching GPU instances that never join.
# Each stops the run with what to fix. (As an API error, AccessDenied is the caller's own; here, the nodes'.)
_CLUSTERS_YAML = "include/config/clusters.yaml"
MISCONFIGURED: dict[str, str] = {
    "NodeCreationFailure": "the instances could not register with the cluster: give the node role "
    "(settings.node_role_arn) the AmazonEKSWorkerNodePolicy, AmazonEKS_CNI_Policy and "
    "AmazonEC2ContainerRegistryReadOnly policies, and the subnets (settings.subnets) a route out (a NAT gateway) "
    "or the VPC endpoints EKS nodes need",
    "IamNodeRoleNotFound": f"the node role does not exist: fix settings.node_role_arn in {_CLUSTERS_YAML}",
    "IamInstanceProfileNotFound": f"the node role's instance profile does not exist: fix settings.node_role_arn "
    f"in {_CLUSTERS_YAML}",
    "Ec2SubnetNotFound": f"a subnet does not exist: fix settings.subnets in {_CLUSTERS_YAML}",
    "Ec2SubnetInvalidConfiguration": "a public subnet does not assign public IPv4 addresses: use private subnets "
    f"with a NAT gateway in settings.subnets ({_CLUSTERS_YAML}), or turn on auto-assign public IPv4",
    "Ec2SubnetMissingIpv6Assignment": f"an IPv6 cluster's subnet does not assign IPv6 addresses: fix "
    f"settings.subnets in {_CLUSTERS_YAML}",
    "Ec2SecurityGroupNotFound": "the cluster's security group was deleted: the cluster must be recreated",
    "ClusterUnreachable": "the nodes cannot reach the cluster's API server: check the cluster's endpoint access "
    "and the subnets' routes",
    "AccessDenied": "the nodes are not allowed into the cluster: add an access entry of type EC2_LINUX for the "
    "node role (settings.node_role_arn), or map it in the aws-auth ConfigMap",
    "AmiIdNotFound": "the node group's AMI cannot be found in this region",
    "AutoScalingGroupNotFound": "the node group's Auto Scaling group was deleted outside EKS",
    "AutoScalingGroupInvalidConfiguration": "the node group's Auto Scaling group was changed outside EKS",
    "AutoScalingGroupOptInRequired": "the account must opt in to the Auto Scaling group's instance types or region",
    "KubernetesLabelInvalid": "a node label is invalid",
}
# "AsgInstanceLaunchFailures" only says that launches failed; EC2's own code is in the issue's message
# (e.g. "Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity...").
# It has no structured field, so the known EC2 codes are looked up as whole words in that message.
_FAILED_LAUNCH = "AsgInstanceLaunchFailures"


class EksBackend:
    """Managed node groups of one EKS cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    @cached_property
    def hook(self) -> Any:
        from airflow.providers.amazon.aws.hooks.eks import EksHook

        return EksHook(aws_conn_id=self.cluster.connection_id, region_name=self.cluster.region)

    @cached_property
    def client(self) -> Any:
        return self.hook.conn

    def create_node_pool(self, spec: NodePoolSpec) -> NodePoolRef:
        subnets: Mapping[str, str] = self.cluster.settings["subnets"]
        chosen = [subnets[spec.zone]] if spec.zone is not None and spec.zone in subnets else list(subnets.values())
        with classified(self, absorb=_already_exists):  # get-or-create
            self.client.create_nodegroup(
                clusterName=self.cluster.name,
                nodegroupName=spec.name,
                nodeRole=self.cluster.settings["node_role_arn"],
                subnets=chosen,
                instanceTypes=[spec.instance_type],
                amiType=_ami_type(spec),
                capacityType="SPOT" if spec.capacity_type is CapacityType.SPOT else "ON_DEMAND",
                scalingConfig={"minSize": spec.nodes, "maxSize": spec.nodes, "desiredSize": spec.nodes},
                diskSize=spec.disk_gib,  # GiB; EKS's default, 20, is smaller than the vLLM image
                labels=dict(spec.labels),
                taints=[{"key": t.key, "value": t.value, "effect": "NO_SCHEDULE"} for t in spec.taints],
                tags=dict(spec.labels),
            )
        return spec.ref

    def get_node_pool(self, ref: NodePoolRef) -> NodePoolStatus:
        group: Mapping[str, Any] | None = None
        with classified(self, absorb=_not_found):
            group = self.client.describe_nodegroup(clusterName=ref.cluster, nodegroupName=ref.name)["nodegroup"]
        return NodePoolStatus(ref, PoolState.GONE) if group is None else self._status(ref, group)

    def delete_node_pool(self, ref: NodePoolRef) -> None:
        with classified(self, absorb=_not_found):
            self.client.delete_nodegroup(clusterName=ref.cluster, nodegroupName=ref.name)

    def list_node_pools(self, labels: Mapping[str, str]) -> list[NodePoolStatus]:
        found = []
        paginator = self.client.get_paginator("list_nodegroups")
        for page in paginator.paginate(clusterName=self.cluster.name):
            for name in page["nodegroups"]:
                status = self.get_node_pool(NodePoolRef("aws", self.cluster.region, self.cluster.name, name))
                if status.state is not PoolState.GONE and labels.items() <= status.labels.items():
                    found.append(status)
        return found

    def label_node_pool(self, ref: NodePoolRef, labels: Mapping[str, str]) -> None:
        """UpdateNodegroupConfig ``labels.addOrUpdateLabels``: EKS merges them into the node group's labels."""
        with classified(self):
            self.client.update_nodegroup_config(
                clusterName=ref.cluster, nodegroupName=ref.name, labels={"addOrUpdateLabels": dict(labels)}
            )

    def resize_node_pool(self, ref: NodePoolRef, nodes: int) -> None:
        """UpdateNodegroupConfig ``scalingConfig``: gpuflow's groups are fixed-size (min = max = desired)."""
        with classified(self):
            self.client.update_nodegroup_config(
                clusterName=ref.cluster,
                nodegroupName=ref.name,
                scalingConfig={"minSize": nodes, "maxSize": nodes, "desiredSize": nodes},
            )

    def kube_config(self) -> dict[str, Any]:
        """Server and CA from DescribeCluster; the user runs ``gpuflow.clouds.eks_token`` as the connection's
        identity, which is the one that needs an EKS access entry.

        A connection with keys or a ``role_arn`` signs with what the provider's hook resolves from it (the keys,
        or the assumed role's temporary keys, which the hook masks in task logs), handed to the helper in the
        exec ``env``: the helper is a subprocess and cannot read Airflow connections. Assumed-role keys last the
        role's session (an hour by default); every call here resolves them afresh. A connection with neither
        leaves the helper to the default AWS chain of the process that runs it (instance profile, IRSA), which
        refreshes itself, so no secret is written at all.
        """
        cluster = self.client.describe_cluster(name=self.cluster.name)["cluster"]
        return _kube_config(
            self.cluster, cluster["endpoint"], cluster["certificateAuthority"]["data"], self._token_environment()
        )

    def _token_environment(self) -> dict[str, str]:
        """The connection's own AWS credentials as the environment variables boto3 reads first; none without."""
        settings = self.hook.conn_config
        if not (settings.aws_access_key_id or settings.role_arn):
            return {}
        credentials = self.hook.get_credentials(region_name=self.cluster.region)
        # The session token is always set (empty for long-term keys), so one in the worker's environment is not
        # paired with the connection's keys.
        return {
            "AWS_ACCESS_KEY_ID": credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
            "AWS_SESSION_TOKEN": credentials.token or "",
        }

    def classify(self, exc: BaseException) -> CloudError:
        code = _code(exc) or type(exc).__name__
        message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")) or str(exc)
        return self._error(code, message)

    def _error(self, code: str, message: str) -> CloudError:
        if code == _FAILED_LAUNCH and (found := codes_in_text(message, CODES)):
            code = found[0]
        kind, scope = CODES.get(code, _unknown(code))
        return CloudError(cloud="aws", code=code, kind=kind, scope=scope, message=message, resource=self.cluster.name)

    def _health_error(self, issue: Mapping[str, Any]) -> CloudError:
        """A health issue of the node group: a misconfiguration stops the run with its fix, else as ``_error``."""
        code, message = str(issue["code"]), str(issue.get("message", ""))
        if code in MISCONFIGURED:
            return CloudError(
                cloud="aws",
                code=code,
                kind=ErrorKind.INVALID,
                scope=Scope.CLOUD,
                message=f"{message} (cluster {self.cluster.name}) — to fix: {MISCONFIGURED[code]}",
                resource=self.cluster.name,
            )
        return self._error(code, message)

    def _status(self, ref: NodePoolRef, group: Mapping[str, Any]) -> NodePoolStatus:
        """The group's state and, for a failed one, why. A group still CREATING whose health already names a
        launch failure or a misconfiguration has failed: EKS would report CREATE_FAILED only ~20 minutes later."""
        state = STATES.get(group["status"], PoolState.CREATING)
        issues = group.get("health", {}).get("issues", [])
        error = self._health_error(issues[0]) if issues else None
        if state is PoolState.CREATING and error is not None and error.kind is not ErrorKind.TRANSIENT:
            state = PoolState.FAILED
        if state is PoolState.FAILED and error is None:
            error = self._error(group["status"], f"node group {ref.name} is {group['status']}")
        size = int(group.get("scalingConfig", {}).get("desiredSize", 0))
        return NodePoolStatus(
            ref,
            state,
            ready_nodes=size if state is PoolState.READY else 0,
            error=error,
            labels=group.get("labels", {}),
            instance_type=(group.get("instanceTypes") or [""])[0],
            node_count=size,
            spot=group.get("capacityType") == "SPOT",
        )


def _ami_type(spec: NodePoolSpec) -> str:
    """Bottlerocket's NVIDIA AMI ships the NVIDIA device plugin (the AL2023 one does not, "Install Kubernetes
    device plugin for GPUs", EKS user guide); no AMI ships the Neuron plugin, which gpuflow installs as an
    add-on (``CloudTraits.device_plugin_addons``)."""
    return "AL2023_x86_64_NEURON" if spec.resource_name == NEURON else "BOTTLEROCKET_x86_64_NVIDIA"


def _code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, Mapping) else None


def _already_exists(exc: BaseException) -> bool:
    return _code(exc) == "ResourceInUseException"


def _not_found(exc: BaseException) -> bool:
    return _code(exc) == "ResourceNotFoundException"


def _unknown(code: str) -> tuple[ErrorKind, Scope]:
    """Unlisted codes: a 5xx-looking or connection failure is transient, anything else blocks the offer."""
    if code.endswith(("ConnectionError", "ConnectTimeoutError", "ReadTimeoutError")):
        return (ErrorKind.TRANSIENT, Scope.REGION)
    if code.endswith("LimitExceeded"):
        return (ErrorKind.QUOTA, Scope.REGION)
    return (ErrorKind.CAPACITY, Scope.OFFER)


def _kube_config(cluster: Cluster, server: str, ca_data: str, env: Mapping[str, str]) -> dict[str, Any]:
    user = kubeconfig.exec_user(
        eks_token.__name__, "--cluster-name", cluster.name, "--region-name", cluster.region, env=env
    )
    return kubeconfig.kube_config(cluster.name, server, ca_data, user)
