"""httpGet startup, readiness and liveness probes of a running container (no tcpSocket or exec probes)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

PortResolver = Callable[[int | str], int | None]


async def probe_once(probe: Mapping[str, Any], host_port: PortResolver) -> str | None:
    """None when the probe passes (HTTP 200-399), else the failure as kubelet words it."""
    action = probe.get("httpGet")
    if not action:
        return None
    port = host_port(action["port"])
    if port is None:
        return f"unknown port {action['port']!r}"
    url = f"http://127.0.0.1:{port}{action.get('path', '/')}"
    headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
    timeout = aiohttp.ClientTimeout(total=probe.get("timeoutSeconds", 1))
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers) as resp,
        ):
            return None if 200 <= resp.status < 400 else f"HTTP probe failed with statuscode: {resp.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f'Get "{url}": {exc or type(exc).__name__}'


class ProbeSupervisor:
    """Runs a container's probes and reports through callbacks; it knows nothing of pods or the store."""

    def __init__(
        self,
        container: Mapping[str, Any],
        host_port: PortResolver,
        set_state: Callable[[bool, bool], None],
        warn: Callable[[str], None],
        restart: Callable[[str], Awaitable[None]],
    ) -> None:
        self._container = container
        self._host_port = host_port
        self._set_state = set_state  # (started, ready)
        self._warn = warn
        self._restart = restart

    async def run(self) -> None:
        startup = self._container.get("startupProbe")
        readiness = self._container.get("readinessProbe")
        if startup and not await self._startup(startup):
            return
        self._set_state(True, readiness is None)
        await asyncio.gather(self._readiness(readiness), self._liveness(self._container.get("livenessProbe")))

    async def _results(self, probe: Mapping[str, Any], kind: str) -> Any:
        """Yield (passed, consecutive count) for each probe period."""
        await asyncio.sleep(probe.get("initialDelaySeconds", 0))
        streak_passed, streak = None, 0
        while True:
            failure = await probe_once(probe, self._host_port)
            if failure:
                self._warn(f"{kind} probe failed: {failure}")
            passed = failure is None
            streak = streak + 1 if passed == streak_passed else 1
            streak_passed = passed
            yield passed, streak
            await asyncio.sleep(probe.get("periodSeconds", 10))

    async def _startup(self, probe: Mapping[str, Any]) -> bool:
        async for passed, streak in self._results(probe, "Startup"):
            if passed:
                return True
            if streak >= probe.get("failureThreshold", 3):
                await self._restart(f"Container {self._container['name']} failed startup probe, will be restarted")
                return False
        return False

    async def _readiness(self, probe: Mapping[str, Any] | None) -> None:
        if not probe:
            return
        async for passed, streak in self._results(probe, "Readiness"):
            if passed and streak >= probe.get("successThreshold", 1):
                self._set_state(True, True)
            elif not passed and streak >= probe.get("failureThreshold", 3):
                self._set_state(True, False)

    async def _liveness(self, probe: Mapping[str, Any] | None) -> None:
        if not probe:
            return
        async for passed, streak in self._results(probe, "Liveness"):
            if not passed and streak >= probe.get("failureThreshold", 3):
                await self._restart(f"Container {self._container['name']} failed liveness probe, will be restarted")
                return
