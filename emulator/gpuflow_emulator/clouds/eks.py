"""AWS EKS in boto3's REST-JSON wire format (botocore/data/eks/2017-11-01/service-2.json).

DescribeCluster, CreateNodegroup, DescribeNodegroup, ListNodegroups, UpdateNodegroupConfig and
DeleteNodegroup. The region comes from the SigV4 credential scope, as it picks the endpoint on real AWS.
Errors carry `x-amzn-ErrorType`, so botocore raises ClientError with the real `Error.Code`. A stockout
after acceptance is CREATE_FAILED (or DEGRADED) with an `AsgInstanceLaunchFailures` health issue.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from gpuflow_emulator.clouds import clusters
from gpuflow_emulator.clouds.nodepools import NodePools
from gpuflow_emulator.clouds.pools import GIB, AfterPreemption, CloudFault, Interruption, Pool, PoolError, PoolState
from gpuflow_emulator.clouds.scenarios import CAPACITY, QUOTA, SERVER, SYNC, THROTTLED, Fault
from gpuflow_emulator.config import CloudIdentity, EmulatorConfig

ACCOUNT = "123456789012"
# CreateNodegroup diskSize: "The default disk size is 20 GiB for Linux and Bottlerocket" (EKS API reference,
# CreateNodegroup; botocore's eks service model, field diskSize).
DEFAULT_DISK_GIB = 20
# What EKS reports when a GPU node group's request names no AMI type: the AL2023 accelerated AMI.
DEFAULT_AMI_TYPE = "AL2023_x86_64_NVIDIA"
# The AMI types whose image includes the NVIDIA device plugin (Bottlerocket's nvidia variants).
PLUGIN_AMI_TYPES = frozenset({"BOTTLEROCKET_x86_64_NVIDIA", "BOTTLEROCKET_ARM_64_NVIDIA"})
K8S_VERSION = "1.32"
NOT_FOUND, CONFLICT, INVALID = "NOT_FOUND", "CONFLICT", "INVALID"
# (HTTP status, Error.Code) per fault kind, for faults whose scenario names no code.
CODES = {
    NOT_FOUND: (404, "ResourceNotFoundException"),
    CONFLICT: (409, "ResourceInUseException"),
    INVALID: (400, "InvalidParameterException"),
    THROTTLED: (429, "ThrottlingException"),
    SERVER: (500, "ServerException"),
    CAPACITY: (400, "InsufficientInstanceCapacity"),
    QUOTA: (400, "ResourceLimitExceededException"),
}
ASYNC_EC2_CODES = {CAPACITY: "InsufficientInstanceCapacity", QUOTA: "VcpuLimitExceeded"}
# Node group health issues that are not an EC2 launch failure, with what EKS says of each: its words where a
# report shows them (NodeCreationFailure: aws/containers-roadmap #764), else botocore's eks model (Issue.code).
# A scenario fault whose `code` is one of these reports that issue instead of AsgInstanceLaunchFailures.
HEALTH_ISSUES = {
    "NodeCreationFailure": "Instances failed to join the kubernetes cluster",
    "IamNodeRoleNotFound": "We couldn't find the IAM role for your managed node group.",
    "IamInstanceProfileNotFound": "We couldn't find the IAM instance profile for your managed node group.",
    "Ec2SubnetNotFound": "One or more Amazon EC2 subnets of the node group could not be found.",
    "Ec2SubnetInvalidConfiguration": "One or more Amazon EC2 subnets specified for a node group do not "
    "automatically assign public IP addresses to instances launched into it.",
    "Ec2SecurityGroupNotFound": "We couldn't find the cluster security group for the cluster.",
    "ClusterUnreachable": "Amazon EKS or one or more of your managed nodes is unable to to communicate with your "
    "Kubernetes cluster API server.",
    "AccessDenied": "Amazon EKS or one or more of your managed nodes is failing to authenticate or authorize with "
    "your Kubernetes cluster API server.",
    "AmiIdNotFound": "We couldn't find the AMI Id associated with your Launch Template.",
    "Ec2InstanceTypeDoesNotExist": "One or more of the supplied Amazon EC2 instance types do not exist.",
}
STATES = {
    PoolState.CREATING: "CREATING",
    PoolState.READY: "ACTIVE",
    PoolState.DELETING: "DELETING",
}
TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
# Managed node groups with Spot capacity: EC2 gives a two-minute interruption notice, on which EKS drains the node
# (cordon, then evictions), and the Auto Scaling group launches a replacement instance when Spot capacity allows.
INTERRUPTION = Interruption(
    notice_seconds=120,
    after=AfterPreemption.REPLACE,
    source="https://docs.aws.amazon.com/eks/latest/userguide/managed-node-groups.html#managed-node-group-capacity-types-spot",
)
_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/eks/")


def render(exc: CloudFault) -> web.Response:
    fault = exc.fault
    status, code = CODES.get(fault.kind, (400, fault.kind))
    status = fault.http_status or status
    code = fault.code or ("ServiceUnavailableException" if status == 503 else code)
    return web.json_response({"message": exc.message}, status=status, headers={"x-amzn-ErrorType": code})


class EksFlavor:
    """EKS managed node groups: node names, labels and failures as EKS reports them."""

    cloud = "aws"
    interruption = INTERRUPTION

    def node_name(self, pool: Pool, index: int, zone: str) -> str:
        suffix = "ec2.internal" if pool.region == "us-east-1" else f"{pool.region}.compute.internal"
        return f"ip-10-{pool.serial % 250}-{index // 250}-{index % 250 + 4}.{suffix}"

    def node_labels(self, pool: Pool, zone: str) -> dict[str, str]:
        return {
            "topology.kubernetes.io/zone": zone,
            "topology.k8s.aws/zone-id": zone,
            "eks.amazonaws.com/nodegroup": pool.name,
            "eks.amazonaws.com/capacityType": "SPOT" if pool.spot else "ON_DEMAND",
        }

    def node_taints(self, pool: Pool) -> list[dict[str, str]]:
        return []

    def ships_device_plugin(self, pool: Pool) -> bool:
        """Only the Bottlerocket NVIDIA AMIs include the NVIDIA device plugin; the AL2023 (and AL2) accelerated
        AMIs and every AMI on Inferentia/Trainium need one installed (EKS user guide, "Install Kubernetes device
        plugin for GPUs", ml-eks-k8s-device-plugin)."""
        return pool.resource == "nvidia.com/gpu" and pool.request.get("amiType", DEFAULT_AMI_TYPE) in PLUGIN_AMI_TYPES

    def failure(self, pool: Pool, fault: Fault) -> PoolError:
        if fault.when == SYNC:
            message = fault.message or f"{CODES[fault.kind][1]}: cannot create node group {pool.name}"
            return PoolError(fault.kind, fault.code or CODES[fault.kind][1], message)
        if fault.code in HEALTH_ISSUES:
            message = fault.message or HEALTH_ISSUES[fault.code]
            return PoolError(fault.kind, fault.code, message, fault.status or "CREATE_FAILED")
        ec2_code = fault.code or ASYNC_EC2_CODES.get(fault.kind, "InsufficientInstanceCapacity")
        market = "Spot" if pool.spot else "On-Demand"
        detail = fault.message or (
            f"We currently do not have sufficient {pool.instance_type} capacity in the Availability Zone you "
            f"requested ({pool.zones[0]})."
        )
        message = f"Could not launch {market} Instances. {ec2_code} - {detail} Launching EC2 instance failed."
        return PoolError(fault.kind, "AsgInstanceLaunchFailures", message, fault.status or "CREATE_FAILED")

    def preemption(self, pool: Pool, node: str, ends_at: datetime) -> tuple[str, str]:
        """As aws-node-termination-handler posts it; the time is the notice's instance-action `time`."""
        when = ends_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return "SpotInterruption", f"Spot Interruption notice for node {node} was received: terminate at {when}"


class EksApi:
    """Routes of the EKS API over the shared node-pool engine."""

    def __init__(self, config: EmulatorConfig, pools: NodePools, server_url: Any) -> None:
        self.config, self.pools, self.server_url = config, pools, server_url
        pools.register(EksFlavor())

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/clusters/{name}", self.describe_cluster, name="DescribeCluster"),
            web.post("/clusters/{name}/node-groups", self.create_nodegroup, name="CreateNodegroup"),
            web.get("/clusters/{name}/node-groups", self.list_nodegroups, name="ListNodegroups"),
            web.get("/clusters/{name}/node-groups/{ng}", self.describe_nodegroup, name="DescribeNodegroup"),
            web.post(
                "/clusters/{name}/node-groups/{ng}/update-config", self.update_config, name="UpdateNodegroupConfig"
            ),
            web.delete("/clusters/{name}/node-groups/{ng}", self.delete_nodegroup, name="DeleteNodegroup"),
        ]

    def _cluster(self, request: web.Request) -> tuple[str, CloudIdentity]:
        name = request.match_info["name"]
        match = _REGION.search(request.headers.get("Authorization", ""))
        identity = {"region": match.group(1)} if match else {}
        found = clusters.find(self.config, "aws", name, **identity)
        if found is None:
            raise CloudFault(Fault(NOT_FOUND), f"No cluster found for name: {name}.")
        return found[0].name, found[1]

    def _pool(self, request: web.Request) -> Pool:
        cluster, _ = self._cluster(request)
        pool = self.pools.get("aws", cluster, request.match_info["ng"])
        if pool is None or pool.state is PoolState.GONE:
            raise CloudFault(Fault(NOT_FOUND), f"No node group found for name: {request.match_info['ng']}.")
        return pool

    async def describe_cluster(self, request: web.Request) -> web.Response:
        name, identity = self._cluster(request)
        return web.json_response({"cluster": self._cluster_json(name, identity)})

    def _cluster_json(self, name: str, identity: CloudIdentity) -> dict[str, Any]:
        return {
            "name": name,
            "arn": f"arn:aws:eks:{identity.region}:{ACCOUNT}:cluster/{name}",
            "createdAt": time.time(),
            "version": K8S_VERSION,
            "endpoint": self.server_url(name),
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/gpuflow-eks-cluster",
            "resourcesVpcConfig": {"subnetIds": list(identity.subnets), "endpointPublicAccess": True},
            "kubernetesNetworkConfig": {"serviceIpv4Cidr": "10.100.0.0/16", "ipFamily": "ipv4"},
            "status": "ACTIVE",
            "certificateAuthority": {"data": ""},
            "platformVersion": "eks.1",
            "tags": {},
        }

    async def create_nodegroup(self, request: web.Request) -> web.Response:
        cluster, identity = self._cluster(request)
        body = await request.json()
        name = body["nodegroupName"]
        if self.pools.get("aws", cluster, name) is not None:
            raise CloudFault(Fault(CONFLICT), f"NodeGroup already exists with name {name} and cluster name {cluster}")
        unknown = [s for s in body.get("subnets", []) if s not in identity.subnets]
        if unknown or not body.get("subnets"):
            raise CloudFault(Fault(INVALID), f"The subnet ID '{','.join(unknown)}' does not exist")
        scaling = {"minSize": 1, "maxSize": 2, "desiredSize": 1, **(body.get("scalingConfig") or {})}
        instance_type = (body.get("instanceTypes") or ["t3.medium"])[0]
        pool = Pool(
            cloud="aws",
            cluster=cluster,
            name=name,
            region=identity.region,
            zones=tuple(identity.subnets[s] for s in body["subnets"]),
            instance_type=instance_type,
            node_count=int(scaling["desiredSize"]),
            disk_bytes=int(body.get("diskSize") or DEFAULT_DISK_GIB) * GIB,
            spot=body.get("capacityType") == "SPOT",
            labels={k: str(v) for k, v in (body.get("labels") or {}).items()},
            taints=[
                {"key": t["key"], "value": t.get("value", ""), "effect": TAINT_EFFECTS[t["effect"]]}
                for t in body.get("taints") or []
            ],
            request={**body, "scalingConfig": scaling, "instanceTypes": [instance_type], "uuid": str(uuid.uuid4())},
        )
        self.pools.create(pool)
        return web.json_response({"nodegroup": self._nodegroup_json(pool)})

    async def describe_nodegroup(self, request: web.Request) -> web.Response:
        return web.json_response({"nodegroup": self._nodegroup_json(self._pool(request))})

    async def list_nodegroups(self, request: web.Request) -> web.Response:
        cluster, _ = self._cluster(request)
        return web.json_response({"nodegroups": sorted(p.name for p in self.pools.list("aws", cluster))})

    async def update_config(self, request: web.Request) -> web.Response:
        """Scaling and labels (``addOrUpdateLabels`` merged, ``removeLabels`` dropped), as EKS applies them."""
        pool = self._pool(request)
        if pool.state is PoolState.DELETING:
            raise CloudFault(Fault(CONFLICT), f"Nodegroup {pool.name} is currently in DELETING state")
        body = await request.json()
        params = []
        if body.get("scalingConfig"):
            scaling = {**pool.request["scalingConfig"], **body["scalingConfig"]}
            pool.request["scalingConfig"] = scaling
            self.pools.resize(pool, int(scaling["desiredSize"]))
            params.append({"type": "DesiredSize", "value": str(scaling["desiredSize"])})
        if body.get("labels"):
            change = body["labels"]
            added = {k: str(v) for k, v in (change.get("addOrUpdateLabels") or {}).items()}
            removed = set(change.get("removeLabels") or ())
            labels = {k: v for k, v in pool.labels.items() if k not in removed} | added
            pool.request["labels"] = labels
            self.pools.relabel(pool, labels)
            params += [{"type": "LabelsToAdd", "value": json.dumps(added)}] if added else []
            params += [{"type": "LabelsToRemove", "value": json.dumps(sorted(removed))}] if removed else []
        update = {
            "id": str(uuid.uuid4()),
            "status": "InProgress",
            "type": "ConfigUpdate",
            "params": params,
            "createdAt": time.time(),
            "errors": [],
        }
        return web.json_response({"update": update})

    async def delete_nodegroup(self, request: web.Request) -> web.Response:
        pool = self._pool(request)
        self.pools.delete(pool)
        return web.json_response({"nodegroup": self._nodegroup_json(pool)})

    def _nodegroup_json(self, pool: Pool) -> dict[str, Any]:
        request = pool.request
        issues = []
        if pool.error is not None:
            issues = [{"code": pool.error.code, "message": pool.error.message, "resourceIds": [self._asg(pool)]}]
        if pool.state is PoolState.DELETING:
            status = "DELETING"
        elif pool.error is not None:
            status = pool.error.status or "CREATE_FAILED"
        else:
            status = STATES[pool.state]
        return {
            "nodegroupName": pool.name,
            "nodegroupArn": f"arn:aws:eks:{pool.region}:{ACCOUNT}:nodegroup/{pool.cluster}/{pool.name}/"
            f"{request['uuid']}",
            "clusterName": pool.cluster,
            "version": K8S_VERSION,
            "releaseVersion": f"{K8S_VERSION}.0-20250101",
            "createdAt": pool.created_at,
            "modifiedAt": pool.modified_at,
            "status": status,
            "capacityType": request.get("capacityType", "ON_DEMAND"),
            "scalingConfig": request["scalingConfig"],
            "instanceTypes": request["instanceTypes"],
            "subnets": request["subnets"],
            "amiType": request.get("amiType", DEFAULT_AMI_TYPE),
            "nodeRole": request["nodeRole"],
            "labels": request.get("labels") or {},
            "taints": request.get("taints") or [],
            "resources": {"autoScalingGroups": [{"name": self._asg(pool)}]},
            "diskSize": pool.disk_bytes // GIB,
            "health": {"issues": issues},
            "updateConfig": {"maxUnavailable": 1},
            "tags": request.get("tags") or {},
        }

    @staticmethod
    def _asg(pool: Pool) -> str:
        return f"eks-{pool.name}-{pool.request['uuid']}"
