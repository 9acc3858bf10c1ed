"""A small OpenAI-compatible client for a vLLM endpoint, and how to reach one through the API-server proxy.

The proxy path (``/api/v1/namespaces/NS/services/NAME:PORT/proxy/``) reuses the cluster credentials the
pipeline already has, so an endpoint needs no public IP or load balancer to be tested.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any

import httpx

DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the server is and how to authenticate: ``verify`` is a CA bundle path or a bool, ``cert`` a
    (certificate, key) pair of file paths for client-certificate clusters, ``auth`` credentials that must be
    renewed while the client lives (``KubeconfigAuth``)."""

    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    verify: bool | str = True
    cert: tuple[str, str] | None = None
    auth: httpx.Auth | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    prompt_tokens: int | None
    completion_tokens: int | None


@dataclass(frozen=True, slots=True)
class TokenChunk:
    """Text of one streamed chunk and when it arrived (``time.perf_counter()``, as ``vllm bench`` records)."""

    text: str
    arrived: float


@dataclass(frozen=True, slots=True)
class Usage:
    """The usage record that ends a stream when ``stream_options.include_usage`` is set."""

    prompt_tokens: int | None
    completion_tokens: int | None


class ServerError(Exception):
    """The server answered with an error status or a body that is not what the OpenAI API describes."""


