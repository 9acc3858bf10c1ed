"""The serving options gpuflow accepts are ones the pinned vLLM accepts, and the pin is the serving image's."""

from __future__ import annotations

import pytest

from gpuflow.core import vllm_cli, vllm_options
from gpuflow.core.errors import RequestError
from gpuflow.core.job import JobRequest
from gpuflow.core.vllm_options import VllmOptions


def test_the_table_is_of_the_vllm_in_the_default_serving_image() -> None:
    image = JobRequest.__dataclass_fields__["serving_image"].default
    assert image == f"vllm/vllm-openai:v{vllm_cli.VLLM_VERSION}"


def test_every_extra_flag_and_alias_is_one_the_pinned_vllm_accepts() -> None:
    assert vllm_options.EXTRA_FLAGS <= vllm_cli.SERVE_FLAGS
    assert set(vllm_options.QUANTIZATION_ALIASES.values()) <= vllm_cli.QUANTIZATION_METHODS
    assert {"model", "served-model-name", "max-model-len", "gpu-memory-utilization", "tensor-parallel-size"} <= (
        vllm_cli.SERVE_FLAGS
    )


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"quantization": "bitsandbytes"}, "quantization"),  # not registered in vLLM 0.32
        ({"quantization": "gguf"}, "quantization"),
        ({"extra_args": {"swap-space": 4}}, "extra_args"),  # removed from vllm serve
        ({"extra_args": {"kv-cache-dtype": "fp7"}}, "extra_args.kv-cache-dtype"),
    ],
)
def test_an_option_the_pinned_vllm_refuses_is_refused_naming_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(RequestError) as error:
        VllmOptions("org/m", "m", **options)  # type: ignore[arg-type]
    assert error.value.field == field


def test_a_kv_cache_dtype_the_pinned_vllm_lists_is_accepted() -> None:
    assert VllmOptions("org/m", "m", extra_args={"kv-cache-dtype": "fp8"}).extra_args == {"kv-cache-dtype": "fp8"}
