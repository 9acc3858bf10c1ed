"""What every cloud listener shares: the call log, scenario-driven API faults, and error rendering.

Each wire module gives its routes (named after the cloud's operation, e.g. "CreateNodegroup") and a
`render(CloudFault) -> Response` that writes the cloud's own error body; this module does the rest.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gpuflow_emulator.clouds.pools import CloudFault
from gpuflow_emulator.clouds.scenarios import Scenario

Render = Callable[[CloudFault], web.Response]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class CallLog:
    """Every call each cloud API answered, in order; tests assert on it ("no cloud call was made")."""

    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def next_number(self, cloud: str) -> int:
        return len(self.calls.setdefault(cloud, [])) + 1

    def operations(self, cloud: str) -> list[str]:
        return [entry["operation"] for entry in self.calls.get(cloud, [])]

    def record(self, cloud: str, entry: dict[str, Any]) -> None:
        self.calls.setdefault(cloud, []).append(entry)


def cloud_app(
    cloud: str, scenario: Scenario, log: CallLog, render: Render, routes: list[web.RouteDef]
) -> web.Application:
    """An application serving `routes` with the call log and the scenario's throttling and 5xx."""

    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        number = log.next_number(cloud)
        route = request.match_info.route
        operation = route.name or "Unknown"
        fault = scenario.api_fault(cloud, operation, log.operations(cloud))
        response: web.StreamResponse
        if fault is not None:
            message = fault.message.format_map(request.match_info) if fault.message else None
            response = render(CloudFault(fault, message or f"injected by the scenario on call {number}"))
        else:
            try:
                response = await handler(request)
            except CloudFault as exc:
                response = render(exc)
        log.record(
            cloud,
            {
                "number": number,
                "time": time.time(),
                "operation": operation,
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "injected": fault.kind if fault else None,
            },
        )
        return response

    app = web.Application(middlewares=[faults])
    app.router.add_routes(routes)
    return app
