"""The whole job a pipeline run is asked to do: where to run (a ``PlanRequest``), what to train, how to serve.

Validated in full by the first task of the pipeline, so a bad value fails the run before any cloud call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from gpuflow.core import torchrun
from gpuflow.core.errors import RequestError
from gpuflow.core.request import PlanRequest
from gpuflow.core.storage import known_schemes, require_servable
from gpuflow.core.vllm_options import VllmOptions

_DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$")
_DNS_LABEL_HINT = "1-40 lowercase letters, digits and '-', starting with a letter"
# An image reference: [registry/]path[:tag][@digest]; no spaces, at most 255 characters.
_IMAGE = re.compile(r"^[a-z0-9]+([._/:@-][a-zA-Z0-9_.-]+)*$")
# Paths and URIs of the schemes the cloud records know (a fourth cloud's storage is accepted with its record).
_URI = re.compile(rf"^({'|'.join(known_schemes())})://\S+$|^/\S*$")
_URI_HINT = "an absolute path or a URI: " + ", ".join(f"{scheme}://" for scheme in known_schemes())
# Only connections made for a Hugging Face token may be handed to an endpoint: whoever can trigger a run picks
# the serving image, so any other connection's password (a cloud's service principal, say) would leak into it.
HF_CONNECTION_PREFIX = "hf_"
_CONN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")
MAX_KEEP_ENDPOINT_MINUTES = 24 * 60
MAX_BENCHMARK_REQUESTS = 10_000
MAX_BENCHMARK_RATE = 1_000.0
# Each recovery buys a new pool and repeats a restart; past a few, the capacity is not there and the run should stop.
MAX_RECOVERIES = 20
DEFAULT_RECOVERIES = 3
# A new model takes a named endpoint's traffic only if, on the same prompts as the live one, its TTFT p99 is at most
# this many times the live model's and its output tokens/s at least this fraction of them (and no request failed).
DEFAULT_GATE_TTFT_P99_RATIO = 1.5
DEFAULT_GATE_THROUGHPUT_RATIO = 0.67
# The trainer's --parallel under torchrun (include/training/gpuflow_training/fsdp.py), given as its env variable.
TRAINING_PARALLEL = ("auto", "ddp", "fsdp")
PARALLEL_ENV = "GPUFLOW_TRAIN_PARALLEL"
# The trainer's --adapter-rank and --base-model (include/training/gpuflow_training/config.py), as env variables.
ADAPTER_RANK_ENV = "GPUFLOW_TRAIN_ADAPTER_RANK"
BASE_MODEL_ENV = "BASE_MODEL_URI"


@dataclass(frozen=True, slots=True)
class JobRequest:
    """Everything a run of ``gpu_train_and_serve`` needs, validated; planning fields live in ``plan``."""

    plan: PlanRequest
    job_name: str = "gpuflow-job"
    training_image: str = "ghcr.io/gpuflow/train:0.1.0"
    training_command: tuple[str, ...] = ("python", "-m", "gpuflow_training")
    training_parallel: str = "auto"  # replicate (ddp) or shard (fsdp) the model; auto: the trainer decides
    dataset_uri: str = ""
    output_uri: str = ""
    keep_endpoint_minutes: int = 0
    max_recoveries: int = DEFAULT_RECOVERIES  # new pools a run may get after a spot preemption or a lost node
    serving_image: str = "vllm/vllm-openai:v0.32.0"
    served_model_name: str = "gpuflow-model"
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    quantization: str | None = None
    hf_token_conn_id: str = ""
    benchmark_requests: int = 20
    benchmark_rate: float = 4.0
    endpoint_name: str = ""  # a long-lived endpoint the run's model is promoted onto (``gpuflow.operators.promote``)
    gate_ttft_p99_ratio: float = DEFAULT_GATE_TTFT_P99_RATIO
    gate_throughput_ratio: float = DEFAULT_GATE_THROUGHPUT_RATIO
    swap_load: bool = True  # one request at a time through the endpoint for the whole swap, measured
    enable_lora: bool = False  # the endpoint loads LoRA adapters at run time (a named one: from its adapters folder)
    max_lora_rank: int = 16  # the largest adapter rank the endpoint accepts
    adapter_rank: int = 0  # > 0: train a LoRA adapter on the named endpoint's live model and load it there

    def __post_init__(self) -> None:
        if not _DNS_LABEL.match(self.job_name):
            raise RequestError("job_name", self.job_name, _DNS_LABEL_HINT)
        if len(self.training_image) > 255 or not _IMAGE.match(self.training_image):
            raise RequestError("training_image", self.training_image, "an image reference such as repo/name:tag")
        if not self.training_command or any(not part for part in self.training_command):
            raise RequestError("training_command", list(self.training_command), "a non-empty list of arguments")
        if torchrun.needed(self.plan.nodes, self.plan.count):
            torchrun.torchrun_command(self.training_command)  # one process per accelerator, or refused here
        self._check_parallel()
        for name in ("dataset_uri", "output_uri"):
            value = getattr(self, name)
            if value and not _URI.match(value):
                raise RequestError(name, value, _URI_HINT)
        if self.output_uri:
            require_servable("output_uri", self.output_uri)  # the endpoint serves the model trained there
        if not 0 <= self.keep_endpoint_minutes <= MAX_KEEP_ENDPOINT_MINUTES:
            raise RequestError("keep_endpoint_minutes", self.keep_endpoint_minutes, f"0 to {MAX_KEEP_ENDPOINT_MINUTES}")
        recoveries = self.max_recoveries
        if isinstance(recoveries, bool) or not isinstance(recoveries, int) or not 0 <= recoveries <= MAX_RECOVERIES:
            raise RequestError(
                "max_recoveries", recoveries, f"an integer from 0 (fail at the first preemption) to {MAX_RECOVERIES}"
            )
        if len(self.serving_image) > 255 or not _IMAGE.match(self.serving_image):
            raise RequestError(
                "serving_image", self.serving_image, "an image reference such as vllm/vllm-openai:v0.32.0"
            )
        if not 0 <= self.benchmark_requests <= MAX_BENCHMARK_REQUESTS:
            raise RequestError("benchmark_requests", self.benchmark_requests, f"0 (none) to {MAX_BENCHMARK_REQUESTS}")
        if not 0 < self.benchmark_rate <= MAX_BENCHMARK_RATE:
            raise RequestError(
                "benchmark_rate", self.benchmark_rate, f"requests per second in (0, {MAX_BENCHMARK_RATE}]"
            )
        if self.hf_token_conn_id and not (
            self.hf_token_conn_id.startswith(HF_CONNECTION_PREFIX) and _CONN_ID.match(self.hf_token_conn_id)
        ):
            raise RequestError(
                "hf_token_conn_id",
                self.hf_token_conn_id,
                f"the id of an Airflow connection made for the token, starting with '{HF_CONNECTION_PREFIX}' "
                f"(letters, digits, '_', '.', '-'), e.g. {HF_CONNECTION_PREFIX}default; empty for none",
            )
        serving_options(self.fields(), "validation", self.plan.count)  # checked where vLLM's rules live
        self._check_endpoint_fields()

    def _check_endpoint_fields(self) -> None:
        if self.endpoint_name and not _DNS_LABEL.match(self.endpoint_name):
            raise RequestError(
                "endpoint_name", self.endpoint_name, f"{_DNS_LABEL_HINT}; empty for an endpoint of the run's own"
            )
        if self.endpoint_name and self.keep_endpoint_minutes:
            raise RequestError(
                "keep_endpoint_minutes",
                self.keep_endpoint_minutes,
                f"0 with endpoint_name={self.endpoint_name}: a named endpoint stays until deleted with the "
                "gpu_endpoint_delete DAG",
            )
        if not 1 <= self.gate_ttft_p99_ratio <= 100:
            raise RequestError(
                "gate_ttft_p99_ratio",
                self.gate_ttft_p99_ratio,
                "from 1 to 100: the new model's TTFT p99 over the live one's",
            )
        if not 0 <= self.gate_throughput_ratio <= 100:
            raise RequestError(
                "gate_throughput_ratio",
                self.gate_throughput_ratio,
                "from 0 to 100: the new model's output tokens/s over the live one's (0 does not gate on it)",
            )
        if not isinstance(self.swap_load, bool):
            raise RequestError("swap_load", self.swap_load, "true or false")
        self._check_adapter()

    def _check_adapter(self) -> None:
        """An adapter rides on a named endpoint's live model and is served under the job's name."""
        rank = self.adapter_rank
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise RequestError("adapter_rank", rank, "0 (train and serve a whole model) or a LoRA rank >= 1")
        if not rank:
            return
        if not self.endpoint_name:
            raise RequestError(
                "adapter_rank",
                rank,
                "0 without endpoint_name: an adapter is trained on a named endpoint's live model and loaded into it "
                "(set endpoint_name)",
            )
        if self.training_parallel == "fsdp":
            raise RequestError("training_parallel", self.training_parallel, "auto or ddp for an adapter (adapter_rank)")
        if self.job_name == self.served_model_name:
            raise RequestError(
                "job_name",
                self.job_name,
                f"a name other than served_model_name ({self.served_model_name}): the adapter is served under the "
                "job's name",
            )

    def _check_parallel(self) -> None:
        if self.training_parallel not in TRAINING_PARALLEL:
            raise RequestError(
                "training_parallel",
                self.training_parallel,
                "auto (shard only a model whose training state exceeds one GPU), ddp (replicate) or fsdp (shard)",
            )
        if self.training_parallel == "fsdp" and not torchrun.needed(self.plan.nodes, self.plan.count):
            raise RequestError(
                "training_parallel",
                self.training_parallel,
                "auto or ddp for one accelerator (nodes=1, count=1): FSDP shards the model across the processes of "
                "several accelerators; or count > 1 or nodes > 1 to shard it",
            )

    def fields(self) -> dict[str, Any]:
        """The job's own fields (not the plan's) as plain data, for XCom."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "plan"}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> JobRequest:
        """Split a flat conf into planning and job fields; unknown keys are errors (typos must not pass)."""
        plan_fields = {f.name for f in fields(PlanRequest)}
        job_fields = {f.name for f in fields(cls)} - {"plan"}
        unknown = sorted(set(data) - plan_fields - job_fields)
        if unknown:
            raise RequestError(unknown[0], data[unknown[0]], f"not a job field; see {sorted(plan_fields | job_fields)}")
        plan = PlanRequest.from_mapping({k: v for k, v in data.items() if k in plan_fields})
        given = {k: v for k, v in data.items() if k in job_fields and v is not None}
        if "training_command" in given:
            given["training_command"] = _command(given["training_command"])
        for name in (
            "keep_endpoint_minutes",
            "max_recoveries",
            "max_model_len",
            "benchmark_requests",
            "max_lora_rank",
            "adapter_rank",
        ):
            if name in given:
                given[name] = _integer(name, given[name])
        for name in ("gpu_memory_utilization", "benchmark_rate", "gate_ttft_p99_ratio", "gate_throughput_ratio"):
            if name in given:
                given[name] = _number(name, given[name])
        for name in (
            "job_name",
            "training_image",
            "training_parallel",
            "dataset_uri",
            "output_uri",
            "serving_image",
            "served_model_name",
            "quantization",
            "hf_token_conn_id",
            "endpoint_name",
        ):
            if name in given and not isinstance(given[name], str):
                raise RequestError(name, given[name], "a string")
        return cls(plan=plan, **given)


