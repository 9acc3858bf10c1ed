"""DaemonSets, and accelerators a node advertises only while their device plugin runs there (as on EKS AL2023
and Neuron AMIs and on AKS), or at once where the node image ships the plugin (EKS Bottlerocket NVIDIA, GKE)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from conftest import kube
from google.cloud import container_v1
from gpuflow_emulator.clouds import clients
from gpuflow_emulator.testing import DEFAULT_CONFIG, EmulatorProcess, eventually
from kubernetes.client import AppsV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.timeout(90)

NVIDIA_PLUGIN = "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
SPOT_TAINT = {"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"}
TOLERATE_GPU = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def plugin_daemonset(tolerations: list[dict[str, str]], node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "tolerations": tolerations,
        "containers": [{"name": "nvidia-device-plugin-ctr", "image": NVIDIA_PLUGIN}],
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "nvidia-device-plugin-daemonset", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"name": "nvidia-device-plugin-ds"}},
            "template": {"metadata": {"labels": {"name": "nvidia-device-plugin-ds"}}, "spec": spec},
        },
    }


def plugin_pods(core: CoreV1Api) -> dict[str, str]:
    """node -> phase of each live plugin pod."""
    pods = core.list_namespaced_pod("kube-system", label_selector="name=nvidia-device-plugin-ds").items
    return {p.spec.node_name: p.status.phase for p in pods if p.metadata.deletion_timestamp is None}


def gpus(core: CoreV1Api, node: str) -> str | None:
    allocatable: dict[str, str] = core.read_node(node).status.allocatable
    return allocatable.get("nvidia.com/gpu")


@pytest.fixture
def plugged(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """Cluster `test` with a CPU node and the default config's device plugin table."""
    table = yaml.safe_load(DEFAULT_CONFIG.read_text())["device_plugins"]
    with EmulatorProcess.start(tmp_path / "emulator", nodes=[{"name": "cpu-0"}], extra={"device_plugins": table}) as e:
        yield e


def clients_of(emulator: EmulatorProcess) -> tuple[CoreV1Api, AppsV1Api]:
    api = kubernetes.config.new_client_from_config(config_file=str(emulator.kubeconfig()))
    return CoreV1Api(api), AppsV1Api(api)


def test_daemonset_runs_one_pod_on_each_node_it_selects_and_tolerates(plugged: EmulatorProcess) -> None:
    core, apps = clients_of(plugged)
    plugged.add_node("gpu-0", labels={"accelerator": "nvidia"}, taints=[GPU_TAINT])
    plugged.add_node("gpu-spot", labels={"accelerator": "nvidia"}, taints=[GPU_TAINT, SPOT_TAINT])
    plugged.add_node("gpu-other", labels={"accelerator": "amd"}, taints=[GPU_TAINT])
    apps.create_namespaced_daemon_set("kube-system", plugin_daemonset([TOLERATE_GPU], {"accelerator": "nvidia"}))

    eventually(lambda: plugin_pods(core) == {"gpu-0": "Running"}, what="one plugin pod, on gpu-0 only")
    read = apps.read_namespaced_daemon_set("nvidia-device-plugin-daemonset", "kube-system")
    assert read.spec.update_strategy.type == "RollingUpdate"
    assert [d.metadata.name for d in apps.list_namespaced_daemon_set("kube-system").items] == [read.metadata.name]
    eventually(
        lambda: (
            apps.read_namespaced_daemon_set_status("nvidia-device-plugin-daemonset", "kube-system").status.number_ready
            == 1
        ),
        what="the DaemonSet to count its ready pod",
    )
    status = apps.read_namespaced_daemon_set("nvidia-device-plugin-daemonset", "kube-system").status
    assert (status.desired_number_scheduled, status.current_number_scheduled) == (1, 1)

    plugged.add_node("gpu-1", labels={"accelerator": "nvidia"}, taints=[GPU_TAINT])
    eventually(lambda: set(plugin_pods(core)) == {"gpu-0", "gpu-1"}, what="a pod on the node that joined")
    plugged.remove_node("gpu-0")
    eventually(lambda: set(plugin_pods(core)) == {"gpu-1"}, what="the lost node's pod to go")

    apps.delete_namespaced_daemon_set("nvidia-device-plugin-daemonset", "kube-system")
    eventually(lambda: plugin_pods(core) == {}, what="the DaemonSet's pods to be deleted with it")
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_daemon_set("nvidia-device-plugin-daemonset", "kube-system")
    assert gone.value.status == 404


def test_daemonset_whose_template_selects_nothing_is_refused(plugged: EmulatorProcess) -> None:
    _, apps = clients_of(plugged)
    bad = plugin_daemonset([TOLERATE_GPU])
    bad["spec"]["selector"] = {"matchLabels": {"name": "other"}}
    with pytest.raises(ApiException) as refused:
        apps.create_namespaced_daemon_set("kube-system", bad)
    assert refused.value.status == 422
    assert "spec.template.metadata.labels" in str(refused.value.body)


