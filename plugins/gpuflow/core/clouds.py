"""Every per-cloud fact gpuflow relies on, one record per cloud, registered in one place.

A cloud's facts used to live in separate tables (settings, name rules, node labels, taints, backends), and a
cloud missing from one of them failed at run time, after a pool was bought. Here a cloud is one
``CloudTraits`` record in ``CLOUD_TRAITS``, and a unit test checks that every record is complete. Kept free
of cloud SDKs: the backend is named as a "module:Class" string and imported only by ``gpuflow.clouds``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gpuflow.core import accelerators
from gpuflow.core.errors import RequestError

# The zones of its region a cluster can place a pool in, from its region and settings; None for all of them.
ZoneReach = Callable[[str, Mapping[str, Any]], frozenset[str] | None]
# What one of the cloud's quotas counts an offer under, from its instance type and accelerator (see below).
QuotaFamily = Callable[[str, str], str]


@dataclass(frozen=True, slots=True)
class NameRule:
    """How long a cloud's pool name may be and whether it may contain hyphens."""

    max_length: int
    hyphens: bool


@dataclass(frozen=True, slots=True)
class CloudTraits:
    """What gpuflow must know about one cloud: its cluster settings, names, node labels, storage and backend."""

    name: str
    kubernetes: str  # the managed Kubernetes, for messages
    required_settings: tuple[str, ...]  # keys a cluster's ``settings`` must hold (read by the backend)
    reachable_zones: ZoneReach
    name_rule: NameRule
    pool_label: str  # the node label that names a node's pool
    accelerator_resources: frozenset[str]  # the Kubernetes extended resources its nodes can offer
    backend: str  # "module:Class" of the ``CloudBackend``, imported only when a backend is built
    max_disk_gib: int  # the largest boot disk its node pools accept (see ``gpuflow.core.disks``)
    # The quota an offer counts against, per region and market (spot quotas are separate on all three clouds):
    # a quota refusal blocks what that quota covers, no less (the run would retry it) and no more.
    quota_family: QuotaFamily
    # Typical seconds from asking for a node pool to its nodes being Ready, each figure with its source below. A
    # run's deadline policy prices a preemption with it (``gpuflow.core.deadline.overheads_for``).
    typical_provision_s: float
    # The node label naming an NVIDIA GPU's type, with its value per canonical accelerator; None when absent.
    accelerator_label: str | None = None
    accelerator_label_values: Mapping[str, str] = field(default_factory=dict)
    spot_taint: tuple[str, str] | None = None  # (key, value) the cloud itself taints spot nodes with
    # The accelerator resources whose device plugin gpuflow installs as a cluster add-on, because the node image
    # its pools get does not ship one: without a plugin a node holds the hardware but never advertises it.
    device_plugin_addons: frozenset[str] = frozenset()
    # The URI schemes of its object storage, each with the rclone remote that copies a model from it into a
    # serving pod; None for a scheme rclone cannot read (see ``gpuflow.core.storage``).
    storage_schemes: Mapping[str, str | None] = field(default_factory=dict)
    model_uri_shape: str = ""  # what a URI rclone copies a model from looks like, for messages
    rclone_env: Mapping[str, str] = field(default_factory=dict)  # how rclone authenticates to that storage
    # Whether the cloud brings a pool's preempted spot node back by itself once capacity returns (an Auto Scaling
    # group, a managed instance group); if not, a recovery moves on to the next offer at once.
    replaces_lost_nodes: bool = True


def _subnet_zones(region: str, settings: Mapping[str, Any]) -> frozenset[str]:
    """An EKS cluster reaches the zones of its subnets (by availability-zone id)."""
    return frozenset(settings["subnets"])


def _zonal_location(region: str, settings: Mapping[str, Any]) -> frozenset[str] | None:
    """A zonal GKE cluster reaches its zone only; a regional one (location = region) reaches them all."""
    location: str = settings["location"]
    return None if location == region else frozenset({location})


