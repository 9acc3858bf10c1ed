"""The endpoint's LoRA pieces: run-time loading switched on for vLLM, and the sidecar that copies adapters in."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from gpuflow.core.errors import RequestError
from gpuflow.core.vllm_options import VllmOptions
from gpuflow.kube.placement import placement
from gpuflow.kube.serving import ADAPTERS_DIR, EndpointSpec, ServedFacts, endpoint_manifests, served_facts
from tests.unit.kube.schema import assert_valid

LABELS = {"gpuflow.io/managed": "true", "gpuflow.io/run": "0123456789abcdef"}
IMAGE = "vllm/vllm-openai:v0.32.0"


def _spec(cloud: str = "aws", adapters_uri: str | None = "s3://bucket/runs/r1/adapters", **kw: Any) -> EndpointSpec:
    options = VllmOptions("s3://bucket/runs/r1/model", "llama", enable_lora=True, max_lora_rank=16, max_loras=2)
    pool = placement(cloud, "pool", "L4", 1, "spot")
    return EndpointSpec(
        "llama-ep", "serving", IMAGE, options, pool, LABELS, adapters_uri=adapters_uri, region="us-east-1", **kw
    )


def _containers(spec: EndpointSpec) -> dict[str, dict[str, Any]]:
    deployment = next(m for m in endpoint_manifests(spec) if m["kind"] == "Deployment")
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


@pytest.mark.parametrize(
    ("cloud", "uri"),
    [("aws", "s3://bucket/a"), ("gcp", "gs://bucket/a"), ("azure", "az://account/container/a"), ("aws", None)],
)
def test_every_manifest_with_lora_is_schema_valid(cloud: str, uri: str | None) -> None:
    for manifest in endpoint_manifests(_spec(cloud, uri), "hf_x"):
        assert_valid(manifest)


def test_vllm_gets_the_lora_flags_and_runtime_loading_switch() -> None:
    vllm = _containers(_spec())["vllm"]

    assert vllm["args"][vllm["args"].index("--enable-lora") :][:5] == [
        "--enable-lora", "--max-lora-rank", "16", "--max-loras", "2",
    ]  # fmt: skip
    assert {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"} in vllm["env"]


def test_the_sidecar_copies_the_adapters_uri_into_the_shared_cache_in_a_loop() -> None:
    sidecar = _containers(_spec(adapter_sync_period_s=20))["sync-adapters"]

    assert sidecar["image"].startswith("rclone/rclone:")
    shell, flag, script, name, *rclone = sidecar["command"]
    assert (shell, flag, name) == ("sh", "-c", "sync-adapters")
    assert script == (
        "trap 'exit 0' TERM; while true; do \"$@\" || echo 'adapter sync failed, retrying'; sleep 20 & wait $!; done"
    )
    assert rclone == [
        "rclone", "copy", "--transfers", "1", "--order-by", "name,descending",
        "--s3-region", "us-east-1", ":s3:bucket/runs/r1/adapters", ADAPTERS_DIR,
    ]  # fmt: skip
    assert sidecar["volumeMounts"] == [{"name": "model-cache", "mountPath": "/models"}]
    assert {"name": "RCLONE_S3_ENV_AUTH", "value": "true"} in sidecar["env"]
    assert ADAPTERS_DIR == "/models/adapters"


def test_an_azure_sidecar_names_the_account_as_the_model_download_does() -> None:
    command = _containers(_spec("azure", "az://acct/container/adapters"))["sync-adapters"]["command"]

    assert command[-4:] == ["--azureblob-account", "acct", ":azureblob:container/adapters", ADAPTERS_DIR]


def test_no_adapters_uri_no_sidecar() -> None:
    assert list(_containers(_spec(adapters_uri=None))) == ["vllm"]


def test_lora_off_leaves_vllm_as_it_was() -> None:
    spec = dataclasses.replace(_spec(adapters_uri=None), options=VllmOptions("s3://bucket/m", "llama"))
    vllm = _containers(spec)["vllm"]

    assert "--enable-lora" not in vllm["args"]
    assert not [item for item in vllm["env"] if item["name"] == "VLLM_ALLOW_RUNTIME_LORA_UPDATING"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"adapters_uri": "https://example.com/adapters"}, "adapters_uri"),
        ({"adapters_uri": "s3:///no-bucket"}, "adapters_uri"),
        ({"options": VllmOptions("org/m", "m")}, "adapters_uri"),  # adapters without LoRA on
        ({"adapter_sync_period_s": 0}, "adapter_sync_period_s"),
    ],
)
def test_invalid_adapter_setting_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestError) as error:
        dataclasses.replace(_spec(), **change)

    assert error.value.field == field


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is missing: `make stores` installs Debian's")
def test_the_sidecar_command_runs_and_copies_new_adapters_weights_before_config(tmp_path: Path) -> None:
    """The manifest's own command, with local folders for the bucket and the volume: the shell loop and the
    rclone flags work (Debian's rclone 1.60 here, as in the emulator), and a later adapter is picked up."""
    source, volume = tmp_path / "bucket", tmp_path / "volume"
    (source / "first").mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (source / "first" / name).write_text(name)
    command = _containers(_spec(adapter_sync_period_s=1))["sync-adapters"]["command"]
    command[-4:] = [str(source), str(volume)]  # the bucket's region, its URI, and ADAPTERS_DIR
    command.insert(command.index("copy") + 1, "-v")  # says what it copied, in order
    sidecar = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(volume / "first" / "adapter_config.json")
        (source / "second").mkdir()
        (source / "second" / "adapter_config.json").write_text("x")
        _wait_for(volume / "second" / "adapter_config.json")
        assert sidecar.poll() is None  # still looping
        sidecar.terminate()  # SIGTERM to the shell alone, as the kubelet sends it to PID 1
        assert sidecar.wait(timeout=5) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sidecar.pid, signal.SIGKILL)
        output = sidecar.communicate(timeout=10)[0].decode()
    assert "adapter sync failed" not in output, output
    copied = [line.split(": ")[1] for line in output.splitlines() if line.endswith(": Copied (new)")]
    assert copied[:2] == ["first/adapter_model.safetensors", "first/adapter_config.json"], output
    assert (volume / "first" / "adapter_model.safetensors").read_text() == "adapter_model.safetensors"


def _wait_for(path: Path, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def test_a_deployment_says_what_it_serves_and_whether_it_loads_adapters() -> None:
    with_lora = next(m for m in endpoint_manifests(_spec()) if m["kind"] == "Deployment")
    assert served_facts(with_lora) == ServedFacts("s3://bucket/runs/r1/model", "s3://bucket/runs/r1/adapters", 16)

    plain = dataclasses.replace(_spec(adapters_uri=None), options=VllmOptions("s3://bucket/m", "llama"))
    deployment = next(m for m in endpoint_manifests(plain) if m["kind"] == "Deployment")
    assert served_facts(deployment) == ServedFacts("s3://bucket/m", None, None)