def _command(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise RequestError("training_command", value, "a list of strings (or one space-separated string)")


def training_env(job: Mapping[str, Any], base_model_uri: str | None = None) -> dict[str, str]:
    """What the training pod gets in its env from the job (the output URI comes with the pool): the dataset, the
    parallel mode when the request chose one (``auto`` is the trainer's own default; a job from before the field
    has none), and for an adapter its rank and the model it adapts (the named endpoint's live one)."""
    env = {"DATASET_URI": job["dataset_uri"]} if job["dataset_uri"] else {}
    parallel = job.get("training_parallel", "auto")
    if parallel != "auto":
        env[PARALLEL_ENV] = parallel
    if job.get("adapter_rank"):
        if not base_model_uri:
            raise ValueError("an adapter run needs the base model's URI (the plan's adapter_base)")
        env.update({ADAPTER_RANK_ENV: str(job["adapter_rank"]), BASE_MODEL_ENV: base_model_uri})
    return env


def serving_options(job: Mapping[str, Any], model: str, tensor_parallel_size: int) -> VllmOptions:
    """The vLLM options for serving ``model`` (a path or URI) with a job's serving fields."""
    return VllmOptions(
        model=model,
        served_model_name=job["served_model_name"],
        max_model_len=job["max_model_len"],
        gpu_memory_utilization=job["gpu_memory_utilization"],
        tensor_parallel_size=tensor_parallel_size,
        quantization=job["quantization"],
        enable_lora=job.get("enable_lora", False),
        max_lora_rank=job.get("max_lora_rank", 16),
    )


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise RequestError(name, value, "a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RequestError(name, value, "a number") from None


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).lstrip("-").isdigit():
        raise RequestError(name, value, "an integer")
    return int(value)
