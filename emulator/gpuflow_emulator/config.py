"""The emulator's YAML configuration: clusters with their static nodes, and how images map to local runtimes.

```yaml
kubeconfig_dir: .emulator/kubeconfigs   # one <cluster>.yaml per cluster is written here
work_dir: .emulator/pods                # per-pod scratch directories (HOME, relative workingDir)
runtimes:
  - image_prefix: "python:"             # first matching prefix wins
    commands: {python: $GPUFLOW_EMULATOR_PYTHON, python3: $GPUFLOW_EMULATOR_PYTHON}
    entrypoint: [python3]               # used when a container has no `command`
    env: {PYTHONUNBUFFERED: "1"}
device_plugins:                         # images that advertise a node's accelerators while they run Ready there
  - image_prefix: "nvcr.io/nvidia/k8s-device-plugin:"
    resource: nvidia.com/gpu
    source: https://docs.aws.amazon.com/eks/latest/userguide/ml-eks-k8s-device-plugin.html
images:                                 # image -> size unpacked on a node's disk; first matching prefix wins
  - image_prefix: "vllm/vllm-openai:"
    size: 25G                           # a Kubernetes quantity; `source` says where the figure comes from
    source: vllm-project/vllm issue 17163
state_dir: .emulator                    # runtime files, e.g. azure-ca.pem (the CA of the Azure listener)
worker_paths: [../.airflow]             # the Airflow worker's own files: hidden from every container
object_stores: {s3_port: 8093, gcs_port: 8094, azure_port: 8095}   # see stores.py; omit to serve none
clouds:                                 # the cloud node-pool APIs (see README "Cloud half"); omit to serve none
  aws_port: 8090                        # EKS, plain http
  gcp_port: 8091                        # GKE, plain http
  azure_port: 8092                      # AKS, https with a CA generated at start
  scenario: scenarios/default.yaml      # relative to this file
auth:                                   # who each cluster's Kubernetes API lets in (README "Authentication")
  token_lifetime_seconds: 900           # EKS tokens are good 15 minutes after X-Amz-Date; Entra tokens as long
  aws_identities:                       # access key id -> the IAM principal STS GetCallerIdentity names
    AKIAEMULATOR: arn:aws:iam::123456789012:user/gpuflow
clusters:
  - name: demo
    cloud: {provider: gcp, region: us-central1, project: p, location: us-central1,
            zones: [us-central1-a],     # aws: subnets {subnet-id: zone-id}, access_entries [principal ARN];
            bucket: gs://demo-artifacts}  # azure: subscription_id, resource_group, entra (default true); the bucket
                                        # is made in the cloud's store at start, its pods get credentials for it
    nodes:
      - name: gpu-node-1
        labels: {nvidia.com/gpu.product: H100}
        taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
        allocatable: {nvidia.com/gpu: "8"}
```
Values of `commands` and `env` are expanded with environment variables; `$GPUFLOW_EMULATOR_PYTHON`
is the interpreter running the emulator.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpuflow_emulator import stores
from gpuflow_emulator.disk import quantity_bytes

PYTHON_VARIABLE = "GPUFLOW_EMULATOR_PYTHON"
# The project checkout the emulator runs from, so runtimes can name its launchers and environments.
PROJECT_VARIABLE = "GPUFLOW_PROJECT_DIR"


def project_dir() -> Path:
    """The project checkout: $GPUFLOW_PROJECT_DIR, else the one this package sits in (scenario trace files
    resolve against it, as they are written from the repository root: include/traces/...)."""
    return Path(os.environ.get(PROJECT_VARIABLE) or Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class NodeSpec:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    allocatable: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudIdentity:
    """Who a cluster is to its cloud's API: the names a client addresses it by, and where its nodes go.

    `zones` are the zones nodes land in when a request names none (AWS: the zone ids of `subnets`).
    """

    provider: str
    region: str
    zones: tuple[str, ...] = ()
    subnets: dict[str, str] = field(default_factory=dict)
    project: str = ""
    location: str = ""
    subscription_id: str = ""
    resource_group: str = ""
    # EKS: the IAM principals with an access entry, the only ones its Kubernetes API lets in.
    access_entries: tuple[str, ...] = ()
    # AKS: Microsoft Entra ID integration (a kubelogin kubeconfig; only Entra tokens for AKS are accepted).
    entra: bool = True
    bucket: str = ""  # the cluster's artifacts bucket in its cloud's store (stores.py)


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    nodes: list[NodeSpec] = field(default_factory=list)
    cloud: CloudIdentity | None = None


@dataclass(frozen=True)
class CloudsConfig:
    """Listener ports of the three cloud APIs (0 = do not serve that cloud) and the scenario file."""

    aws_port: int = 0
    gcp_port: int = 0
    azure_port: int = 0
    scenario: Path | None = None


@dataclass(frozen=True)
class AuthConfig:
    """How long the tokens the clusters accept live, and which AWS access key is which IAM principal."""

    token_lifetime_seconds: float = 900
    aws_identities: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Runtime:
    """How containers of images starting with `image_prefix` run locally."""

    image_prefix: str
    commands: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, command: list[str], args: list[str]) -> list[str]:
        """The local argv: the container's command (or the runtime's entrypoint) plus args, argv[0] mapped."""
        argv = [*(command or self.entrypoint), *args]
        if argv:
            argv[0] = self.commands.get(argv[0], argv[0])
        return argv


@dataclass(frozen=True)
class ImageSize:
    """How much of a node's disk an image takes once pulled and unpacked, and where that figure comes from."""

    image_prefix: str
    size_bytes: int
    source: str


