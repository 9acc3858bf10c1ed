"""Talk to a cluster's Kubernetes API: apply manifests, install add-ons, read a Deployment and a pool's nodes,
delete what a run labelled.

The only module of ``gpuflow.kube`` that performs I/O; the others build manifests. The kubernetes client is
imported lazily (it takes seconds) and built from a kubeconfig dict, as the cloud backends return it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gpuflow.core.nodepool import NodeReport

# The kind of every object a run may leave behind, in deletion order.
# A multi-node training's Job comes first: its pods are owned by it and go with it.
RUN_OBJECT_KINDS = ("Job", "Deployment", "Service", "Secret", "Pod")
# The kinds an endpoint is made of (its pods belong to its Deployment).
ENDPOINT_KINDS = ("Deployment", "Service", "Secret")


def api_client(kube_config: Mapping[str, Any]) -> Any:
    from kubernetes import config

    return config.new_client_from_config_dict(dict(kube_config))


def _ref(manifest: Mapping[str, Any]) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def _created(client: Any, manifest: Mapping[str, Any]) -> bool:
    """Create the object; False when one of that name already exists."""
    from kubernetes import utils
    from kubernetes.client.exceptions import ApiException

    try:
        utils.create_from_dict(client, dict(manifest))
    except utils.FailToCreateError as exc:
        if not all(isinstance(e, ApiException) and e.status == 409 for e in exc.api_exceptions):
            raise
        return False
    return True


def apply(client: Any, manifests: Iterable[Mapping[str, Any]]) -> list[str]:
    """Create each object, or replace it when it exists (a retried deploy converges, never duplicates)."""
    applied = []
    for manifest in manifests:
        if not _created(client, manifest):
            _replace(client, manifest)
        applied.append(_ref(manifest))
    return applied


def ensure(client: Any, manifests: Iterable[Mapping[str, Any]]) -> list[str]:
    """Create each object that is missing and leave those that exist as they are (a shared add-on whose owner
    may have installed their own version); returns the objects created."""
    return [_ref(manifest) for manifest in manifests if _created(client, manifest)]


def pool_nodes(client: Any, pool_label: str, pool: str, resource: str) -> list[NodeReport]:
    """The nodes of pool ``pool`` (``pool_label=pool``): Ready or not, cordoned or not, and how many ``resource``
    each advertises."""
    from kubernetes import client as k8s

    return [
        _report(node, resource) for node in k8s.CoreV1Api(client).list_node(label_selector=f"{pool_label}={pool}").items
    ]


@dataclass(frozen=True, slots=True)
class NodeSeen:
    """A node as it is now (its report and when its Node object was created), or ``report`` None: gone."""

    report: NodeReport | None
    created_at: datetime | None


def pod_placement(client: Any, namespace: str, pod: str) -> tuple[str, datetime] | None:
    """The node pod ``pod`` was bound to and when, from the scheduler's ``Scheduled`` event, which outlives the pod
    (an evicted pod is deleted; its events stay for an hour)."""
    return next(((node, at) for name, node, at in _scheduled(client, namespace) if name == pod), None)


def scheduled_pods(client: Any, namespace: str, prefix: str, since: datetime | None) -> list[str]:
    """The pods named ``prefix...`` that the scheduler placed at or after ``since``, deleted ones included (their
    ``Scheduled`` events outlive them)."""
    return [
        name
        for name, _, at in _scheduled(client, namespace)
        if name.startswith(prefix) and (since is None or at is None or at >= since)
    ]


def _scheduled(client: Any, namespace: str) -> Iterator[tuple[str, str, Any]]:
    """(pod, node, when) of each ``Scheduled`` event in the namespace."""
    from kubernetes import client as k8s

    for event in k8s.CoreV1Api(client).list_namespaced_event(namespace).items:
        involved = event.involved_object
        if event.reason == "Scheduled" and involved.kind == "Pod" and " to " in event.message:
            at = event.last_timestamp or event.first_timestamp or event.metadata.creation_timestamp
            yield involved.name, event.message.rsplit(" to ", 1)[1].strip(), at


def node_now(client: Any, name: str, resource: str) -> NodeSeen:
    """Node ``name`` as it is now; a node that is gone reads as ``NodeSeen(None, None)``."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    try:
        node = k8s.CoreV1Api(client).read_node(name)
    except ApiException as exc:
        if exc.status == 404:
            return NodeSeen(None, None)
        raise
    return NodeSeen(_report(node, resource), node.metadata.creation_timestamp)


def _report(node: Any, resource: str) -> NodeReport:
    return NodeReport(
        name=node.metadata.name,
        ready=any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or [])),
        allocatable=int((node.status.allocatable or {}).get(resource, "0")),
        unschedulable=bool(node.spec.unschedulable) if node.spec else False,
    )


