"""The training pod, as KubernetesPodOperator's ``pod_template_dict``.

KPO merges its own fields into this template and looks for the container named ``base``; everything that
depends on the pool (selector, tolerations, accelerator limits) comes from a ``Placement``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gpuflow.core.errors import RequestError
from gpuflow.core.torchrun import one_node_env, torchrun_command
from gpuflow.kube.objects import SecretKeyRef, dns1123_label, dns1123_subdomain, env_list, metadata, shm_volume
from gpuflow.kube.placement import Placement

KPO_CONTAINER = "base"
OUTPUT_URI_ENV = "OUTPUT_URI"


def one_node_training_pod(
    *, placement: Placement, command: Sequence[str], env: Mapping[str, str], **fields: Any
) -> dict[str, Any]:
    """The training pod of a one-node pool: under torchrun, one process per accelerator, when the node holds more
    than one (a plain start would use one and pay for all); else the command as it is."""
    if placement.accelerator_count > 1:
        command, env = torchrun_command(command), {**env, **one_node_env(placement.accelerator_count)}
    return training_pod(placement=placement, command=command, env=env, **fields)


def training_pod(
    *,
    name: str,
    namespace: str,
    image: str,
    placement: Placement,
    labels: Mapping[str, str],
    output_uri: str,
    command: Sequence[str] = (),
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    secret_env: Mapping[str, SecretKeyRef] | None = None,
) -> dict[str, Any]:
    """A v1 Pod that runs ``command``/``args`` in ``image`` once on the pool, writing its model to ``output_uri``.

    ``secret_env`` maps variable names to Secret keys: credentials are referenced, never copied in.
    """
    if not image:
        raise RequestError("image", image, "a container image reference, e.g. ghcr.io/org/train:1.0")
    if not output_uri:
        raise RequestError("output_uri", output_uri, "where the training writes its model, e.g. s3://bucket/run")
    container: dict[str, Any] = {
        "name": KPO_CONTAINER,
        "image": image,
        "env": env_list({**(env or {}), OUTPUT_URI_ENV: output_uri}, secret_env or {}),
        "resources": placement.resources,
    }
    if command:
        container["command"] = list(command)
    if args:
        container["args"] = list(args)
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container], **placement.pod_spec_fields()}
    if placement.accelerator_count > 1:
        volume, mount = shm_volume()
        spec["volumes"] = [volume]
        container["volumeMounts"] = [mount]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata(dns1123_subdomain("name", name), dns1123_label("namespace", namespace), labels),
        "spec": spec,
    }
