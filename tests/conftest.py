"""Test-session Airflow: a private AIRFLOW_HOME and SQLite metadata DB in a temp dir, never the user's.

The environment is set before anything imports Airflow, which reads its configuration once at import.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpuflow_emulator.stores import ObjectStores, StoresConfig
from gpuflow_emulator.testing import EmulatorProcess, free_port

from gpuflow.core.clusters import Cluster
from scripts import stop_signals
from tests.support.emulated_clouds import point_airflow_at, start_emulator, worker_on_stores

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="gpuflow-test-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    }
)


POOLS = ROOT / "include" / "config" / "pools.json"


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM and SIGHUP interrupt the session like Ctrl-C, so the session fixtures still stop the Airflow
    components, the object stores and the emulators (with their pods) they started."""
    stop_signals.install()


# Folders whose tests share an expensive session fixture (the running Airflow of tests/live, about a minute to
# start; the model tests/ml trains): under pytest-xdist (`make test` runs two workers) each folder is one unit of
# work, run by one worker, so the fixture is built once. Being the largest units, they are handed out first and the
# other tests fill the second worker around them. (A scheduler rather than xdist_group markers: pytest-xdist 3.8's
# loadgroup renames node ids in a way pytest 9 ignores, so its groups are silently split.)
SHARED_SESSION_FOLDERS = ("tests/live/", "tests/ml/")


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]  # mypy sees xdist as untyped
        def _split_scope(self, nodeid: str) -> str:
            return next((folder for folder in SHARED_SESSION_FOLDERS if nodeid.startswith(folder)), nodeid)

    return SharedFixtureScheduling(config, log)


def airflow_cli(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "airflow", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata DB for this test session, with the pools of ``include/config/pools.json`` imported
    as docs/operations.md tells every deployment to (about 10 s, once)."""
    airflow_cli("db", "migrate")
    airflow_cli("pools", "import", str(POOLS))
    return AIRFLOW_HOME / "airflow.db"


@pytest.fixture(scope="session")
def object_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoresConfig]:
    """S3 (moto), GCS (fake-gcs-server) and Azure Blob (Azurite), started once per session (about 4 s) and shared
    by every emulator, which finds them running (``start: false``) and only makes its clusters' buckets."""
    config = StoresConfig(free_port(), free_port(), free_port())
    stores = ObjectStores(config, tmp_path_factory.mktemp("stores"))
    stores.start()
    yield config
    stores.stop()


@pytest.fixture
def store_clusters(object_stores: StoresConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Cluster]:
    """One cluster per cloud, its bucket in the session's stores, and the worker's environment pointed at them
    (``worker_on_stores``): for reading and writing a run's outputs from the worker."""
    return worker_on_stores(object_stores, monkeypatch, tmp_path / "stores")


@pytest.fixture
def clouds_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, object_stores: StoresConfig
) -> Iterator[EmulatorProcess]:
    """An emulator with the six clusters and three cloud APIs under a scenario (``indirect`` parameter,
    default ``default``), and Airflow's connections pointed at it (endpoints and credentials only)."""
    scenario = getattr(request, "param", "default")
    with start_emulator(tmp_path / "emulator", scenario, object_stores) as process:
        point_airflow_at(process, monkeypatch, tmp_path, object_stores)
        yield process