@dataclass(frozen=True)
class DevicePlugin:
    """An image that is a device plugin: while its pod runs Ready on a node, the node advertises `resource`.

    Its containers run `KEEP_ALIVE` locally (a plugin's only job here is to be running), so a plugin image
    needs no `runtimes` row.
    """

    image_prefix: str
    resource: str
    source: str


# A device plugin's stand-in: a process that stays up until it is told to stop.
KEEP_ALIVE = ("-c", "import signal; signal.pause()")


@dataclass(frozen=True)
class EmulatorConfig:
    clusters: list[ClusterSpec]
    runtimes: list[Runtime]
    kubeconfig_dir: Path
    work_dir: Path
    state_dir: Path = Path(".emulator")
    clouds: CloudsConfig = CloudsConfig()
    images: list[ImageSize] = field(default_factory=list)
    device_plugins: list[DevicePlugin] = field(default_factory=list)
    auth: AuthConfig = AuthConfig()
    object_stores: stores.StoresConfig | None = None
    worker_paths: tuple[Path, ...] = ()

    def cluster_identity(self, name: str) -> CloudIdentity | None:
        """The cloud identity of the cluster called `name` (None: a plain cluster, or not configured)."""
        return next((spec.cloud for spec in self.clusters if spec.name == name), None)

    def runtime_for(self, image: str) -> Runtime | None:
        """The first matching `runtimes` row; else, for a device plugin image, a process that stays up."""
        configured = next((runtime for runtime in self.runtimes if image.startswith(runtime.image_prefix)), None)
        if configured is None and (plugin := self.device_plugin(image)):
            python = os.environ.get(PYTHON_VARIABLE, sys.executable)
            return Runtime(plugin.image_prefix, entrypoint=[python, *KEEP_ALIVE])
        return configured

    def device_plugin(self, image: str) -> DevicePlugin | None:
        return next((plugin for plugin in self.device_plugins if image.startswith(plugin.image_prefix)), None)

    def image_bytes(self, image: str) -> int:
        """The image's size on a node's disk; 0 for an image the table does not list (not accounted)."""
        return next((row.size_bytes for row in self.images if image.startswith(row.image_prefix)), 0)


