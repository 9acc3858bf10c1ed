"""`python -m gpuflow_emulator serve --config FILE --port N`: run the emulator until SIGTERM, SIGINT or SIGHUP.

`--host` is the address to listen on; `--public-host` is the name clients use to reach it, written into
every URL the emulator hands out (kubeconfigs, cluster endpoints, the cloud API URLs) and into the Azure
listener's certificate. They differ in a container: listen on 0.0.0.0, be reached as the service name.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from gpuflow_emulator import config as config_module
from gpuflow_emulator.clouds.service import CloudServices
from gpuflow_emulator.emulator import Emulator
from gpuflow_emulator.server import build_app
from gpuflow_emulator.stores import ObjectStores, StoresConfig

log = logging.getLogger("gpuflow_emulator")


async def serve(config_path: Path, host: str, port: int, public_host: str | None = None) -> None:
    """Serve until a stop signal; on the way out every container process is ended."""
    public_host = public_host or host
    config = config_module.load(config_path)
    emulator = Emulator(config, f"http://{public_host}:{port}")
    object_stores = await _start_stores(config) if config.object_stores else None
    clouds = CloudServices(emulator, host, public_host)
    app = build_app(emulator)
    clouds.add_admin_routes(app)
    app.router.add_get("/_emulator/stores", _stores_route(config.object_stores))
    # Cancel a handler when its client leaves (watches, log follows); do not wait long for open streams.
    runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True, shutdown_timeout=2)
    await runner.setup()
    emulator.start()
    # The cloud APIs listen before /healthz answers: whoever waits for it then reads every cloud's URL from
    # /_emulator/clouds (the Azure API's TLS certificate alone can take seconds to make on a busy machine).
    await clouds.start()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    # SIGHUP too: the emulator shares the terminal of whoever started it, and a closed one must not orphan pods.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    log.info("emulator listening on %s:%d as %s (config %s)", host, port, emulator.base_url, config_path)
    await stop.wait()
    log.info("stopping: ending every container process")
    await clouds.stop()
    await emulator.shutdown()
    await runner.cleanup()
    if object_stores:
        object_stores.stop()
    log.info("stopped")


async def _start_stores(config: config_module.EmulatorConfig) -> ObjectStores:
    """Start the object stores (or find them running) and make every cluster's bucket in its cloud's store."""
    assert config.object_stores is not None
    object_stores = ObjectStores(config.object_stores, config.state_dir / "stores")
    await asyncio.to_thread(object_stores.start)
    for spec in config.clusters:
        if spec.cloud and spec.cloud.bucket:
            await asyncio.to_thread(object_stores.create_bucket, spec.cloud.bucket, spec.cloud.region)
    return object_stores


def _stores_route(stores: StoresConfig | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    """GET /_emulator/stores: the stores' endpoints ({} when none is served)."""

    async def handler(_request: web.Request) -> web.Response:
        if stores is None:
            return web.json_response({})
        urls = {"s3": stores.s3_url, "gcs": stores.gcs_url, "azure": stores.azure_url}
        return web.json_response({**urls, "config": stores.to_json()})

    return handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gpuflow_emulator")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the emulated clusters")
    serve_parser.add_argument("--config", type=Path, required=True)
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--public-host", help="the name clients reach the emulator by (default: --host)")
    serve_parser.add_argument("--port", type=int, default=8089)
    serve_parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(serve(args.config, args.host, args.port, args.public_host))
