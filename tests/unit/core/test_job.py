"""JobRequest: the whole run conf validated at once; every refusal names the field, the value and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from gpuflow.core.errors import RequestError
from gpuflow.core.job import JobRequest, training_env

BASE: dict[str, Any] = {"accelerator": "L4"}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("job_name", "Not DNS safe!", "1-40 lowercase letters"),
        ("training_image", "has spaces:1", "an image reference"),
        ("training_command", ["python", ""], "a non-empty list of arguments"),
        ("dataset_uri", "ftp://host/data", "an absolute path or a URI"),
        ("keep_endpoint_minutes", 24 * 60 + 1, "0 to 1440"),
        ("max_recoveries", 21, "an integer from 0 (fail at the first preemption) to 20"),
        ("max_recoveries", -1, "an integer from 0"),
        ("max_recoveries", "three", "an integer"),
        ("max_recoveries", True, "an integer"),
        ("benchmark_rate", 0.0, "requests per second"),
        ("hf_token_conn_id", "gpuflow_azure", "starting with 'hf_'"),
        ("hf_token_conn_id", "hf_has space", "starting with 'hf_'"),
        ("served_model_name", 7, "a string"),
        ("training_parallel", "zero3", "auto (shard only a model whose training state exceeds one GPU), ddp"),
        ("training_parallel", 2, "a string"),
        ("jobname", "x", "not a job field"),
        ("endpoint_name", "Chat_Bot", "1-40 lowercase letters"),
        ("endpoint_name", 3, "a string"),
        ("gate_ttft_p99_ratio", 0.5, "from 1 to 100"),
        ("gate_throughput_ratio", -0.1, "from 0 to 100"),
        ("gate_throughput_ratio", "fast", "a number"),
        ("swap_load", "yes", "true or false"),
        ("adapter_rank", -1, "0 (train and serve a whole model) or a LoRA rank >= 1"),
        ("adapter_rank", 8, "0 without endpoint_name"),
        ("adapter_rank", "eight", "an integer"),
        ("max_lora_rank", 12, "one of vLLM"),
        ("enable_lora", "yes", "True to load LoRA adapters"),
    ],
)
def test_a_bad_field_is_refused_with_its_name_value_and_fix(field: str, value: Any, expected: str) -> None:
    with pytest.raises(RequestError) as error:
        JobRequest.from_mapping({**BASE, field: value})
    assert error.value.field == field
    assert str(error.value).startswith(f"{field}={value!r} is invalid: ")
    assert expected in error.value.expected


@pytest.mark.parametrize(
    ("conf", "field", "expected"),
    [
        ({"nodes": 2, "training_command": ["python", "-c", "pass"]}, "training_command", "torchrun can start"),
        ({"count": 2, "training_command": ["bash", "train.sh"]}, "training_command", "torchrun can start"),
        ({"training_parallel": "fsdp"}, "training_parallel", "auto or ddp for one accelerator (nodes=1, count=1)"),
    ],
)
def test_a_shape_that_cannot_use_its_accelerators_is_refused(conf: dict[str, Any], field: str, expected: str) -> None:
    with pytest.raises(RequestError) as error:
        JobRequest.from_mapping({**BASE, **conf})
    assert error.value.field == field
    assert expected in error.value.expected


@pytest.mark.parametrize(
    "conf",
    [
        {"nodes": 2, "capacity": "on-demand"},
        {"nodes": 2, "capacity": "spot"},  # a lost node is recovered: a new Job resumes from the checkpoint
        {"nodes": 2, "capacity": "spot-then-on-demand"},
        {"nodes": 4, "count": 8, "capacity": "on-demand"},
        {"count": 4, "capacity": "spot"},
        {"training_command": ["python", "-c", "pass"]},  # one process: the command runs as it is
        {"count": 2, "training_parallel": "fsdp"},
        {"nodes": 2, "count": 1, "capacity": "on-demand", "training_parallel": "fsdp"},
    ],
)
def test_every_accelerator_shape_with_a_torchrun_program_is_accepted(conf: dict[str, Any]) -> None:
    assert JobRequest.from_mapping({**BASE, **conf}).plan.nodes == conf.get("nodes", 1)


def test_only_a_connection_made_for_the_token_may_reach_the_endpoint() -> None:
    assert JobRequest.from_mapping({**BASE, "hf_token_conn_id": "hf_default"}).hf_token_conn_id == "hf_default"
    assert JobRequest.from_mapping({**BASE, "hf_token_conn_id": None}).hf_token_conn_id == ""


def test_an_output_uri_the_endpoint_cannot_serve_from_is_refused_before_training() -> None:
    """The model is served from ``output_uri``: an abfs:// one used to pass here and fail at deploy, after
    the training was paid for."""
    uri = "abfs://container@account.dfs.core.windows.net/run"
    with pytest.raises(RequestError) as error:
        JobRequest.from_mapping({**BASE, "output_uri": uri})
    assert error.value.field == "output_uri"
    assert str(error.value).startswith(f"output_uri={uri!r} is invalid: ")
    assert "az://ACCOUNT/CONTAINER/PATH" in error.value.expected
    assert JobRequest.from_mapping({**BASE, "dataset_uri": uri}).dataset_uri == uri  # training reads any fsspec URI


def test_a_run_recovers_three_times_unless_told_otherwise() -> None:
    assert JobRequest.from_mapping(BASE).max_recoveries == 3
    assert JobRequest.from_mapping({**BASE, "max_recoveries": "0"}).max_recoveries == 0
    assert JobRequest.from_mapping({**BASE, "max_recoveries": 20}).fields()["max_recoveries"] == 20


def test_a_named_endpoint_stays_until_deleted_so_a_keep_time_is_refused_with_it() -> None:
    with pytest.raises(RequestError) as error:
        JobRequest.from_mapping({**BASE, "endpoint_name": "chat", "keep_endpoint_minutes": 30})
    assert error.value.field == "keep_endpoint_minutes"
    assert "gpu_endpoint_delete" in error.value.expected


def test_a_named_endpoint_is_gated_and_measured_by_default() -> None:
    job = JobRequest.from_mapping({**BASE, "endpoint_name": "chat"})
    assert (job.gate_ttft_p99_ratio, job.gate_throughput_ratio, job.swap_load) == (1.5, 0.67, True)
    assert JobRequest.from_mapping(BASE).endpoint_name == ""


def test_the_training_pod_gets_the_parallel_mode_the_request_chose() -> None:
    sharded = JobRequest.from_mapping({**BASE, "count": 8, "training_parallel": "fsdp", "dataset_uri": "s3://b/d"})
    assert training_env(sharded.fields()) == {"DATASET_URI": "s3://b/d", "GPUFLOW_TRAIN_PARALLEL": "fsdp"}
    assert training_env(JobRequest.from_mapping({**BASE, "training_parallel": "ddp"}).fields()) == {
        "GPUFLOW_TRAIN_PARALLEL": "ddp"
    }


def test_auto_and_a_job_from_before_the_field_leave_the_choice_to_the_trainer() -> None:
    fields = JobRequest.from_mapping(BASE).fields()
    assert fields["training_parallel"] == "auto"
    assert training_env(fields) == {}
    del fields["training_parallel"]  # an in-flight run's XCom written by the previous version
    assert training_env(fields) == {}


@pytest.mark.parametrize(
    ("conf", "field", "expected"),
    [
        ({"training_parallel": "fsdp", "count": 2}, "training_parallel", "auto or ddp for an adapter"),
        ({"job_name": "chat", "served_model_name": "chat"}, "job_name", "the adapter is served under the job's name"),
    ],
)
def test_an_adapter_run_that_cannot_work_is_refused(conf: dict[str, Any], field: str, expected: str) -> None:
    with pytest.raises(RequestError) as error:
        JobRequest.from_mapping({**BASE, "endpoint_name": "chat", "adapter_rank": 8, **conf})
    assert error.value.field == field
    assert expected in error.value.expected


def test_an_adapter_run_trains_on_the_base_model_it_is_given() -> None:
    job = JobRequest.from_mapping({**BASE, "endpoint_name": "chat", "adapter_rank": "8", "job_name": "tuned"})
    assert training_env(job.fields(), "gs://b/r/model") == {
        "GPUFLOW_TRAIN_ADAPTER_RANK": "8",
        "BASE_MODEL_URI": "gs://b/r/model",
    }
    with pytest.raises(ValueError, match="base model"):
        training_env(job.fields())