def _whole_region(region: str, settings: Mapping[str, Any]) -> None:
    return None


# EC2's vCPU quotas count instance families in buckets: "Running On-Demand P instances", "... G and VT
# instances", "... Inf instances", "... Trn instances", "... DL instances", and the same for spot requests
# (EC2 docs, "On-Demand Instance quotas"). The family is the type's letters before its generation digit.
_EC2_BUCKETS = {"p": "P", "g": "G and VT", "vt": "G and VT", "inf": "Inf", "trn": "Trn", "dl": "DL"}


def _ec2_bucket(instance_type: str, accelerator: str) -> str:
    letters = re.match(r"[a-z]+", instance_type)
    family = letters[0] if letters else instance_type
    return _EC2_BUCKETS.get(family, family.upper())


def _gpu_type(instance_type: str, accelerator: str) -> str:
    """Compute Engine's GPU quotas are per GPU type and region (NVIDIA_L4_GPUS; PREEMPTIBLE_... for spot)."""
    return accelerator


def _vm_family(instance_type: str, accelerator: str) -> str:
    """Azure's vCPU quotas are per VM family and region: the size without its vCPU count (Standard_NC4as_T4_v3
    and Standard_NC64as_T4_v3 are both NCas_T4_v3, quota "standardNCASv3_T4Family")."""
    return re.sub(r"^Standard_([A-Za-z]+)\d+", r"\1", instance_type)


