"""The benchmarks' running system: the four Airflow components on the emulator and its object stores, as the live
tests run them, in a directory of the caller's (``make chaos``, ``make bench-tasks``)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scripts.airflow_stack import AirflowStack


@contextmanager
def emulated_stack(
    state: Path, env: Mapping[str, str], *, metadata_url: str | None = None, state_url: str | None = None
) -> Iterator[tuple[AirflowStack, Any]]:
    """Airflow and the emulator (default scenario) with its stores, in ``state``; ``env`` is added to Airflow's
    environment. Both databases default to SQLite files in ``state``. Yields (Airflow, the emulator process)."""
    from gpuflow_emulator.connections import airflow_environment
    from gpuflow_emulator.stores import ObjectStores, StoresConfig, worker_env
    from gpuflow_emulator.testing import free_port

    from tests.support.emulated_clouds import start_emulator

    os.environ["AIRFLOW_HOME"] = str(state / "airflow")  # hidden from the emulator's pods
    stores_config = StoresConfig(free_port(), free_port(), free_port())
    stores = ObjectStores(stores_config, state / "stores")
    stores.start()
    try:
        with start_emulator(state / "emulator", "default", stores_config) as emulator:
            stack_env = {
                **airflow_environment(emulator.clouds(), stores_config),
                **worker_env(stores_config),
                "GPUFLOW_STATE_URL": state_url or f"sqlite:///{state / 'state.db'}",
                "GPUFLOW_POLL_INTERVAL_S": "1",
                **env,
            }
            with AirflowStack.start(
                state / "airflow", port=free_port(), env=stack_env, database_url=metadata_url
            ) as airflow:
                yield airflow, emulator
    finally:
        stores.stop()
