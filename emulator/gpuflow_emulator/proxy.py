"""The API server's service and pod proxies: forward an HTTP request to a ready pod's mapped local port.

`/api/v1/namespaces/NS/services/NAME[:PORT]/proxy/PATH` picks a ready pod matching the Service's
selector (round robin) and its targetPort; `/api/v1/namespaces/NS/pods/NAME[:PORT]/proxy/PATH`
goes to that pod. Responses are streamed, so server-sent events pass through as they are produced. A JSON body's
paths under the container's volumes are translated on the way (`PodWorker.translate_request`).
"""

from __future__ import annotations

import itertools

import aiohttp
from aiohttp import web

from gpuflow_emulator import errors
from gpuflow_emulator.cluster import Cluster
from gpuflow_emulator.conditions import condition_true
from gpuflow_emulator.resources import by_kind
from gpuflow_emulator.store import Obj

PODS, SERVICES = by_kind("Pod"), by_kind("Service")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "authorization",
}
_round_robin = itertools.count()


def _service_target(cluster: Cluster, namespace: str, name_port: str) -> tuple[int, str]:
    """(local port, pod name) of a ready endpoint of the service."""
    name, _, port = name_port.partition(":")
    service = cluster.store.get(SERVICES, namespace, name)
    ports = service["spec"].get("ports") or []
    chosen = next((p for p in ports if not port or port in (p.get("name"), str(p["port"]))), None)
    if chosen is None:
        raise errors.service_unavailable(f'no endpoints available for service "{name_port}"')
    selector = service["spec"].get("selector") or {}
    ready = [
        pod
        for pod in cluster.store.list(PODS, namespace)
        if selector
        and all(pod["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
        and condition_true(pod, "Ready")
        and "deletionTimestamp" not in pod["metadata"]
    ]
    targets = [(t, pod["metadata"]["name"]) for pod in ready if (t := _local_port(cluster, pod, chosen["targetPort"]))]
    if not targets:
        raise errors.service_unavailable(f'no endpoints available for service "{name}"')
    return targets[next(_round_robin) % len(targets)]


def _local_port(cluster: Cluster, pod: Obj, port: int | str | None) -> int | None:
    worker = cluster.kubelet.worker(pod["metadata"]["uid"])
    if worker is None:
        return None
    if port is None:
        declared = [p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports") or []]
        port = declared[0] if declared else None
    return worker.host_port(port) if port is not None else None


def _pod_target(cluster: Cluster, namespace: str, name_port: str) -> tuple[int, str]:
    name, _, port = name_port.partition(":")
    pod = cluster.store.get(PODS, namespace, name)
    local = _local_port(cluster, pod, (int(port) if port.isdigit() else port) if port else None)
    if local is None:
        raise errors.service_unavailable(f'pod "{name}" has no running container listening on port "{port}"')
    return local, name


async def forward(
    request: web.Request,
    session: aiohttp.ClientSession,
    cluster: Cluster,
    namespace: str,
    kind: str,
    name_port: str,
    tail: str,
) -> web.StreamResponse:
    """Proxy `request` to the service or pod `name_port`, at path `tail`."""
    target = _service_target if kind == "services" else _pod_target
    port, pod = target(cluster, namespace, name_port)
    url = f"http://127.0.0.1:{port}/{tail}"
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    body = await request.read()
    worker = cluster.kubelet.worker(cluster.store.get(PODS, namespace, pod)["metadata"]["uid"])
    if worker is not None:
        body = worker.translate_request(port, body)
    try:
        upstream_cm = session.request(request.method, url, params=request.rel_url.query, headers=headers, data=body)
        async with upstream_cm as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP},
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except aiohttp.ClientConnectionError as exc:
        raise errors.service_unavailable(f"error trying to reach service: pod {pod}: {exc}") from exc
