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
# vLLM's error type for an adapter with nothing at its path, or no adapter of that name (vllm/exceptions.py
# LoRAAdapterNotFoundError, a VLLMNotFoundError; vllm/entrypoints/openai/models/serving.py).
NOT_FOUND = "NotFoundError"


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


class AdapterError(ServerError):
    """vLLM refused to load or unload a LoRA adapter; ``status`` and ``kind`` are its HTTP status and error type
    (e.g. 404 ``NotFoundError``: nothing at the path yet, or no adapter of that name), ``message`` its words."""

    def __init__(self, action: str, name: str, status: int, kind: str, message: str, fix: str) -> None:
        self.status = status
        self.kind = kind
        self.message = message
        super().__init__(f"{action} LoRA adapter {name!r}: HTTP {status} {kind}: {message}; {fix}")


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

    def load_lora_adapter(self, name: str, path: str, *, inplace: bool = False) -> None:
        """Load the PEFT adapter at ``path`` (a directory the server sees) as model ``name``; needs a server
        started with ``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING``. ``inplace``: replace the adapter
        already loaded under ``name`` (vLLM's ``load_inplace``; else that is a 400), or load it if there is none."""
        self._adapter("load", name, {"lora_name": name, "lora_path": path, "load_inplace": inplace})

    def unload_lora_adapter(self, name: str) -> None:
        self._adapter("unload", name, {"lora_name": name})

    def wait_and_load_lora_adapter(
        self, name: str, path: str, *, timeout_s: float, period_s: float = 2.0, inplace: bool = False
    ) -> None:
        """Load ``name``, retrying while vLLM finds nothing at ``path`` (404 NotFoundError), as until the sidecar has
        copied it; any other refusal is final, and so is the 404 once ``timeout_s`` has passed."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.load_lora_adapter(name, path, inplace=inplace)
            except AdapterError as exc:
                if exc.kind != NOT_FOUND or time.monotonic() + period_s > deadline:
                    raise
            time.sleep(period_s)

    def _adapter(self, action: str, name: str, payload: Mapping[str, str | bool]) -> None:
        response = self._http.post(f"v1/{action}_lora_adapter", json=payload)
        if response.is_success:
            return
        error = _error_body(response.text)
        kind, message = str(error.get("type", "")), str(error.get("message", response.text[:500]))
        raise AdapterError(action, name, response.status_code, kind, message, _adapter_fix(response.status_code, kind))

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


def _error_body(text: str) -> dict[str, Any]:
    """vLLM's ``ErrorResponse``: ``{"error": {"message", "type", "param", "code"}}``; empty if it is not one."""
    try:
        error = json.loads(text).get("error")
    except (json.JSONDecodeError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _adapter_fix(status: int, kind: str) -> str:
    if kind == NOT_FOUND:
        return (
            "for a load, the path must be a directory the server sees, holding adapter_config.json and "
            "adapter_model.safetensors (is the sync sidecar done copying?); for an unload, the name must be loaded"
        )
    if status == HTTPStatus.NOT_FOUND:  # FastAPI's own 404: the route is not there
        return "start the server with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora (enable_lora=True)"
    if status == HTTPStatus.BAD_REQUEST:
        return "give a name that is neither the base model's nor an adapter already loaded, and a path"
    return (
        "check the adapter against the server: its rank at most --max-lora-rank, its target modules the model's, "
        "and its base model the one served"
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
    return _proxy_endpoint(kubeconfig, namespace, "services", service, port)


def pod_proxy_endpoint(kubeconfig: Mapping[str, Any], namespace: str, pod: str, port: str | int) -> Endpoint:
    """As ``service_proxy_endpoint``, to one pod: what each replica must be told (a loaded adapter), not any one."""
    return _proxy_endpoint(kubeconfig, namespace, "pods", pod, port)


def _proxy_endpoint(kubeconfig: Mapping[str, Any], namespace: str, kind: str, name: str, port: str | int) -> Endpoint:
    auth = KubeconfigAuth(kubeconfig)
    configuration = auth.configuration
    verify: bool | str = configuration.ssl_ca_cert or bool(configuration.verify_ssl)
    cert = (configuration.cert_file, configuration.key_file) if configuration.cert_file else None
    base = f"{configuration.host.rstrip('/')}/api/v1/namespaces/{namespace}/{kind}/{name}:{port}/proxy"
    return Endpoint(base, {}, verify, cert, auth)
