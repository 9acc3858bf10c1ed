"""The Kubernetes REST API of every cluster under `/clusters/<name>/`: discovery, CRUD, watch, logs, proxy.

Requests are parsed once into (group, version, namespace, resource, name, subresource); errors raised
anywhere below are ApiError and become `Status` objects here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web

from gpuflow_emulator import admission, errors, proxy, resources, tables
from gpuflow_emulator.auth import Authenticator
from gpuflow_emulator.cluster import Cluster
from gpuflow_emulator.emulator import Emulator
from gpuflow_emulator.errors import ApiError
from gpuflow_emulator.resources import Resource
from gpuflow_emulator.selectors import field_selector, label_selector
from gpuflow_emulator.store import Change, Obj
from gpuflow_emulator.timeutil import log_stamp, now, parse_iso

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-gpuflow-emulator",
    "platform": "linux/amd64",
    "goVersion": "go1.23",
    "compiler": "gc",
    "buildDate": "2026-01-01T00:00:00Z",
    "gitCommit": "",
    "gitTreeState": "clean",
}
MERGE_PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
PODS, NAMESPACES, JOBS = resources.by_kind("Pod"), resources.by_kind("Namespace"), resources.by_kind("Job")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """What a resource URL addresses."""

    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None
    tail: str  # the path after `.../proxy/`, still URL-encoded


def _flag(request: web.Request, name: str) -> bool:
    """A boolean query parameter, parsed as Go's strconv.ParseBool does (clients send `True` or `true`)."""
    return request.query.get(name, "") in ("1", "t", "T", "true", "TRUE", "True")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _parse_target(group: str, version: str, parts: list[str]) -> Target:
    namespace = None
    if parts[0] == "namespaces" and len(parts) >= 3:
        namespace, parts = parts[1], parts[2:]
    resource = resources.lookup(group, version, parts[0])
    if resource.namespaced != (namespace is not None) and len(parts) > 1:
        raise resources.not_served()
    return Target(
        resource,
        namespace,
        parts[1] if len(parts) > 1 else None,
        parts[2] if len(parts) > 2 else None,
        "/".join(parts[3:]),
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; strategic merge patches are applied the same way (lists replace)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


async def _body(request: web.Request) -> Any:
    try:
        return await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"the body of the request could not be decoded: {exc}") from exc


