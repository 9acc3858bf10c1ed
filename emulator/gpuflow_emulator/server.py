"""The HTTP application: health, per-cluster Kubernetes APIs, admin routes for tests and the cloud half.

Admin routes (not Kubernetes API):
    GET    /healthz
    GET    /_emulator/clusters                              -> [{name, server, kubeconfig}]
    POST   /_emulator/clusters/{cluster}/nodes              {name, labels, taints, allocatable, devices} -> Node
    DELETE /_emulator/clusters/{cluster}/nodes/{node}?reason=NodeLost&message=...
"""

from __future__ import annotations

from aiohttp import web

from gpuflow_emulator.api import KubeApi
from gpuflow_emulator.emulator import Emulator
from gpuflow_emulator.errors import ApiError

EMULATOR_KEY = web.AppKey("emulator", Emulator)


async def _health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _clusters(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR_KEY]
    return web.json_response(
        [
            {
                "name": name,
                "server": emulator.server_url(name),
                "kubeconfig": str(emulator.kubeconfig_path(name)),
            }
            for name in emulator.clusters
        ]
    )


async def _add_node(request: web.Request) -> web.Response:
    body = await request.json()
    try:
        node = request.app[EMULATOR_KEY].add_node(
            request.match_info["cluster"],
            body["name"],
            body.get("labels"),
            body.get("taints"),
            body.get("allocatable"),
            body.get("devices"),
        )
    except ApiError as exc:
        return web.json_response(exc.status(), status=exc.code)
    return web.json_response(node, status=201)


async def _remove_node(request: web.Request) -> web.Response:
    query = request.query
    try:
        await request.app[EMULATOR_KEY].remove_node(
            request.match_info["cluster"],
            request.match_info["node"],
            query.get("reason", "NodeLost"),
            query.get("message", ""),
        )
    except ApiError as exc:
        return web.json_response(exc.status(), status=exc.code)
    return web.json_response({})


def build_app(emulator: Emulator) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[EMULATOR_KEY] = emulator
    api = KubeApi(emulator)

    async def close_api(_app: web.Application) -> None:
        await api.close()

    app.on_cleanup.append(close_api)
    app.router.add_get("/healthz", _health)
    app.router.add_get("/_emulator/clusters", _clusters)
    app.router.add_post("/_emulator/clusters/{cluster}/nodes", _add_node)
    app.router.add_delete("/_emulator/clusters/{cluster}/nodes/{node}", _remove_node)
    app.router.add_route("*", "/clusters/{cluster}/{path:.*}", api.handle)
    return app