def _expand(values: dict[str, Any]) -> dict[str, str]:
    return {key: os.path.expandvars(str(value)) for key, value in (values or {}).items()}


def _node(raw: dict[str, Any]) -> NodeSpec:
    return NodeSpec(
        name=raw["name"],
        labels={k: str(v) for k, v in (raw.get("labels") or {}).items()},
        taints=list(raw.get("taints") or []),
        allocatable={k: str(v) for k, v in (raw.get("allocatable") or {}).items()},
    )


def _identity(raw: dict[str, Any] | None) -> CloudIdentity | None:
    if not raw:
        return None
    subnets = {str(k): str(v) for k, v in (raw.get("subnets") or {}).items()}
    return CloudIdentity(
        provider=raw["provider"],
        region=raw["region"],
        zones=tuple(raw.get("zones") or sorted(set(subnets.values()))),
        subnets=subnets,
        project=raw.get("project", ""),
        location=raw.get("location", ""),
        subscription_id=raw.get("subscription_id", ""),
        resource_group=raw.get("resource_group", ""),
        access_entries=tuple(str(arn) for arn in raw.get("access_entries") or ()),
        entra=bool(raw.get("entra", True)),
        bucket=raw.get("bucket", ""),
    )


def _clouds(raw: dict[str, Any] | None, base_dir: Path) -> CloudsConfig:
    raw = raw or {}
    scenario = raw.get("scenario")
    return CloudsConfig(
        aws_port=int(raw.get("aws_port", 0)),
        gcp_port=int(raw.get("gcp_port", 0)),
        azure_port=int(raw.get("azure_port", 0)),
        scenario=base_dir / scenario if scenario else None,
    )


def _auth(raw: dict[str, Any] | None) -> AuthConfig:
    raw = raw or {}
    return AuthConfig(
        token_lifetime_seconds=float(raw.get("token_lifetime_seconds", 900)),
        aws_identities={str(k): str(v) for k, v in (raw.get("aws_identities") or {}).items()},
    )


def parse(raw: dict[str, Any], base_dir: Path) -> EmulatorConfig:
    """Build the config from parsed YAML; relative directories are relative to the config file."""
    os.environ.setdefault(PYTHON_VARIABLE, sys.executable)
    os.environ.setdefault(PROJECT_VARIABLE, str(project_dir()))
    clusters = [
        ClusterSpec(name=c["name"], nodes=[_node(n) for n in c.get("nodes") or []], cloud=_identity(c.get("cloud")))
        for c in raw.get("clusters") or []
    ]
    runtimes = [
        Runtime(
            image_prefix=r["image_prefix"],
            commands=_expand(r.get("commands") or {}),
            entrypoint=[os.path.expandvars(part) for part in r.get("entrypoint") or []],
            env=_expand(r.get("env") or {}),
        )
        for r in raw.get("runtimes") or []
    ]
    return EmulatorConfig(
        clusters=clusters,
        runtimes=runtimes,
        kubeconfig_dir=base_dir / raw.get("kubeconfig_dir", ".emulator/kubeconfigs"),
        work_dir=base_dir / raw.get("work_dir", ".emulator/pods"),
        state_dir=base_dir / raw.get("state_dir", ".emulator"),
        clouds=_clouds(raw.get("clouds"), base_dir),
        images=[
            ImageSize(r["image_prefix"], quantity_bytes(str(r["size"])), r.get("source", ""))
            for r in raw.get("images") or []
        ],
        device_plugins=[
            DevicePlugin(r["image_prefix"], r["resource"], r.get("source", "")) for r in raw.get("device_plugins") or []
        ],
        auth=_auth(raw.get("auth")),
        object_stores=stores.parse(raw.get("object_stores")),
        worker_paths=tuple((base_dir / path).resolve() for path in raw.get("worker_paths") or []),
    )


def load(path: Path) -> EmulatorConfig:
    return parse(yaml.safe_load(path.read_text()) or {}, path.resolve().parent)
