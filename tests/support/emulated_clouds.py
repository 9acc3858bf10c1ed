"""Start the emulator with the six clusters and three cloud APIs, and point Airflow's connections at it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from gpuflow_emulator.connections import airflow_environment
from gpuflow_emulator.testing import EmulatorProcess, free_port, python_runtime

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "include" / "emulator" / "scenarios"
DEFAULT_CONFIG = ROOT / "include" / "emulator" / "default.yaml"
OPENAI_DOUBLE = ROOT / "tests" / "integration" / "serving" / "openai_double.py"


def vllm_double_runtime() -> dict[str, Any]:
    """Until real vLLM serves locally, the vLLM image runs an OpenAI-compatible double taking vLLM's args."""
    return {"image_prefix": "vllm/vllm-openai", "entrypoint": [sys.executable, str(OPENAI_DOUBLE)]}


def start_emulator(directory: Path, scenario: str, *, real_ml: bool = False) -> EmulatorProcess:
    """Six clusters, three cloud APIs on free ports; the vLLM image runs the double unless ``real_ml``,
    which uses the default config's runtimes (real training and real vLLM from ``.venv-ml``)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "scenario.yaml").write_text((SCENARIOS / f"{scenario}.yaml").read_text())
    default = yaml.safe_load(DEFAULT_CONFIG.read_text())
    clusters = default["clusters"]
    runtimes = default["runtimes"] if real_ml else [python_runtime(), vllm_double_runtime()]
    clouds = {"aws_port": free_port(), "gcp_port": free_port(), "azure_port": free_port(), "scenario": "scenario.yaml"}
    return EmulatorProcess.start(
        directory,
        extra={
            "clusters": clusters,
            "clouds": clouds,
            "runtimes": runtimes,
            "images": default["images"],
            "device_plugins": default["device_plugins"],
            "auth": default["auth"],
        },
    )


def point_airflow_at(emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, state: Path) -> None:
    for name, value in airflow_environment(emulator.clouds()).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GPUFLOW_STATE_URL", f"sqlite:///{state / 'state.db'}")
    monkeypatch.setenv("GPUFLOW_ARTIFACTS_URI", str(state / "artifacts"))
    monkeypatch.setenv("GPUFLOW_POLL_INTERVAL_S", "0.5")
