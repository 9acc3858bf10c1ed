"""One running Airflow (api-server, scheduler, dag-processor, triggerer) on the emulator, shared by the tests of
this folder: starting it costs about a minute on two cores, so it is started once per session.

The vLLM image runs the OpenAI-compatible double and training a one-line script, so a whole pipeline run takes
about a minute; the real model is exercised by ``make demo`` and ``tests/e2e/test_model_swap_on_emulator.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from gpuflow_emulator.connections import airflow_environment
from gpuflow_emulator.stores import StoresConfig, worker_env
from gpuflow_emulator.testing import EmulatorProcess, free_port

from scripts.airflow_stack import AirflowStack
from tests.support.emulated_clouds import FAST_CONF, start_emulator

RETRAINING_CONFIG = Path(__file__).resolve().parents[2] / "include" / "config" / "retraining.yaml"


# Unpausing a DAG with catchup=False starts a run for its most recent cron tick (Airflow's "latest interval"):
# with the shipped weekly cron that is a scheduled run beside the asset's. February 29th's last tick (2024) is
# before the DAG's start_date and its next is in 2028, so under this cron the asset event is the only trigger.
NO_TICK_DURING_THE_TESTS = "0 3 29 2 *"


def fast_retraining_config(directory: Path) -> Path:
    """The shipped retraining config with the fast job of these tests (read by the DAG processor at parse time)."""
    config = yaml.safe_load(RETRAINING_CONFIG.read_text())
    fast = {key: value for key, value in FAST_CONF.items() if key != "job_name"}
    # Its own endpoint, torn down at the end: these tests are about triggering, promotion is tested end to end.
    config["job"] = {
        **config["job"],
        **fast,
        "dataset_uri": "",
        "served_model_name": "tiny-retrained",
        "endpoint_name": "",
    }
    config["cron"] = NO_TICK_DURING_THE_TESTS
    path = directory / "retraining.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Live:
    airflow: AirflowStack
    emulator: EmulatorProcess


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory, object_stores: StoresConfig) -> Iterator[Live]:
    state = tmp_path_factory.mktemp("live")
    with start_emulator(state / "emulator", "default", object_stores) as emulator:
        env = {
            **airflow_environment(emulator.clouds(), object_stores),
            **worker_env(object_stores),
            "GPUFLOW_STATE_URL": f"sqlite:///{state / 'state.db'}",
            "GPUFLOW_POLL_INTERVAL_S": "1",
            "GPUFLOW_SWAP_DRAIN_S": "3",  # a named endpoint's old revision drains 3 s, not 30
            "GPUFLOW_RETRAINING_CONFIG": str(fast_retraining_config(state)),
        }
        with AirflowStack.start(state / "airflow", port=free_port(), env=env) as airflow:
            yield Live(airflow=airflow, emulator=emulator)
