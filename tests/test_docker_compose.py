"""docker-compose.yaml cannot run here (no Docker engine), so check what can be checked without one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_COMMANDS = {"api-server", "scheduler", "dag-processor", "triggerer", "celery worker"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    return document


def airflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if name.startswith("airflow-")}


def test_file_matches_the_compose_specification() -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker, "check-jsonschema is in requirements-dev.txt"
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_airflow_component_is_a_service(compose: dict[str, Any]) -> None:
    commands = {str(s.get("command")) for s in airflow_services(compose).values()}
    assert commands >= AIRFLOW_COMMANDS
    assert {"postgres", "redis", "airflow-init"} <= set(compose["services"])


def test_every_dependency_names_a_service(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], f"{name} depends on unknown service {dependency}"


def test_project_folders_are_mounted_into_every_airflow_service(compose: dict[str, Any]) -> None:
    for name, service in airflow_services(compose).items():
        mounts = {m.split(":")[0]: m.split(":")[1] for m in service["volumes"] if m.startswith("./")}
        for folder in ("dags", "plugins", "include"):
            assert (ROOT / folder).is_dir()
            assert mounts.get(f"./{folder}") == f"/opt/airflow/{folder}", f"{name} does not mount {folder}/"


def test_connections_point_at_the_services_that_exist(compose: dict[str, Any]) -> None:
    for name, service in airflow_services(compose).items():
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        db_host = urlparse(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname
        broker_host = urlparse(env["AIRFLOW__CELERY__BROKER_URL"]).hostname
        api_host = urlparse(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).hostname
        assert {db_host, broker_host, api_host} <= set(compose["services"]), name
        catalog = env["GPUFLOW_CATALOG"].removeprefix("/opt/airflow/")
        assert (ROOT / catalog).is_file(), f"{name}: GPUFLOW_CATALOG does not exist in the image mounts"


def test_image_is_built_from_the_pinned_requirements(compose: dict[str, Any]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    requirements = (ROOT / "requirements.txt").read_text()
    assert "apache-airflow==3.3.2" in requirements
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    assert "requirements.txt" in dockerfile
    assert all(s.get("build") == "." for s in airflow_services(compose).values())