class OpenAIClient:
    """Synchronous and thread-safe (one ``httpx.Client``), so a benchmark may share it between threads."""

    def __init__(self, endpoint: Endpoint, *, timeout_s: float = DEFAULT_TIMEOUT_S, max_connections: int = 256):
        self._http = httpx.Client(
            base_url=endpoint.base_url.rstrip("/") + "/",
            headers=dict(endpoint.headers),
            verify=endpoint.verify,
            cert=endpoint.cert,
            auth=endpoint.auth,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def __enter__(self) -> OpenAIClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def models(self) -> list[str]:
        """The ids of the served models (vLLM lists ``--served-model-name``)."""
        return [str(model["id"]) for model in self._json("GET", "v1/models").get("data", [])]

    def complete(self, model: str, prompt: str, max_tokens: int, *, temperature: float | None = None) -> Completion:
        """One completion; ``temperature`` 0 makes it greedy (the same model answers a prompt the same way)."""
        payload: dict[str, Any] = {"model": model, "prompt": prompt, "max_tokens": max_tokens}
        if temperature is not None:
            payload["temperature"] = temperature
        body = self._json("POST", "v1/completions", payload)
        return Completion(_first_choice(body).get("text") or "", *_usage(body.get("usage")))

    def chat(self, model: str, messages: Sequence[Mapping[str, str]], max_tokens: int) -> Completion:
        payload = {"model": model, "messages": list(messages), "max_tokens": max_tokens}
        body = self._json("POST", "v1/chat/completions", payload)
        message = _first_choice(body).get("message") or {}
        return Completion(message.get("content") or "", *_usage(body.get("usage")))

    def stream_complete(
        self, model: str, prompt: str, max_tokens: int, *, ignore_eos: bool = False
    ) -> Iterator[TokenChunk | Usage]:
        """Stream a completion: a ``TokenChunk`` per chunk with choices, then one ``Usage``.

        The request is sent when iteration starts. ``ignore_eos`` (a vLLM extension) makes the server
        generate exactly ``max_tokens``, as a benchmark wants.
        """
        payload = {
            "model": model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "ignore_eos": ignore_eos,
        }
        with self._http.stream("POST", "v1/completions", json=payload) as response:
            _raise_for_status(response, read=True)
            for line in response.iter_lines():
                data = line.strip().removeprefix("data:").strip()
                if not data or data == "[DONE]":
                    continue
                event = _parse(data)
                if choices := event.get("choices"):
                    yield TokenChunk(choices[0].get("text") or "", time.perf_counter())
                elif event.get("usage"):
                    yield Usage(*_usage(event["usage"]))

    def metrics(self) -> str:
        """The Prometheus text exposition of ``/metrics``."""
        response = self._http.get("metrics")
        _raise_for_status(response)
        return response.text

    def _json(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = self._http.request(method, path, json=payload)
        _raise_for_status(response)
        return _parse(response.text)


def _raise_for_status(response: httpx.Response, *, read: bool = False) -> None:
    if response.is_success:
        return
    if read:
        response.read()
    raise ServerError(
        f"{response.request.method} {response.request.url.path}: HTTP {response.status_code}: {response.text[:500]}"
    )


def _parse(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ServerError(f"not JSON: {text[:200]!r}") from exc
    if not isinstance(body, dict):
        raise ServerError(f"not a JSON object: {text[:200]!r}")
    return body


def _first_choice(body: Mapping[str, Any]) -> dict[str, Any]:
    choices = body.get("choices") or [{}]
    return dict(choices[0])


def _usage(usage: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    usage = usage or {}
    return usage.get("prompt_tokens"), usage.get("completion_tokens")


class KubeconfigAuth(httpx.Auth):
    """The bearer token of a kubeconfig's current context, renewed while a client lives.

    Cluster tokens are short-lived (EKS about 15 minutes, GKE and Entra about an hour) and a smoke test or
    benchmark may outlast one. Every request asks the kubernetes client's loader, which runs the exec plugin
    again once the token's ``expirationTimestamp`` has passed; a 401 (the server expired it first) reloads the
    kubeconfig and retries the request once. Thread-safe: a benchmark shares one client between threads, and
    one renewal serves every request that was refused with the same token.
    """

    def __init__(self, kubeconfig: Mapping[str, Any]) -> None:
        self._kubeconfig = dict(kubeconfig)
        self._lock = threading.Lock()
        self.configuration = self._load()

    def headers(self, refused: Mapping[str, str] | None = None) -> dict[str, str]:
        """The current auth headers; renewed first if ``refused`` (the headers a 401 answered) are still current."""
        with self._lock:
            hook = self.configuration.refresh_api_key_hook
            if hook is not None:
                hook(self.configuration)
            current = _auth_headers(self.configuration)
            if refused is not None and current == refused:
                self.configuration = self._load()
                current = _auth_headers(self.configuration)
            return current

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sent = self.headers()
        request.headers.update(sent)
        response = yield request
        if response.status_code == HTTPStatus.UNAUTHORIZED:
            request.headers.update(self.headers(refused=sent))
            yield request

    def _load(self) -> Any:
        # Imported here: the kubernetes package takes seconds to import, and only this helper needs it.
        from kubernetes.client import Configuration
        from kubernetes.config.kube_config import KubeConfigLoader

        configuration = Configuration()
        KubeConfigLoader(config_dict=self._kubeconfig).load_and_set(configuration)
        return configuration


def _auth_headers(configuration: Any) -> dict[str, str]:
    # auth_settings() hides where the client keeps the token (the key changed in kubernetes 36).
    return {
        setting["key"].title(): setting["value"]
        for setting in configuration.auth_settings().values()
        if setting["in"] == "header" and setting["value"]
    }


def service_proxy_endpoint(kubeconfig: Mapping[str, Any], namespace: str, service: str, port: str | int) -> Endpoint:
    """The ``Endpoint`` of a Service's port through the API server's proxy, authenticated as ``kubeconfig``'s
    current context (bearer token, exec plugin or client certificate, with its CA) by the kubernetes client's
    own loader, so every auth method it supports works here too; tokens are renewed (``KubeconfigAuth``)."""
    auth = KubeconfigAuth(kubeconfig)
    configuration = auth.configuration
    verify: bool | str = configuration.ssl_ca_cert or bool(configuration.verify_ssl)
    cert = (configuration.cert_file, configuration.key_file) if configuration.cert_file else None
    base = f"{configuration.host.rstrip('/')}/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy"
    return Endpoint(base, {}, verify, cert, auth)