CLOUD_TRAITS: Mapping[str, CloudTraits] = {
    traits.name: traits
    for traits in (
        # EKS node group names: up to 63 letters, digits, hyphens and underscores, starting alphanumeric
        # (EKS CreateNodegroup API reference).
        CloudTraits(
            name="aws",
            kubernetes="EKS",
            required_settings=("node_role_arn", "subnets"),
            reachable_zones=_subnet_zones,
            name_rule=NameRule(max_length=63, hyphens=True),
            pool_label="eks.amazonaws.com/nodegroup",
            accelerator_resources=frozenset({accelerators.NVIDIA, accelerators.NEURON}),
            backend="gpuflow.clouds.aws:EksBackend",
            max_disk_gib=16_384,  # an EBS gp3 volume holds at most 16 TiB (EC2 docs, "Amazon EBS volume types")
            quota_family=_ec2_bucket,
            # CreateNodegroup to ACTIVE, which EKS reports once the group's nodes have joined the cluster: "Creation
            # complete after 2m50s" in a public run (eu-west-1, CPU nodes; AWS publishes no figure):
            # https://github.com/umotif-public/terraform-aws-eks-node-group/issues/7
            typical_provision_s=170,
            # NVIDIA pools get the Bottlerocket NVIDIA AMI, which ships the NVIDIA device plugin; no EKS AMI ships
            # the Neuron one ("Install Kubernetes device plugin for GPUs", EKS user guide).
            device_plugin_addons=frozenset({accelerators.NEURON}),
            storage_schemes={"s3": ":s3:"},
            model_uri_shape="s3://BUCKET/PATH",
            # No RCLONE_S3_PROVIDER=AWS: with it rclone 1.60 always addresses buckets virtual-host style
            # (BUCKET.ENDPOINT), which an S3-compatible or private endpoint given as AWS_ENDPOINT_URL_S3 / an IP
            # does not resolve; S3 itself serves path-style requests. The region comes from the cluster.
            rclone_env={"RCLONE_S3_ENV_AUTH": "true"},
        ),
        # GKE node pool names: up to 40 lowercase letters, digits and hyphens, starting with a letter and ending
        # alphanumeric (GKE rejects longer names; Terraform's provider documents the same limit).
        CloudTraits(
            name="gcp",
            kubernetes="GKE",
            required_settings=("project", "location"),
            reachable_zones=_zonal_location,
            name_rule=NameRule(max_length=40, hyphens=True),
            pool_label="cloud.google.com/gke-nodepool",
            accelerator_resources=frozenset({accelerators.NVIDIA, accelerators.TPU}),
            backend="gpuflow.clouds.gcp:GkeBackend",
            max_disk_gib=61_035,  # a persistent disk holds at most 64 TB = 65,536 GB (Compute Engine docs)
            quota_family=_gpu_type,
            # A GKE pool's new node, from the resize to the Node's Ready condition: "took 2-3min from scale-up to node
            # ready", measured in the Kubernetes project's own GKE cluster (Google publishes no figure for a pool):
            # https://github.com/kubernetes/test-infra/pull/18607 ; the upper end, as creating a pool also makes its
            # instance group. The cluster autoscaler's FAQ gave 1.5-2 min to boot a GKE node plus up to 30 s to join.
            typical_provision_s=180,
            accelerator_label="cloud.google.com/gke-accelerator",
            accelerator_label_values=accelerators.GKE_ACCELERATOR_TYPES,
            spot_taint=("cloud.google.com/gke-spot", "true"),
            storage_schemes={"gs": ":gcs:"},
            model_uri_shape="gs://BUCKET/PATH",
            rclone_env={"RCLONE_GCS_ENV_AUTH": "true"},
        ),
        # AKS Linux agent pool names: 1 to 12 lowercase letters and digits, starting with a letter (AKS docs).
        CloudTraits(
            name="azure",
            kubernetes="AKS",
            required_settings=("subscription_id", "resource_group"),
            reachable_zones=_whole_region,
            name_rule=NameRule(max_length=12, hyphens=False),
            pool_label="kubernetes.azure.com/agentpool",
            accelerator_resources=frozenset({accelerators.NVIDIA, accelerators.AMD}),
            backend="gpuflow.clouds.azure:AksBackend",
            max_disk_gib=1_907,  # osDiskSizeGB is at most 2,048 GB (the AKS REST API's ContainerServiceOSDisk)
            quota_family=_vm_family,
            # A new AKS GPU node to Ready (driver and device plugin included): "5-10 min ... is expected" and "~10-11
            # minutes" observed for Standard_NC96ads_A100_v4, in an answer on Microsoft Q&A (Azure publishes no
            # figure): https://learn.microsoft.com/en-us/answers/a/12767836 . CPU agent pools took 4 to 9 min to
            # create in https://github.com/Azure/AKS/issues/1439 .
            typical_provision_s=600,
            spot_taint=("kubernetes.azure.com/scalesetpriority", "spot"),
            # AKS installs the GPU drivers but not the device plugin (AKS docs, "use-nvidia-gpu"). No AMD plugin is
            # installed yet, so an AMD pool's nodes never advertise amd.com/gpu and the wait fails over.
            device_plugin_addons=frozenset({accelerators.NVIDIA}),
            # rclone reads Blob storage as az://ACCOUNT/CONTAINER/PATH; fsspec's abfs:// names are not its own.
            storage_schemes={"az": ":azureblob:", "abfs": None, "abfss": None},
            # Spot pools use the Delete eviction policy: "the VM is deleted" and the pool shrinks, nothing comes
            # back by itself (AKS docs, "Add an Azure Spot node pool": Eviction policy).
            replaces_lost_nodes=False,
            model_uri_shape="az://ACCOUNT/CONTAINER/PATH",
            rclone_env={"RCLONE_AZUREBLOB_ENV_AUTH": "true"},
        ),
    )
}
CLOUDS = tuple(CLOUD_TRAITS)


def traits(cloud: str) -> CloudTraits:
    """The record of ``cloud``; an unknown cloud is a ``RequestError`` naming the registered ones."""
    try:
        return CLOUD_TRAITS[cloud]
    except (KeyError, TypeError):
        known = f"one of {', '.join(CLOUDS)} (the clouds in {__name__}.CLOUD_TRAITS)"
        raise RequestError("cloud", cloud, known) from None
