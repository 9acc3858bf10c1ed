"""The smoke test of a fresh endpoint: it serves the model, answers both APIs and exports vLLM's metrics.

Each check raises ``SmokeTestFailed`` naming the check, so a failed run says what is broken, not just "failed".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx

from gpuflow.core.errors import GpuflowError
from gpuflow.serving.client import OpenAIClient, ServerError

T = TypeVar("T")
# vLLM's own gauges (``kv_cache_usage_perc`` replaced the deprecated ``gpu_cache_usage_perc``).
REQUIRED_METRICS = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")
PROMPT = "The capital of France is"
CHAT = ({"role": "user", "content": "Say hello in one word."},)


class SmokeTestFailed(GpuflowError):
    """One check of the smoke test failed; ``check`` names it (models, completion, chat or metrics)."""

    def __init__(self, check: str, detail: str) -> None:
        self.check = check
        self.detail = detail
        super().__init__(f"smoke test failed at {check}: {detail}")


@dataclass(frozen=True, slots=True)
class SmokeResult:
    model: str
    completion_text: str
    chat_text: str
    metrics: tuple[str, ...]
    latencies_s: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "completion_text": self.completion_text,
            "chat_text": self.chat_text,
            "metrics": list(self.metrics),
            "latencies_s": dict(self.latencies_s),
        }


def smoke_test(
    client: OpenAIClient,
    served_model_name: str,
    *,
    max_tokens: int = 16,
    required_metrics: tuple[str, ...] = REQUIRED_METRICS,
) -> SmokeResult:
    """Run every check in order; returns the texts and the latency of each call in seconds."""
    latencies: dict[str, float] = {}

    def timed(check: str, call: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return call()
        except (ServerError, httpx.HTTPError) as exc:
            raise SmokeTestFailed(check, str(exc)) from exc
        finally:
            latencies[check] = time.perf_counter() - start

    models = timed("models", client.models)
    if served_model_name not in models:
        raise SmokeTestFailed("models", f"/v1/models lists {models}, not {served_model_name!r}")
    completion = timed("completion", lambda: client.complete(served_model_name, PROMPT, max_tokens))
    if not completion.text.strip():
        raise SmokeTestFailed("completion", "/v1/completions returned no text")
    chat = timed("chat", lambda: client.chat(served_model_name, CHAT, max_tokens))
    if not chat.text.strip():
        raise SmokeTestFailed("chat", "/v1/chat/completions returned no text")
    exposition = timed("metrics", client.metrics)
    missing = [name for name in required_metrics if not _exposes(exposition, name)]
    if missing:
        raise SmokeTestFailed("metrics", f"/metrics lacks {', '.join(missing)}")
    return SmokeResult(served_model_name, completion.text, chat.text, required_metrics, latencies)


def _exposes(exposition: str, metric: str) -> bool:
    """True when a sample line of ``metric`` is present (with or without labels)."""
    return any(line.startswith((metric + "{", metric + " ")) for line in exposition.splitlines())
