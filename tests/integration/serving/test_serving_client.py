"""The OpenAI client against the test double: listing, completions, chat, streaming, metrics, errors, proxy URL."""

from __future__ import annotations

import pytest
from openai_double import MODEL

from gpuflow.serving.client import (
    KubeconfigAuth,
    OpenAIClient,
    ServerError,
    TokenChunk,
    Usage,
    service_proxy_endpoint,
)


def test_models_lists_the_served_name(client: OpenAIClient) -> None:
    assert client.models() == [MODEL]


def test_completion_and_chat_return_text_and_usage(client: OpenAIClient) -> None:
    completion = client.complete(MODEL, "one two three", max_tokens=3)
    chat = client.chat(MODEL, [{"role": "user", "content": "hi"}], max_tokens=2)

    assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == ("w0 w1 w2", 3, 3)
    assert (chat.text, chat.completion_tokens) == ("w0 w1", 2)


def test_stream_yields_one_timestamped_chunk_per_token_then_usage(client: OpenAIClient) -> None:
    events = list(client.stream_complete(MODEL, "a b", max_tokens=4, ignore_eos=True))

    chunks = [e for e in events if isinstance(e, TokenChunk)]
    assert [c.text for c in chunks] == [" w0", " w1", " w2", " w3"]
    assert [c.arrived for c in chunks] == sorted(c.arrived for c in chunks)
    assert events[-1] == Usage(prompt_tokens=2, completion_tokens=4)


def test_metrics_is_prometheus_text(client: OpenAIClient) -> None:
    client.complete(MODEL, "x", max_tokens=5)

    assert 'vllm:generation_tokens_total{model_name="tiny-llama"} 5.0' in client.metrics().splitlines()


def test_error_status_raises_with_status_and_body(client: OpenAIClient) -> None:
    with pytest.raises(ServerError, match=r"POST /v1/completions: HTTP 404: .*does not exist"):
        client.complete("other-model", "x", max_tokens=1)
    with pytest.raises(ServerError, match="HTTP 500"):
        list(client.stream_complete(MODEL, "FAIL", max_tokens=1))


def test_service_proxy_endpoint_uses_the_kubeconfig_server_and_token() -> None:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "abc123"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }

    endpoint = service_proxy_endpoint(kubeconfig, "serving", "llama-ep", "http")

    assert endpoint.base_url == "https://10.0.0.1:6443/api/v1/namespaces/serving/services/llama-ep:http/proxy"
    assert isinstance(endpoint.auth, KubeconfigAuth)
    assert endpoint.auth.headers() == {"Authorization": "Bearer abc123"}
    assert (endpoint.verify, endpoint.cert) == (False, None)
