"""The vLLM endpoint: an optional Secret (Hugging Face token), a Deployment and a ClusterIP Service.

Choices that matter on GPUs:
- ``Recreate``, not a rolling update: the pool holds exactly the accelerators one replica needs, so a surge
  pod would wait forever for GPUs the old pod still holds.
- A startup probe with a long budget: loading weights takes minutes, and liveness must not kill the server
  meanwhile. Readiness then watches ``/v1/models`` (the model is being served), liveness ``/health``.
- A named endpoint (``front``) is a stable Service in front of revisions: each revision is its own Deployment and
  Service (for the promotion gate to test it alone), and the front Service selects the live one by its revision
  label, so switching revisions is one change of a selector (``front_service_manifest``).
- Weights given as an object-storage URI (s3://, gs://, az://: ``gpuflow.core.storage``) are copied into the
  cache volume by an init container before vLLM starts, so vLLM only ever reads a local directory.
- LoRA adapters given as an object-storage folder (``adapters_uri``) are copied into ``/models/adapters`` by a
  sidecar, again and again, so an adapter published after the pod started can be loaded at run time
  (``/v1/load_lora_adapter``) from ``/models/adapters/<its path under adapters_uri>``, without a restart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gpuflow.core import naming
from gpuflow.core.clouds import CLOUD_TRAITS
from gpuflow.core.errors import RequestError
from gpuflow.core.storage import downloadable, servable_shapes
from gpuflow.core.vllm_options import VllmOptions
from gpuflow.kube.objects import (
    SecretKeyRef,
    dns1035_label,
    dns1123_label,
    env_list,
    metadata,
    shm_volume,
)
from gpuflow.kube.placement import Placement
from gpuflow.serving.vllm_args import PORT, vllm_args, vllm_env

CONTAINER = "vllm"
PORT_NAME = "http"
CACHE_VOLUME = "model-cache"
CACHE_DIR = "/models"
WEIGHTS_DIR = f"{CACHE_DIR}/weights"  # where a URI's weights are copied
ADAPTERS_DIR = f"{CACHE_DIR}/adapters"  # where the sidecar mirrors ``adapters_uri``
ADAPTER_SYNC = "sync-adapters"
DOWNLOAD_CONTAINER = "download-model"
HF_TOKEN_KEY = "token"
RCLONE_IMAGE = "rclone/rclone:1.68.2"
# Credentials come from the pod's workload identity (env auth) on every cloud.
_RCLONE_ENV = {key: value for facts in CLOUD_TRAITS.values() for key, value in facts.rclone_env.items()}


@dataclass(frozen=True, slots=True)
class ModelDownloader:
    """The init container that fills ``MODEL_DIR`` from ``MODEL_URI`` (both in its env; Kubernetes expands
    ``$(MODEL_URI)`` and ``$(MODEL_DIR)`` in ``command``)."""

    image: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProbeTiming:
    """Probe periods; ``startup_budget_s`` is how long the model may take to load before the pod restarts."""

    startup_period_s: int = 10
    startup_budget_s: int = 1800
    readiness_period_s: int = 5
    liveness_period_s: int = 10
    liveness_failure_threshold: int = 3


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One vLLM endpoint. ``image`` must be pinned by the caller (e.g. ``vllm/vllm-openai:v0.11.0``);
    ``command`` empty keeps the image's entrypoint. ``cache_claim`` names a PersistentVolumeClaim for the
    model cache, otherwise an emptyDir (``cache_size_limit``, e.g. "100Gi") is used. ``replicas``: one per node of
    the pool, each holding all of its node's accelerators (tensor parallel), so a multi-node pool serves on every
    node, behind the one Service. ``front``: the named endpoint this is a revision of (its pods carry the revision
    label the front Service selects), or empty for a run's own endpoint."""

    name: str
    namespace: str
    image: str
    options: VllmOptions
    placement: Placement
    labels: Mapping[str, str]
    command: tuple[str, ...] = ()
    downloader: ModelDownloader | None = None
    cache_claim: str | None = None
    cache_size_limit: str | None = None
    probes: ProbeTiming = field(default_factory=ProbeTiming)
    region: str = ""  # the cluster's region, where its bucket is (S3 signs requests for it)
    replicas: int = 1
    front: str = ""
    adapters_uri: str | None = None  # an object-storage folder of LoRA adapters the sidecar mirrors (needs LoRA on)
    adapter_sync_period_s: int = 15

    def __post_init__(self) -> None:
        dns1035_label("name", self.name)
        if self.front:
            dns1035_label("endpoint_name", self.front)
        if self.replicas < 1:
            raise RequestError("nodes", self.replicas, "at least 1: one endpoint replica runs on each node")
        dns1123_label("namespace", self.namespace)
        if not self.image:
            raise RequestError("image", self.image, "a pinned vLLM image, e.g. vllm/vllm-openai:v0.11.0")
        if self.options.tensor_parallel_size != self.placement.accelerator_count:
            raise RequestError(
                "tensor_parallel_size",
                self.options.tensor_parallel_size,
                f"the accelerators per node of the pool ({self.placement.accelerator_count})",
            )
        if self.cache_claim is not None:
            dns1123_label("cache_claim", self.cache_claim)
        if self.adapters_uri is not None:
            _check_adapters(self)

    @property
    def model_uri(self) -> str | None:
        """The object-storage URI the weights come from, or None for a Hugging Face id or a path."""
        return self.options.model if downloadable(self.options.model) else None

    @property
    def selector(self) -> dict[str, str]:
        if self.front:
            return {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": self.front, **self.revision}
        return {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": self.name}

    @property
    def revision(self) -> dict[str, str]:
        """The label of this revision's pods (a named endpoint's); the revision is the Deployment's name."""
        return {naming.REVISION_LABEL: self.name} if self.front else {}

    @property
    def all_labels(self) -> dict[str, str]:
        return {**self.labels, **self.selector}

    @property
    def secret_name(self) -> str:
        return f"{self.name}-hf-token"


@dataclass(frozen=True, slots=True)
class ServedFacts:
    """What a running endpoint's Deployment says it serves: the URI its weights came from, and where it loads LoRA
    adapters from and up to which rank (None: started without LoRA)."""

    model_uri: str | None
    adapters_uri: str | None
    max_lora_rank: int | None


def served_facts(deployment: Mapping[str, Any]) -> ServedFacts:
    """Read ``ServedFacts`` back from a Deployment ``deployment_manifest`` made (as the API returns it)."""
    pod = deployment["spec"]["template"]["spec"]

    def env_of(containers: list[dict[str, Any]], name: str, key: str) -> str | None:
        env = next((c.get("env") or [] for c in containers if c["name"] == name), [])
        return next((e.get("value") for e in env if e["name"] == key), None)

    containers = pod["containers"]
    args = next((c.get("args") or [] for c in containers if c["name"] == CONTAINER), [])
    rank = args[args.index("--max-lora-rank") + 1] if "--enable-lora" in args and "--max-lora-rank" in args else None
    return ServedFacts(
        model_uri=env_of(pod.get("initContainers") or [], DOWNLOAD_CONTAINER, "MODEL_URI"),
        adapters_uri=env_of(containers, ADAPTER_SYNC, "ADAPTERS_URI"),
        max_lora_rank=int(rank) if rank is not None else None,
    )


def _check_adapters(spec: EndpointSpec) -> None:
    if not spec.options.enable_lora:
        raise RequestError("adapters_uri", spec.adapters_uri, "None, or enable_lora=True so vLLM can load them")
    _rclone_source(spec.adapters_uri or "", spec.region, "adapters_uri")
    if isinstance(spec.adapter_sync_period_s, bool) or not (
        isinstance(spec.adapter_sync_period_s, int) and spec.adapter_sync_period_s >= 1
    ):
        raise RequestError("adapter_sync_period_s", spec.adapter_sync_period_s, "whole seconds between copies, >= 1")


def _rclone_source(uri: str, region: str, field_name: str) -> tuple[str, ...]:
    """rclone's flags and source for ``uri``, through the remote its object store names (rclone's on-the-fly
    remotes); ``region`` is the bucket's (the cluster's), which S3 requests must be signed for."""
    parts, store = urlsplit(uri), downloadable(uri)
    if store is None or store.rclone_remote is None or not parts.netloc:
        raise RequestError(field_name, uri, servable_shapes())
    remote = store.rclone_remote
    if parts.scheme == "az":
        return ("--azureblob-account", parts.netloc, f"{remote}{parts.path.lstrip('/')}")
    flags = ("--s3-region", region) if parts.scheme == "s3" and region else ()
    return (*flags, f"{remote}{parts.netloc}{parts.path}")


def rclone_downloader(uri: str, region: str = "") -> ModelDownloader:
    """Copy ``uri`` with rclone (see ``_rclone_source``)."""
    return ModelDownloader(
        RCLONE_IMAGE, ("rclone", "copy", *_rclone_source(uri, region, "model"), "$(MODEL_DIR)"), _RCLONE_ENV
    )


def endpoint_manifests(spec: EndpointSpec, hf_token: str | None = None) -> list[dict[str, Any]]:
    """Every object of the endpoint, in the order to apply them (the Secret before the pods that read it)."""
    secret = [secret_manifest(spec, hf_token)] if hf_token else []
    return [*secret, deployment_manifest(spec, with_hf_token=bool(hf_token)), service_manifest(spec)]


def secret_manifest(spec: EndpointSpec, hf_token: str) -> dict[str, Any]:
    """The token as run-time data: callers pass it in from a connection and must not log the result."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(spec.secret_name, spec.namespace, spec.all_labels),
        "type": "Opaque",
        "stringData": {HF_TOKEN_KEY: hf_token},
    }


def service_manifest(spec: EndpointSpec) -> dict[str, Any]:
    """The endpoint's Service (a named endpoint's revision's own: the gate tests the revision through it)."""
    return _service(spec.name, spec, spec.all_labels)


def front_service_manifest(spec: EndpointSpec) -> dict[str, Any]:
    """The named endpoint's stable Service, sending its traffic to ``spec``'s revision; labelled with the endpoint
    (the janitor keeps the revision it selects) and with ``spec``'s run, whose teardown keeps it."""
    if not spec.front:
        raise ValueError(f"{spec.name} is not a revision of a named endpoint")
    return _service(spec.front, spec, {**spec.labels, naming.ENDPOINT_LABEL: spec.front})


def _service(name: str, spec: EndpointSpec, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, spec.namespace, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": spec.selector,
            "ports": [{"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def deployment_manifest(spec: EndpointSpec, *, with_hf_token: bool) -> dict[str, Any]:
    cache_volume: dict[str, Any] = {"name": CACHE_VOLUME}
    if spec.cache_claim:
        cache_volume["persistentVolumeClaim"] = {"claimName": spec.cache_claim}
    else:
        cache_volume["emptyDir"] = {"sizeLimit": spec.cache_size_limit} if spec.cache_size_limit else {}
    cache_mount = {"name": CACHE_VOLUME, "mountPath": CACHE_DIR}
    volumes, mounts = [cache_volume], [cache_mount]
    if spec.options.tensor_parallel_size > 1:
        shm, shm_mount = shm_volume()
        volumes.append(shm)
        mounts.append(shm_mount)
    sidecars = [_adapter_sync_container(spec, spec.adapters_uri, cache_mount)] if spec.adapters_uri else []
    pod_spec: dict[str, Any] = {
        "containers": [_vllm_container(spec, mounts, with_hf_token), *sidecars],
        "volumes": volumes,
        **spec.placement.pod_spec_fields(),
    }
    if spec.model_uri:
        pod_spec["initContainers"] = [_download_container(spec, spec.model_uri, cache_mount)]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(spec.name, spec.namespace, spec.all_labels),
        "spec": {
            "replicas": spec.replicas,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": spec.selector},
            "template": {"metadata": {"labels": spec.all_labels}, "spec": pod_spec},
        },
    }


def _vllm_container(spec: EndpointSpec, mounts: list[dict[str, Any]], with_hf_token: bool) -> dict[str, Any]:
    secrets = {"HF_TOKEN": SecretKeyRef(spec.secret_name, HF_TOKEN_KEY)} if with_hf_token else {}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "args": vllm_args(spec.options, model_path=WEIGHTS_DIR if spec.model_uri else None),
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "env": env_list({"HF_HOME": f"{CACHE_DIR}/huggingface", **vllm_env(spec.options)}, secrets),
        "resources": spec.placement.resources,
        "volumeMounts": mounts,
        **_probes(spec.probes),
    }
    if spec.command:
        container["command"] = list(spec.command)
    return container


def _http_get(path: str) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": PORT_NAME}}


def _probes(timing: ProbeTiming) -> dict[str, Any]:
    return {
        "startupProbe": {
            **_http_get("/v1/models"),
            "periodSeconds": timing.startup_period_s,
            "failureThreshold": math.ceil(timing.startup_budget_s / timing.startup_period_s),
        },
        "readinessProbe": {**_http_get("/v1/models"), "periodSeconds": timing.readiness_period_s},
        "livenessProbe": {
            **_http_get("/health"),
            "periodSeconds": timing.liveness_period_s,
            "failureThreshold": timing.liveness_failure_threshold,
        },
    }


def _download_container(spec: EndpointSpec, uri: str, mount: dict[str, Any]) -> dict[str, Any]:
    downloader = spec.downloader or rclone_downloader(uri, spec.region)
    return {
        "name": DOWNLOAD_CONTAINER,
        "image": downloader.image,
        "command": list(downloader.command),
        "env": env_list({**downloader.env, "MODEL_URI": uri, "MODEL_DIR": WEIGHTS_DIR}, {}),
        "volumeMounts": [mount],
    }


def _adapter_sync_container(spec: EndpointSpec, uri: str, mount: dict[str, Any]) -> dict[str, Any]:
    """Mirror ``uri`` into ``ADAPTERS_DIR`` every ``adapter_sync_period_s``: a loop in the image's shell (the
    rclone image is Alpine's, with busybox ``sh``), the rclone command as the script's arguments so nothing is
    quoted. One file at a time, in descending name order, so ``adapter_model.safetensors`` is whole before
    ``adapter_config.json`` appears: vLLM reads the config first and answers 404 until it exists. The shell is
    PID 1, which ignores SIGTERM unless it traps it: without the trap every rollout would wait out the grace period."""
    copy = ("rclone", "copy", "--transfers", "1", "--order-by", "name,descending")
    period = spec.adapter_sync_period_s
    loop = f"while true; do \"$@\" || echo 'adapter sync failed, retrying'; sleep {period} & wait $!; done"
    script = f"trap 'exit 0' TERM; {loop}"
    source = _rclone_source(uri, spec.region, "adapters_uri")
    return {
        "name": ADAPTER_SYNC,
        "image": RCLONE_IMAGE,
        "command": ["sh", "-c", script, ADAPTER_SYNC, *copy, *source, ADAPTERS_DIR],
        "env": env_list({**_RCLONE_ENV, "ADAPTERS_URI": uri}, {}),
        "volumeMounts": [mount],
    }