class KubeApi:
    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator
        self._auth = Authenticator(emulator.config, emulator.entra)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            cluster = self._emulator.cluster(request.match_info["cluster"])
            self._auth.check(cluster.name, request.headers.get("Authorization", ""))
            # Segments are split before decoding, so an encoded `/` inside a segment stays in it.
            path = [unquote(part) for part in request.rel_url.raw_path.split("/")[3:]]
            return await self._route(request, cluster, path)
        except ApiError as exc:
            return _json(exc.status(), exc.code)

    async def _route(self, request: web.Request, cluster: Cluster, path: list[str]) -> web.StreamResponse:
        if len(path) > 1 and path[-1] == "" and "proxy" not in path:
            path = path[:-1]  # `/api/` is `/api`
        match path:
            case ["version"]:
                return _json(VERSION)
            case ["healthz" | "livez" | "readyz"]:
                return web.Response(text="ok")
            case ["api"]:
                return _json(resources.api_versions())
            case ["api", version]:
                return _json(resources.resource_list("", version))
            case ["apis"]:
                return _json(resources.api_group_list())
            case ["apis", group]:
                return _json(resources.api_group(group))
            case ["apis", group, version]:
                return _json(resources.resource_list(group, version))
            case ["api", version, _, *_]:
                return await self._resource(request, cluster, _parse_target("", version, path[2:]))
            case ["apis", group, version, _, *_]:
                return await self._resource(request, cluster, _parse_target(group, version, path[3:]))
        raise resources.not_served()

    async def _resource(self, request: web.Request, cluster: Cluster, target: Target) -> web.StreamResponse:
        method, sub = request.method, target.subresource
        if target.name is None:
            if method == "GET":
                return await self._list(request, cluster, target)
            if method == "POST":
                return await self._create(request, cluster, target)
        elif sub is None or sub == "status":
            if method == "GET":
                obj = cluster.store.get(target.resource, target.namespace or "", target.name)
                return self._objects(request, target.resource, [obj], single=True)
            if method == "PUT" and sub is None:
                return _json(self._replace(cluster, target, await _body(request)))
            if method == "PATCH" and sub is None:
                return _json(await self._patch(request, cluster, target))
            if method == "DELETE" and sub is None:
                return _json(await self._delete(request, cluster, target))
        elif sub == "log" and target.resource is PODS and method == "GET":
            return await self._log(request, cluster, target)
        elif sub == "proxy" and target.resource.name in ("pods", "services") and target.namespace:
            if self._session is None:
                self._session = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
            return await proxy.forward(
                request,
                self._session,
                cluster,
                target.namespace,
                target.resource.name,
                target.name,
                target.tail,
            )
        else:
            raise resources.not_served()
        raise errors.method_not_allowed()

    # ---- reads ----

    def _objects(
        self,
        request: web.Request,
        resource: Resource,
        objs: list[Obj],
        single: bool = False,
        resource_version: str = "",
    ) -> web.Response:
        """One object, a `<Kind>List`, or a Table when kubectl asks for one."""
        if "as=Table" in request.headers.get("Accept", ""):
            include = request.query.get("includeObject") == "Object"
            return _json(tables.table(resource.kind, objs, resource_version, include))
        if single:
            return _json(objs[0])
        return _json(
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": resource_version},
                "items": objs,
            }
        )

    def _matcher(self, request: web.Request, target: Target) -> Any:
        labels = label_selector(request.query.get("labelSelector"))
        fields = field_selector(request.query.get("fieldSelector"))
        namespace = target.namespace

        def matches(obj: Obj) -> bool:
            in_scope = namespace is None or obj["metadata"].get("namespace") == namespace
            return in_scope and labels(obj["metadata"].get("labels") or {}) and fields(obj)

        return matches

    async def _list(self, request: web.Request, cluster: Cluster, target: Target) -> web.StreamResponse:
        matches = self._matcher(request, target)
        if _flag(request, "watch"):
            return await self._watch(request, cluster, target.resource, matches)
        objs = cluster.store.list(target.resource, target.namespace, matches)
        return self._objects(request, target.resource, objs, resource_version=cluster.store.resource_version)

    async def _watch(
        self, request: web.Request, cluster: Cluster, resource: Resource, matches: Any
    ) -> web.StreamResponse:
        """Objects newer than `resourceVersion` as ADDED, then each change until `timeoutSeconds`."""
        changes: asyncio.Queue[Change] = asyncio.Queue()
        unsubscribe = cluster.store.subscribe(lambda c: changes.put_nowait(c) if c.resource == resource.name else None)
        since = int(request.query.get("resourceVersion") or 0)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        deadline = asyncio.get_running_loop().time() + float(request.query.get("timeoutSeconds") or 1800)
        try:
            for obj in cluster.store.list(resource, None, matches):
                if int(obj["metadata"]["resourceVersion"]) > since:
                    await response.write(json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
            while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
                try:
                    change = await asyncio.wait_for(changes.get(), remaining)
                except TimeoutError:
                    break
                if matches(change.obj):
                    await response.write(json.dumps({"type": change.type, "object": change.obj}).encode() + b"\n")
        except ConnectionError:
            pass
        finally:
            unsubscribe()
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    # ---- writes ----

    def _check_namespace(self, cluster: Cluster, target: Target, obj: Obj) -> str:
        if target.namespace is None:
            return ""
        sent = obj.get("metadata", {}).get("namespace")
        if sent and sent != target.namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        cluster.store.get(NAMESPACES, "", target.namespace)
        return target.namespace

    async def _create(self, request: web.Request, cluster: Cluster, target: Target) -> web.Response:
        if target.resource.namespaced and target.namespace is None:
            raise errors.method_not_allowed()
        body = await _body(request)
        if isinstance(body, dict) and isinstance(body.get("metadata"), dict):
            body["metadata"].pop("uid", None)  # the API server makes every uid itself
        namespace = self._check_namespace(cluster, target, body)
        if namespace:
            body.setdefault("metadata", {})["namespace"] = namespace
        obj = admission.admit(target.resource, body)
        created = cluster.store.create(target.resource, namespace, obj)
        log.info("cluster %s: created %s %s", cluster.name, target.resource.kind, created["metadata"]["name"])
        return _json(created, 201)

    def _replace(self, cluster: Cluster, target: Target, body: Obj) -> Obj:
        namespace = self._check_namespace(cluster, target, body)
        if body.get("metadata", {}).get("name") != target.name:
            raise errors.bad_request("the name of the object does not match the name on the URL")
        return cluster.store.replace(target.resource, namespace, admission.admit(target.resource, body))

    async def _patch(self, request: web.Request, cluster: Cluster, target: Target) -> Obj:
        content_type = request.headers.get("Content-Type", "").split(";")[0]
        if content_type not in MERGE_PATCH_TYPES:
            raise errors.unsupported_media_type(content_type)
        current = cluster.store.get(target.resource, target.namespace or "", target.name or "")
        patched = merge_patch(current, await _body(request))
        patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self._replace(cluster, target, patched)

    async def _delete(self, request: web.Request, cluster: Cluster, target: Target) -> Obj:
        name, namespace = target.name or "", target.namespace or ""
        if target.resource is PODS:
            options = await _body(request) if request.can_read_body else {}
            grace = request.query.get("gracePeriodSeconds", (options or {}).get("gracePeriodSeconds"))
            return cluster.delete_pod(namespace, name, None if grace is None else int(grace))
        if target.resource is NAMESPACES:
            return cluster.delete_namespace(name)
        if target.resource is JOBS:
            options = await _body(request) if request.can_read_body else {}
            policy = request.query.get("propagationPolicy", (options or {}).get("propagationPolicy"))
            return cluster.delete_job(namespace, name, policy)
        return cluster.store.delete(target.resource, namespace, name)

    # ---- logs ----

    async def _log(self, request: web.Request, cluster: Cluster, target: Target) -> web.StreamResponse:
        """Container log, with follow, tailLines, sinceSeconds, sinceTime and timestamps."""
        pod = cluster.store.get(PODS, target.namespace or "", target.name or "")
        names = [c["name"] for c in pod["spec"].get("initContainers") or []]
        main = [c["name"] for c in pod["spec"]["containers"]]
        container = request.query.get("container") or (main[0] if len(main) == 1 else None)
        if container is None:
            raise errors.bad_request(
                f"a container name must be specified for pod {target.name}, "
                f"choose one of: [{' '.join(main)}] or one of the init containers: [{' '.join(names)}]"
            )
        if container not in names + main:
            raise errors.bad_request(f"container {container} is not valid for pod {target.name}")
        if _flag(request, "previous"):
            raise errors.bad_request(f'previous terminated container "{container}" in pod "{target.name}" not found')
        worker = cluster.kubelet.worker(pod["metadata"]["uid"])
        container_log = worker.logs.get(container) if worker else None
        if container_log is None:
            statuses = (pod["status"].get("initContainerStatuses") or []) + (
                pod["status"].get("containerStatuses") or []
            )
            waiting: dict[str, str] = next(
                (s["state"].get("waiting", {}) for s in statuses if s["name"] == container), {}
            )
            raise errors.bad_request(
                f'container "{container}" in pod "{target.name}" is waiting to start: '
                f"{waiting.get('reason', 'ContainerCreating')}"
            )
        lines = container_log.lines
        query = request.query
        since = None
        if "sinceSeconds" in query:
            since = now() - timedelta(seconds=int(query["sinceSeconds"]))
        elif "sinceTime" in query:
            since = parse_iso(query["sinceTime"])
        selected = [(at, line) for at, line in lines if since is None or at >= since]
        if "tailLines" in query:
            selected = selected[-int(query["tailLines"]) :] if int(query["tailLines"]) else []
        stamps = _flag(request, "timestamps")

        def render(entries: list[tuple[Any, bytes]]) -> bytes:
            return b"".join((log_stamp(at).encode() + b" " if stamps else b"") + line for at, line in entries)

        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await response.write(render(selected))
            position = len(lines)
            while _flag(request, "follow") and not (container_log.closed and position >= len(lines)):
                await container_log.changed(timeout=1.0)
                await response.write(render(lines[position:]))
                position = len(lines)
            await response.write_eof()
        return response
