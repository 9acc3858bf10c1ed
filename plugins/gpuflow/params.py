"""The trigger form: Airflow ``Param`` definitions shared by every gpuflow DAG, grouped in sections.

The JSON schemas reject out-of-range values before a run starts; the first task validates the rest
(names, accelerators, images) with the same messages as the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Param

from gpuflow.core.clouds import CLOUDS
from gpuflow.core.job import (
    DEFAULT_GATE_THROUGHPUT_RATIO,
    DEFAULT_GATE_TTFT_P99_RATIO,
    DEFAULT_RECOVERIES,
    MAX_KEEP_ENDPOINT_MINUTES,
    MAX_RECOVERIES,
    TRAINING_PARALLEL,
)
from gpuflow.core.request import DEFAULT_SPOT_ALLOWANCE, MAX_ACCELERATORS_PER_NODE, MAX_NODES, CapacityPreference
from gpuflow.core.vllm_options import MAX_LORA_RANKS

WHAT, WHERE, COST, TRAINING, SERVING = "What to run on", "Where", "Cost", "Training", "Serving"
PROMOTION = "Named endpoint (live model swap)"


def planning_params(
    *, accelerator: str = "H100", count: int = 8, capacity: str = "spot-then-on-demand"
) -> dict[str, Any]:
    """Form fields of a ``PlanRequest``."""
    return {
        "accelerator": Param(
            accelerator,
            type=["null", "string"],
            title="Accelerator",
            description="GPU or TPU model, e.g. H100, A100-80GB, L4, tpu-v5p-8. Leave empty to choose by memory.",
            section=WHAT,
        ),
        "min_memory_gib": Param(
            None,
            type=["null", "number"],
            minimum=1,
            title="Minimum memory per accelerator (GiB)",
            description="Any accelerator with at least this much memory (with or instead of a model name).",
            section=WHAT,
        ),
        "count": Param(
            count,
            type="integer",
            minimum=1,
            maximum=MAX_ACCELERATORS_PER_NODE,
            title="Accelerators per node",
            description="Also the tensor-parallel size of the endpoint.",
            section=WHAT,
        ),
        "nodes": Param(1, type="integer", minimum=1, maximum=MAX_NODES, title="Nodes", section=WHAT),
        "capacity": Param(
            capacity,
            type="string",
            enum=[c.value for c in CapacityPreference],
            title="Capacity type",
            description="spot-then-on-demand tries spot offers first, keeping a third of the fallbacks for on-demand.",
            section=WHERE,
        ),
        "clouds": Param(
            list(CLOUDS),
            type="array",
            items={"type": "string", "enum": list(CLOUDS)},
            minItems=1,
            title="Allowed clouds",
            section=WHERE,
        ),
        "regions": Param(
            ["*"],
            type="array",
            items={"type": "string", "pattern": "^[a-z0-9*?\\[\\]-]+$"},
            minItems=1,
            title="Allowed regions",
            description="Region names or globs, e.g. us-* or europe-west4.",
            section=WHERE,
        ),
        "max_hourly_usd": Param(
            None, type=["null", "number"], exclusiveMinimum=0, title="Max USD per hour (whole pool)", section=COST
        ),
        "budget_usd": Param(
            None, type=["null", "number"], exclusiveMinimum=0, title="Budget in USD (whole job)", section=COST
        ),
        "estimated_hours": Param(
            1.0, type="number", exclusiveMinimum=0, title="Estimated hours the pool is held", section=COST
        ),
        "deadline_hours": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            title="Deadline (hours from the start)",
            description="Training must finish within this many hours of the run's start; more than the estimated "
            "hours. Spot is planned only on clouds where the time to spare absorbs one more preemption. Empty for "
            "no deadline.",
            section=COST,
        ),
        "spot_allowance": Param(
            DEFAULT_SPOT_ALLOWANCE,
            type="number",
            minimum=0,
            maximum=5,
            title="Spot preemption allowance",
            description="Extra share of GPU-hours budgeted for work redone after spot preemptions.",
            section=COST,
        ),
    }


def job_params(*, training_image: str, training_command: list[str]) -> dict[str, Any]:
    """Form fields of a ``JobRequest`` beyond planning."""
    return {
        "job_name": Param(
            "gpuflow-job",
            type="string",
            pattern="^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$",
            title="Job name",
            description="Lowercase letters, digits and '-'; names the training pod and the endpoint.",
            section=TRAINING,
        ),
        "training_image": Param(training_image, type="string", maxLength=255, title="Training image", section=TRAINING),
        "training_command": Param(
            training_command,
            type="array",
            items={"type": "string"},
            minItems=1,
            title="Training command",
            section=TRAINING,
        ),
        "training_parallel": Param(
            "auto",
            type="string",
            enum=list(TRAINING_PARALLEL),
            values_display={
                "auto": "auto: shard only a model too big for one GPU",
                "ddp": "ddp: every process holds the whole model",
                "fsdp": "fsdp: shard the model across the processes",
            },
            title="Data parallel mode",
            description="With more than one accelerator: replicate the model (DDP) or shard it (FSDP). gpuflow's "
            "trainer reads it as GPUFLOW_TRAIN_PARALLEL; checkpoints are whole either way.",
            section=TRAINING,
        ),
        "dataset_uri": Param(
            None,
            type=["null", "string"],
            title="Dataset URI",
            description="Path or s3://, gs://, az:// URI; empty for none.",
            section=TRAINING,
        ),
        "output_uri": Param(
            None,
            type=["null", "string"],
            title="Output URI",
            description=(
                "Where the trained model is written: s3://, gs://, az://ACCOUNT/CONTAINER; empty for the bucket of "
                "the cluster the run lands on."
            ),
            section=TRAINING,
        ),
        "max_recoveries": Param(
            DEFAULT_RECOVERIES,
            type="integer",
            minimum=0,
            maximum=MAX_RECOVERIES,
            title="Max recoveries",
            description="How many times a run may get a new pool and resume training from its checkpoint after a spot "
            "preemption or a lost node; 0 fails the run at the first one.",
            section=TRAINING,
        ),
        "serving_image": Param(
            "vllm/vllm-openai:v0.32.0", type="string", maxLength=255, title="vLLM image (pinned)", section=SERVING
        ),
        "served_model_name": Param(
            "gpuflow-model",
            type="string",
            pattern="^\\S+$",
            title="Served model name",
            description="The name clients ask for in /v1/completions.",
            section=SERVING,
        ),
        "max_model_len": Param(
            None, type=["null", "integer"], minimum=1, title="Max model length (tokens)", section=SERVING
        ),
        "gpu_memory_utilization": Param(
            0.9, type="number", exclusiveMinimum=0, maximum=1, title="GPU memory utilization", section=SERVING
        ),
        "quantization": Param(
            None,
            type=["null", "string"],
            title="Quantization",
            description="Empty reads it from the checkpoint; awq is served with the awq_marlin kernel.",
            section=SERVING,
        ),
        "hf_token_conn_id": Param(
            None,
            type=["null", "string"],
            title="Hugging Face token connection",
            description="An Airflow connection whose id starts with hf_ and whose password is the token (for "
            "gated models); empty for none.",
            section=SERVING,
        ),
        "benchmark_requests": Param(
            20, type="integer", minimum=0, maximum=10_000, title="Benchmark requests (0: no benchmark)", section=SERVING
        ),
        "benchmark_rate": Param(
            4.0, type="number", exclusiveMinimum=0, maximum=1000, title="Benchmark rate (requests/s)", section=SERVING
        ),
        "keep_endpoint_minutes": Param(
            0,
            type="integer",
            minimum=0,
            maximum=MAX_KEEP_ENDPOINT_MINUTES,
            title="Keep the endpoint (minutes)",
            description="0 tears the endpoint down at the end of the run; N keeps it serving (and its GPU pool "
            "costing) N more minutes, after which the gpu_janitor DAG deletes it.",
            section=SERVING,
        ),
        "endpoint_name": Param(
            None,
            type=["null", "string"],
            pattern="^([a-z]([a-z0-9-]{0,38}[a-z0-9])?)?$",
            title="Named endpoint",
            description="A long-lived endpoint to promote the trained model onto: created if it does not exist, else "
            "the new model replaces the live one with no failed request, if it passes the gate below. It stays until "
            "the gpu_endpoint_delete DAG deletes it. Empty: the run's own endpoint, torn down at its end.",
            section=PROMOTION,
        ),
        "gate_ttft_p99_ratio": Param(
            DEFAULT_GATE_TTFT_P99_RATIO,
            type="number",
            minimum=1,
            maximum=100,
            title="Gate: max TTFT p99 ratio",
            description="The new model's time to first token (p99) may be at most this many times the live one's.",
            section=PROMOTION,
        ),
        "gate_throughput_ratio": Param(
            DEFAULT_GATE_THROUGHPUT_RATIO,
            type="number",
            minimum=0,
            maximum=100,
            title="Gate: min output tokens/s ratio",
            description="The new model's output tokens/s must be at least this fraction of the live one's.",
            section=PROMOTION,
        ),
        "swap_load": Param(
            True,
            type="boolean",
            title="Measure the swap",
            description="Send one request at a time through the endpoint for the whole swap and report failed "
            "requests and latency.",
            section=PROMOTION,
        ),
        "enable_lora": Param(
            False,
            type="boolean",
            title="Load LoRA adapters at run time",
            description="Start the endpoint able to load LoRA adapters without a restart; a named endpoint also "
            "mirrors its adapters folder. Needed by the adapter runs below.",
            section=PROMOTION,
        ),
        "max_lora_rank": Param(
            16, type="integer", enum=sorted(MAX_LORA_RANKS), title="Largest adapter rank served", section=PROMOTION
        ),
        "adapter_rank": Param(
            0,
            type="integer",
            minimum=0,
            maximum=max(MAX_LORA_RANKS),
            title="Train an adapter (LoRA rank; 0: a whole model)",
            description="Above 0: train a LoRA adapter on the named endpoint's live model and load it there, served "
            "as the job name: no new revision, no restart. The endpoint must serve with LoRA on.",
            section=PROMOTION,
        ),
    }


def with_defaults(params: Mapping[str, Param], defaults: Mapping[str, Any], *, source: str) -> dict[str, Param]:
    """The same form with other default values (e.g. a config file's, named by ``source``). Each field keeps its
    schema; Airflow checks every default against it when a scheduled DAG is defined (its runs take the defaults)."""
    unknown = sorted(set(defaults) - set(params))
    if unknown:
        name = unknown[0]
        raise ValueError(
            f"{source}: {name}={defaults[name]!r} is not a field of the trigger form ({', '.join(params)})"
        )
    return {
        name: Param(defaults[name], param.description, schema=param.schema) if name in defaults else param
        for name, param in params.items()
    }
