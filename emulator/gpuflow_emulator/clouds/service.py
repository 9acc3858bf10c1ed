"""Starting the three cloud listeners next to the Kubernetes one, and their admin routes.

Each cloud API gets its own port because EKS paths (`/clusters/...`) would clash with the Kubernetes
prefix: AWS and GCP over plain http, Azure over https with a CA made at start (`<state_dir>/azure-ca.pem`).

Admin routes added to the main listener:
    GET /_emulator/pools                 -> [{cloud, cluster, name, state, labels, nodes, ...}] (live pools)
    GET /_emulator/clouds                -> {aws: url, gcp: url, azure: url, azure_ca: path, scenario: path}
    GET /_emulator/clouds/{cloud}/calls  -> [{number, operation, method, path, status, injected}]
    POST /_emulator/pools/{cloud}/{cluster}/{pool}/preempt -> {"preempted": [node, ...]} (a spot pool's nodes, now;
        a body {"nodes": [node, ...]} takes those alone, as a cloud takes back some VMs of a pool)
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from gpuflow_emulator.clouds import aks, eks, entra, gke, scenarios, tls
from gpuflow_emulator.clouds.api import CallLog, cloud_app
from gpuflow_emulator.clouds.nodepools import NodePools
from gpuflow_emulator.emulator import Emulator

log = logging.getLogger(__name__)


class CloudServices:
    """The node-pool engine, the call log and the three cloud applications of one emulator."""

    def __init__(self, emulator: Emulator, host: str, public_host: str | None = None) -> None:
        config = emulator.config
        self.host = host  # listened on
        self.public_host = public_host or host  # in the URLs handed out and the Azure certificate
        self.settings = config.clouds
        self.scenario = scenarios.load(config.clouds.scenario)
        self.pools = NodePools(emulator, self.scenario)
        self.calls = CallLog()
        self.state_dir = config.state_dir
        self.apps = {
            "aws": cloud_app(
                "aws",
                self.scenario,
                self.calls,
                eks.render,
                eks.EksApi(config, self.pools, emulator.server_url).routes(),
            ),
            "gcp": cloud_app(
                "gcp",
                self.scenario,
                self.calls,
                gke.render,
                gke.GkeApi(config, self.pools, emulator.server_url).routes(),
            ),
            "azure": cloud_app(
                "azure",
                self.scenario,
                self.calls,
                aks.render,
                aks.AksApi(config, self.pools, emulator, self.scenario).routes()
                + entra.EntraApi(emulator.entra).routes(),
            ),
        }
        self.urls: dict[str, str] = {}
        self.azure_ca: str | None = None
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        """Listen on every configured port (port 0 leaves that cloud off)."""
        self.pools.start()
        ports = {"aws": self.settings.aws_port, "gcp": self.settings.gcp_port, "azure": self.settings.azure_port}
        for cloud, port in ports.items():
            if not port:
                continue
            ssl_context = None
            scheme = "http"
            if cloud == "azure":
                ssl_context, ca_path = tls.server_context(self.state_dir, self.public_host)
                self.azure_ca, scheme = str(ca_path), "https"
            runner = web.AppRunner(self.apps[cloud], handle_signals=False, shutdown_timeout=1)
            await runner.setup()
            await web.TCPSite(runner, self.host, port, ssl_context=ssl_context).start()
            self._runners.append(runner)
            self.urls[cloud] = f"{scheme}://{self.public_host}:{port}"
            log.info("%s API listening on %s", cloud, self.urls[cloud])
        log.info("scenario: %s", self.settings.scenario or "(none: everything available)")

    async def stop(self) -> None:
        await self.pools.shutdown()
        for runner in self._runners:
            await runner.cleanup()

    def add_admin_routes(self, app: web.Application) -> None:
        app.router.add_get("/_emulator/pools", self._pools)
        app.router.add_get("/_emulator/clouds", self._clouds)
        app.router.add_get("/_emulator/clouds/{cloud}/calls", self._calls)
        app.router.add_post("/_emulator/pools/{cloud}/{cluster}/{pool}/preempt", self._preempt)

    async def _pools(self, _request: web.Request) -> web.Response:
        return web.json_response([pool.to_json() for pool in self.pools.all()])

    async def _clouds(self, _request: web.Request) -> web.Response:
        body: dict[str, Any] = {**self.urls, "azure_ca": self.azure_ca, "scenario": str(self.settings.scenario or "")}
        return web.json_response(body)

    async def _preempt(self, request: web.Request) -> web.Response:
        """Preempt a spot pool's nodes now, each as its cloud does it: for tests that choose the moment."""
        info = request.match_info
        pool = self.pools.get(info["cloud"], info["cluster"], info["pool"])
        if pool is None:
            return web.json_response(
                {"error": f"no pool {info['pool']} in {info['cloud']}/{info['cluster']}"}, status=404
            )
        if not pool.spot:
            return web.json_response({"error": f"pool {pool.name} is not a spot pool"}, status=409)
        body = await request.json() if request.can_read_body else {}
        chosen = body.get("nodes") if isinstance(body, dict) else None
        missing = [node for node in chosen or () if node not in pool.nodes or node in pool.down]
        if missing:
            return web.json_response({"error": f"pool {pool.name} holds no live node {missing[0]}"}, status=404)
        return web.json_response({"preempted": list(self.pools.preempt(pool, chosen))})

    async def _calls(self, request: web.Request) -> web.Response:
        return web.json_response(self.calls.calls.get(request.match_info["cloud"], []))
