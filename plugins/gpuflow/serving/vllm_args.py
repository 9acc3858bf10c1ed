"""The vLLM server's argument list, built from validated ``VllmOptions`` (``gpuflow.core.vllm_options``)."""

from __future__ import annotations

from gpuflow.core.vllm_options import VllmOptions

PORT = 8000


def vllm_args(options: VllmOptions, *, model_path: str | None = None) -> list[str]:
    """The server's argument list; ``model_path`` replaces ``options.model`` when the weights were copied locally."""
    args = ["--model", model_path or options.model, "--served-model-name", options.served_model_name]
    if options.max_model_len is not None:
        args += ["--max-model-len", str(options.max_model_len)]
    args += ["--gpu-memory-utilization", str(options.gpu_memory_utilization)]
    args += ["--tensor-parallel-size", str(options.tensor_parallel_size)]
    if options.quantization is not None:
        args += ["--quantization", options.quantization]
    if options.dtype != "auto":
        args += ["--dtype", options.dtype]
    for flag, value in options.extra_args.items():
        args += [f"--{flag}"] if value is True else [f"--{flag}", str(value)]
    return [*args, "--host", "0.0.0.0", "--port", str(PORT)]