def test_node_advertises_its_gpus_only_while_a_plugin_pod_runs_ready_on_it(plugged: EmulatorProcess) -> None:
    core, apps = clients_of(plugged)
    plugged.add_node("gpu-0", taints=[GPU_TAINT], devices={"nvidia.com/gpu": "2"})
    node = core.read_node("gpu-0")
    assert "nvidia.com/gpu" not in node.status.allocatable
    assert [(c.type, c.status) for c in node.status.conditions] == [("Ready", "True")]

    apps.create_namespaced_daemon_set("kube-system", plugin_daemonset([]))  # tolerates nothing: no pod there
    eventually(lambda: plugin_pods(core) == {"cpu-0": "Running"}, what="the plugin on the untainted node only")
    assert gpus(core, "gpu-0") is None

    apps.replace_namespaced_daemon_set(
        "nvidia-device-plugin-daemonset", "kube-system", plugin_daemonset([TOLERATE_GPU])
    )
    eventually(lambda: gpus(core, "gpu-0") == "2", what="gpu-0 to advertise its GPUs once its plugin runs")
    assert "nvidia.com/gpu" not in core.read_node("cpu-0").status.allocatable  # a plugin adds no hardware

    apps.delete_namespaced_daemon_set("nvidia-device-plugin-daemonset", "kube-system")
    eventually(lambda: gpus(core, "gpu-0") == "0", what="allocatable to drop when the plugin goes")
    assert core.read_node("gpu-0").status.capacity["nvidia.com/gpu"] == "2"


# ---- the clouds: which node images ship the plugin ----


def eks_group(clouds: EmulatorProcess, name: str, **extra: Any) -> str:
    client = clients.eks(clouds.clouds()["aws"], "us-east-1", 1)
    client.create_nodegroup(
        clusterName="gpuflow-use1",
        nodegroupName=name,
        scalingConfig={"minSize": 0, "maxSize": 1, "desiredSize": 1},
        subnets=["subnet-0a11"],
        instanceTypes=["g6.xlarge"],
        nodeRole="arn:aws:iam::123456789012:role/gpuflow-eks-node",
        taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}],
        **extra,
    )
    return name


def pool_node(core: CoreV1Api, label: str, pool: str) -> Any:
    def probe() -> Any:
        nodes = [n for n in core.list_node().items if n.metadata.labels.get(label) == pool]
        return nodes[0] if nodes else None

    return eventually(probe, timeout=15, what=f"a node of pool {pool}")


@pytest.mark.parametrize(
    ("ami_type", "advertised"),
    [({}, None), ({"amiType": "AL2023_x86_64_NVIDIA"}, None), ({"amiType": "BOTTLEROCKET_x86_64_NVIDIA"}, "1")],
    ids=["default-al2023", "al2023-nvidia", "bottlerocket-nvidia"],
)
def test_eks_nodes_advertise_gpus_at_once_only_from_bottlerocket_nvidia(
    clouds: EmulatorProcess, ami_type: dict[str, str], advertised: str | None
) -> None:
    name = eks_group(clouds, f"ami{len(ami_type)}{advertised or 0}", **ami_type)
    core = kube(clouds, "gpuflow-use1")
    node = pool_node(core, "eks.amazonaws.com/nodegroup", name)
    assert node.status.allocatable.get("nvidia.com/gpu") == advertised


def test_aks_gpu_nodes_advertise_only_once_a_plugin_tolerating_their_taints_runs(clouds: EmulatorProcess) -> None:
    aks = clients.aks(clouds.clouds()["azure"], clouds.clouds()["azure_ca"])
    body: Any = {
        "properties": {
            "count": 1,
            "vmSize": "Standard_NC4as_T4_v3",
            "mode": "User",
            "nodeTaints": ["nvidia.com/gpu=present:NoSchedule"],
            "scaleSetPriority": "Spot",
            "scaleSetEvictionPolicy": "Delete",
            "spotMaxPrice": -1,
        }
    }
    aks.agent_pools.begin_create_or_update("gpuflow", "gpuflow-eastus", "plugged", body).result()
    core = kube(clouds, "gpuflow-eastus")
    node = pool_node(core, "kubernetes.azure.com/agentpool", "plugged").metadata.name
    assert gpus(core, node) is None
    apps = AppsV1Api(core.api_client)
    # AKS's sample manifest tolerates only sku=gpu: nothing lands on our taint or the spot taint.
    sku_only = [{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    apps.create_namespaced_daemon_set("kube-system", plugin_daemonset(sku_only))
    eventually(
        lambda: (
            apps.read_namespaced_daemon_set("nvidia-device-plugin-daemonset", "kube-system").status.observed_generation
        ),
        what="the DaemonSet controller to see the DaemonSet",
    )
    assert node not in plugin_pods(core)
    assert gpus(core, node) is None
    spot = {
        "key": "kubernetes.azure.com/scalesetpriority",
        "operator": "Equal",
        "value": "spot",
        "effect": "NoSchedule",
    }
    apps.replace_namespaced_daemon_set(
        "nvidia-device-plugin-daemonset", "kube-system", plugin_daemonset([TOLERATE_GPU, spot])
    )
    eventually(lambda: gpus(core, node) == "1", what="the AKS node to advertise its GPU")
    apps.delete_namespaced_daemon_set("nvidia-device-plugin-daemonset", "kube-system")


def test_gke_gpu_nodes_advertise_at_once(clouds: EmulatorProcess) -> None:
    parent = "projects/gpuflow-demo/locations/us-central1/clusters/gpuflow-usc1"
    pool = container_v1.NodePool(
        name="shipped",
        initial_node_count=1,
        locations=["us-central1-a"],
        config=container_v1.NodeConfig(machine_type="g2-standard-4"),
    )
    clients.gke(clouds.clouds()["gcp"]).create_node_pool(parent=parent, node_pool=pool)
    core = kube(clouds, "gpuflow-usc1")
    node = pool_node(core, "cloud.google.com/gke-nodepool", "shipped")
    assert node.status.allocatable["nvidia.com/gpu"] == "1"
