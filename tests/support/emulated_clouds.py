"""Start the emulator with the six clusters and three cloud APIs, and point Airflow's connections at it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from gpuflow_emulator.testing import EmulatorProcess, free_port, python_runtime

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "include" / "emulator" / "scenarios"
DEFAULT_CONFIG = ROOT / "include" / "emulator" / "default.yaml"
OPENAI_DOUBLE = ROOT / "tests" / "integration" / "serving" / "openai_double.py"


def vllm_double_runtime() -> dict[str, Any]:
    """Until real vLLM serves locally, the vLLM image runs an OpenAI-compatible double taking vLLM's args."""
    return {"image_prefix": "vllm/vllm-openai", "entrypoint": [sys.executable, str(OPENAI_DOUBLE)]}


def start_emulator(directory: Path, scenario: str) -> EmulatorProcess:
    (directory).mkdir(parents=True, exist_ok=True)
    (directory / "scenario.yaml").write_text((SCENARIOS / f"{scenario}.yaml").read_text())
    clusters = yaml.safe_load(DEFAULT_CONFIG.read_text())["clusters"]
    clouds = {"aws_port": free_port(), "gcp_port": free_port(), "azure_port": free_port(), "scenario": "scenario.yaml"}
    return EmulatorProcess.start(
        directory,
        extra={"clusters": clusters, "clouds": clouds, "runtimes": [python_runtime(), vllm_double_runtime()]},
    )


def point_airflow_at(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, state: Path) -> None:
    urls = emulator.clouds()
    connections = {
        "GPUFLOW_AWS": {
            "conn_type": "aws",
            "login": "emulator",
            "password": "emulator",
            "extra": {"endpoint_url": urls["aws"]},
        },
        "GPUFLOW_GCP": {
            "conn_type": "google_cloud_platform",
            "extra": {"api_endpoint": urls["gcp"], "anonymous": True},
        },
        "GPUFLOW_AZURE": {
            "conn_type": "azure",
            "extra": {"base_url": urls["azure"], "ca_bundle": urls["azure_ca"], "static_token": "emulator"},
        },
    }
    for name, connection in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{name}", json.dumps(connection))
    # The EKS token helper signs with the default credential chain of the process that uses the kubeconfig.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "emulator")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "emulator")
    monkeypatch.setenv("GPUFLOW_STATE_URL", f"sqlite:///{state / 'state.db'}")
    monkeypatch.setenv("GPUFLOW_ARTIFACTS_URI", str(state / "artifacts"))
    monkeypatch.setenv("GPUFLOW_POLL_INTERVAL_S", "0.5")
