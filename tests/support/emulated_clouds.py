"""Start the emulator with the six clusters and three cloud APIs, and point Airflow's connections at it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from gpuflow_emulator.connections import airflow_environment
from gpuflow_emulator.stores import StoresConfig, pod_env
from gpuflow_emulator.testing import EmulatorProcess, free_port, python_runtime

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "include" / "emulator" / "scenarios"
DEFAULT_CONFIG = ROOT / "include" / "emulator" / "default.yaml"
OPENAI_DOUBLE = ROOT / "tests" / "integration" / "serving" / "openai_double.py"


def vllm_double_runtime() -> dict[str, Any]:
    """Until real vLLM serves locally, the vLLM image runs an OpenAI-compatible double taking vLLM's args."""
    return {"image_prefix": "vllm/vllm-openai", "entrypoint": [sys.executable, str(OPENAI_DOUBLE)]}


def start_emulator(
    directory: Path, scenario: str, object_stores: StoresConfig, *, real_ml: bool = False
) -> EmulatorProcess:
    """Six clusters, three cloud APIs on free ports, the session's object stores, and the default config's
    runtimes (the training image from ``.venv-ml``, the model download by rclone); the vLLM image runs the double
    unless ``real_ml``. The Airflow worker's home (``AIRFLOW_HOME``) is hidden from every container."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "scenario.yaml").write_text((SCENARIOS / f"{scenario}.yaml").read_text())
    default = yaml.safe_load(DEFAULT_CONFIG.read_text())
    runtimes = default["runtimes"]
    if not real_ml:
        runtimes = [python_runtime(), vllm_double_runtime(), *runtimes]
    clouds = {"aws_port": free_port(), "gcp_port": free_port(), "azure_port": free_port(), "scenario": "scenario.yaml"}
    extra = {
        "clusters": default["clusters"],
        "clouds": clouds,
        "runtimes": runtimes,
        "images": default["images"],
        "object_stores": object_stores.to_json(),
        "worker_paths": [os.environ["AIRFLOW_HOME"]],
    }
    return EmulatorProcess.start(directory, extra=extra)


def point_airflow_at(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, state: Path, object_stores: StoresConfig
) -> None:
    """Airflow's connections, and the worker's own access to the GCS and Azure stores (benchmark reports),
    pointed at the emulator; outputs go to each cluster's bucket (``artifacts`` in clusters.yaml)."""
    for name, value in airflow_environment(emulator.clouds()).items():
        monkeypatch.setenv(name, value)
    for cloud in ("gcp", "azure"):
        for name, value in pod_env(cloud, "", "", object_stores).items():
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("GPUFLOW_STATE_URL", f"sqlite:///{state / 'state.db'}")
    monkeypatch.delenv("GPUFLOW_ARTIFACTS_URI", raising=False)
    monkeypatch.setenv("GPUFLOW_POLL_INTERVAL_S", "0.5")
