"""vLLM arguments: the flags each option becomes, AWQ's fast kernel, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from gpuflow.core.errors import RequestError
from gpuflow.core.vllm_options import VllmOptions
from gpuflow.serving.vllm_args import vllm_args


def test_minimal_options_give_model_name_memory_parallelism_host_and_port() -> None:
    assert vllm_args(VllmOptions("org/model", "chat")) == [
        "--model", "org/model",
        "--served-model-name", "chat",
        "--gpu-memory-utilization", "0.9",
        "--tensor-parallel-size", "1",
        "--host", "0.0.0.0",
        "--port", "8000",
    ]  # fmt: skip


def test_every_option_becomes_its_flag() -> None:
    options = VllmOptions(
        "org/model",
        "chat",
        max_model_len=8192,
        gpu_memory_utilization=0.85,
        tensor_parallel_size=4,
        quantization="fp8",
        dtype="bfloat16",
        extra_args={"enable_prefix_caching": True, "--max-num-seqs": 64},
    )

    assert vllm_args(options, model_path="/models/weights") == [
        "--model", "/models/weights",
        "--served-model-name", "chat",
        "--max-model-len", "8192",
        "--gpu-memory-utilization", "0.85",
        "--tensor-parallel-size", "4",
        "--quantization", "fp8",
        "--dtype", "bfloat16",
        "--enable-prefix-caching",
        "--max-num-seqs", "64",
        "--host", "0.0.0.0",
        "--port", "8000",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("asked", "passed"), [("awq", "awq_marlin"), ("awq_marlin", "awq_marlin"), ("gptq", "gptq_marlin")]
)
def test_plain_awq_and_gptq_become_their_marlin_kernels(asked: str, passed: str) -> None:
    args = vllm_args(VllmOptions("org/m-awq", "m", quantization=asked))

    assert args[args.index("--quantization") + 1] == passed
    assert asked == passed or asked not in args


def test_quantization_is_left_to_the_checkpoint_unless_asked() -> None:
    assert "--quantization" not in vllm_args(VllmOptions("org/m-awq", "m"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model": ""}, "model"),
        ({"served_model_name": "two words"}, "served_model_name"),
        ({"max_model_len": 0}, "max_model_len"),
        ({"max_model_len": 4096.0}, "max_model_len"),
        ({"gpu_memory_utilization": 0}, "gpu_memory_utilization"),
        ({"gpu_memory_utilization": 1.01}, "gpu_memory_utilization"),
        ({"gpu_memory_utilization": True}, "gpu_memory_utilization"),
        ({"tensor_parallel_size": 0}, "tensor_parallel_size"),
        ({"quantization": "int3"}, "quantization"),
        ({"dtype": "fp64"}, "dtype"),
        ({"extra_args": {"trust-remote-code": True}}, "extra_args"),
        ({"extra_args": {"port": 9000}}, "extra_args"),
        ({"extra_args": {"enforce-eager": False}}, "extra_args.enforce-eager"),
        ({"extra_args": {"seed": "1 2"}}, "extra_args.seed"),
        ({"extra_args": {"seed": float("nan")}}, "extra_args.seed"),
    ],
)
def test_invalid_value_names_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestError) as error:
        VllmOptions(**({"model": "org/m", "served_model_name": "m"} | change))

    assert error.value.field == field


def test_full_gpu_memory_is_allowed() -> None:
    assert "1" in vllm_args(VllmOptions("org/m", "m", gpu_memory_utilization=1))
