"""The smoke test passes on a healthy server and names the check that fails otherwise."""

from __future__ import annotations

import pytest
from openai_double import MODEL, StartDouble

from gpuflow.serving.client import Endpoint, OpenAIClient
from gpuflow.serving.smoke import SmokeTestFailed, smoke_test


def test_smoke_test_passes_and_records_each_latency(client: OpenAIClient) -> None:
    result = smoke_test(client, MODEL, max_tokens=4)

    assert (result.completion_text, result.chat_text) == ("w0 w1 w2 w3", "w0 w1 w2 w3")
    assert "vllm:kv_cache_usage_perc" in result.metrics
    assert set(result.latencies_s) == {"models", "completion", "chat", "metrics"}
    assert all(seconds >= 0 for seconds in result.latencies_s.values())


def test_wrong_served_name_fails_at_models(client: OpenAIClient) -> None:
    with pytest.raises(SmokeTestFailed, match="not 'other'") as failure:
        smoke_test(client, "other")

    assert failure.value.check == "models"


def test_missing_vllm_metrics_fail_at_metrics(start_double: StartDouble) -> None:
    with OpenAIClient(Endpoint(start_double(metrics=False).url)) as client, pytest.raises(SmokeTestFailed) as failure:
        smoke_test(client, MODEL)

    assert failure.value.check == "metrics"
    assert "HTTP 404" in failure.value.detail


def test_unreachable_server_fails_at_models() -> None:
    with OpenAIClient(Endpoint("http://127.0.0.1:9"), timeout_s=2) as client, pytest.raises(SmokeTestFailed) as failure:
        smoke_test(client, MODEL)

    assert failure.value.check == "models"