def _replace(client: Any, manifest: Mapping[str, Any]) -> None:
    from kubernetes import client as k8s

    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    kind = manifest["kind"]
    if kind == "Deployment":
        k8s.AppsV1Api(client).replace_namespaced_deployment(name, namespace, manifest)
    elif kind == "Service":
        current = k8s.CoreV1Api(client).read_namespaced_service(name, namespace)
        body = {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": current.metadata.resource_version}}
        k8s.CoreV1Api(client).replace_namespaced_service(name, namespace, body)
    elif kind == "Secret":
        k8s.CoreV1Api(client).replace_namespaced_secret(name, namespace, manifest)
    else:
        raise ValueError(f"cannot replace a {kind}")


def _read(read: Callable[[str, str], Any], name: str, namespace: str) -> Any:
    """The object ``read`` returns, or None when it does not exist."""
    from kubernetes.client.exceptions import ApiException

    try:
        return read(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def deployment_status(client: Any, namespace: str, name: str) -> dict[str, Any] | None:
    """The Deployment's ``status`` as a dict, or None when it does not exist."""
    from kubernetes import client as k8s

    deployment = _read(k8s.AppsV1Api(client).read_namespaced_deployment, name, namespace)
    if deployment is None:
        return None
    status: dict[str, Any] = client.sanitize_for_serialization(deployment.status) or {}
    return status


@dataclass(frozen=True, slots=True)
class KubeObject:
    """One labelled object of a run, as the teardown and the janitor need to judge it.

    ``owned``: a controller (the Deployment) owns it and deletes it with itself, so it is not judged alone.
    ``deleting``: deletion has started (a terminating pod); it is on its way out.
    """

    kind: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    owned: bool = False
    deleting: bool = False

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


def _per_kind(client: Any, verb: str) -> dict[str, Callable[..., Any]]:
    """The typed client's ``<verb>_namespaced_<kind>`` method for each kind of run object."""
    from kubernetes import client as k8s

    core, apps, batch = k8s.CoreV1Api(client), k8s.AppsV1Api(client), k8s.BatchV1Api(client)
    api_of = {"Job": batch, "Deployment": apps, "Service": core, "Secret": core, "Pod": core}
    return {kind: getattr(api, f"{verb}_namespaced_{kind.lower()}") for kind, api in api_of.items()}


def labelled_objects(client: Any, namespace: str, selector: str) -> list[KubeObject]:
    """Every run object (``RUN_OBJECT_KINDS``) carrying the label selector, in deletion order."""
    listings = _per_kind(client, "list")
    return [
        KubeObject(
            kind=kind,
            name=item.metadata.name,
            labels=dict(item.metadata.labels or {}),
            created_at=item.metadata.creation_timestamp,
            owned=any(ref.controller for ref in item.metadata.owner_references or []),
            deleting=item.metadata.deletion_timestamp is not None,
        )
        for kind in RUN_OBJECT_KINDS
        for item in listings[kind](namespace, label_selector=selector).items
    ]


def delete_objects(client: Any, namespace: str, objects: Iterable[KubeObject]) -> None:
    """Delete each object; one already gone counts as deleted."""
    from kubernetes.client.exceptions import ApiException

    deletions = _per_kind(client, "delete")
    for obj in objects:
        # batch/v1 orphans a Job's pods unless told otherwise; they must go with it.
        options = {"propagation_policy": "Background"} if obj.kind == "Job" else {}
        try:
            deletions[obj.kind](obj.name, namespace, **options)
        except ApiException as exc:
            if exc.status != 404:
                raise


def label_objects(client: Any, namespace: str, objects: Iterable[KubeObject], labels: Mapping[str, str]) -> None:
    """Add or update ``labels`` on each object's metadata (a merge patch: a Deployment's pods do not roll)."""
    patches = _per_kind(client, "patch")
    body = {"metadata": {"labels": dict(labels)}}
    for obj in objects:
        patches[obj.kind](obj.name, namespace, body)


def crash_report(client: Any, namespace: str, selector: str, *, restarts: int = 3, tail_lines: int = 5) -> str | None:
    """Why the selected pods keep failing, once a container has restarted ``restarts`` times: its exit code
    and last log lines (a bad model path, an out-of-memory kill, a missing runtime); else None."""
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(client)
    for pod in core.list_namespaced_pod(namespace, label_selector=selector).items:
        for status in (pod.status.container_statuses or []) if pod.status else []:
            if status.restart_count < restarts:
                continue
            last = status.last_state.terminated if status.last_state else None
            code = last.exit_code if last else "?"
            log = core.read_namespaced_pod_log(
                pod.metadata.name,
                namespace,
                container=status.name,
                previous=False,
                tail_lines=tail_lines,
                _preload_content=False,
            ).data.decode(errors="replace")
            where = f"container {status.name} of {pod.metadata.name}"
            return f"{where} restarted {status.restart_count} times (exit {code}): {log.strip()}"
    return None


def read_service(client: Any, namespace: str, name: str) -> dict[str, Any] | None:
    """The Service's labels and selector, or None when it does not exist."""
    from kubernetes import client as k8s

    service = _read(k8s.CoreV1Api(client).read_namespaced_service, name, namespace)
    if service is None:
        return None
    return {"labels": dict(service.metadata.labels or {}), "selector": dict(service.spec.selector or {})}


def serving_pods(client: Any, namespace: str, selector: str) -> dict[str, tuple[str, int]]:
    """The selected pods that are not being deleted: name -> (uid, restarts of its containers); the same answer
    before and after some act means no pod was restarted or replaced meanwhile."""
    from kubernetes import client as k8s

    pods = k8s.CoreV1Api(client).list_namespaced_pod(namespace, label_selector=selector).items
    return {
        pod.metadata.name: (pod.metadata.uid, sum(s.restart_count for s in (pod.status.container_statuses or [])))
        for pod in pods
        if pod.metadata.deletion_timestamp is None
    }
