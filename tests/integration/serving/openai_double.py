"""A test double of vLLM's OpenAI-compatible server, for testing the CLIENT side only (the pipeline serves with
real vLLM). It takes vLLM's arguments (reading --served-model-name and --port, ignoring the rest), streams one
word per SSE chunk with a final usage chunk and ``data: [DONE]``, and exposes vLLM's gauge names on /metrics.

Run as a script it is what the emulator's container runs: it binds ``GPUFLOW_EMULATOR_PORT_8000`` when set.
A prompt containing ``FAIL`` is answered with HTTP 500, so tests can count failures.
With ``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` set it loads and unloads LoRA adapters as vLLM does (the same routes,
status codes, error types and messages; tests/ml prove those against real vLLM), checking only that the path holds
``adapter_config.json`` (the emulator's proxy gives it the local folder standing in for the container's volume).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAIL_MARKER = "FAIL"
MODEL = "tiny-llama"


class Double(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], served_model_name: str, metrics: bool = True) -> None:
        super().__init__(address, Handler)
        self.served_model_name = served_model_name
        self.metrics = metrics
        self.generated = 0
        self.lock = threading.Lock()
        self.adapters: dict[str, str] = {}
        self.runtime_lora = os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "").lower() in ("1", "true")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class Handler(BaseHTTPRequestHandler):
    server: Double

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            names = [self.server.served_model_name, *self.server.adapters]
            self._json({"object": "list", "data": [{"id": name, "object": "model"} for name in names]})
        elif self.path == "/health":
            self._send(200, b"", "text/plain")
        elif self.path == "/metrics" and self.server.metrics:
            self._send(200, self._metrics().encode(), "text/plain; version=0.0.4")
        else:
            self._send(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        if self.server.runtime_lora and self.path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
            load = self.path == "/v1/load_lora_adapter"
            self._adapter(load, str(body.get("lora_name", "")), body.get("lora_path"), bool(body.get("load_inplace")))
            return
        if body.get("model") not in (self.server.served_model_name, *self.server.adapters):
            self._json({"error": {"message": f"model {body.get('model')!r} does not exist"}}, status=404)
            return
        prompt = body.get("prompt") or " ".join(m["content"] for m in body.get("messages", []))
        if FAIL_MARKER in prompt:
            self._json({"error": {"message": "injected failure"}}, status=500)
            return
        words = [f"w{i}" for i in range(int(body.get("max_tokens", 16)))]
        with self.server.lock:
            self.server.generated += len(words)
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(words)}
        if body.get("stream"):
            self._stream(words, usage if (body.get("stream_options") or {}).get("include_usage") else None)
        elif self.path == "/v1/chat/completions":
            message = {"role": "assistant", "content": " ".join(words)}
            self._json({"object": "chat.completion", "choices": [{"index": 0, "message": message}], "usage": usage})
        else:
            self._json(
                {"object": "text_completion", "choices": [{"index": 0, "text": " ".join(words)}], "usage": usage}
            )

    def _adapter(self, load: bool, name: str, path: str | None, inplace: bool) -> None:
        """vLLM's answers (vllm/entrypoints/openai/models/serving.py): 200 text, else an ErrorResponse."""
        with self.server.lock:
            refusal = _refusal(load, name, path, inplace, self.server.adapters)
            if refusal is None and load:
                self.server.adapters[name] = str(path)
            elif refusal is None:
                del self.server.adapters[name]
        if refusal is not None:
            code, kind, message = refusal
            self._json({"error": {"message": message, "type": kind, "param": None, "code": code}}, status=code)
            return
        verb = "added" if load else "removed"
        self._send(200, f"Success: LoRA adapter '{name}' {verb} successfully.".encode(), "text/plain")

    def _stream(self, words: Sequence[str], usage: dict[str, int] | None) -> None:
        """HTTP/1.0-style: no length, the connection closes after ``data: [DONE]``, as SSE over a proxy allows."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for word in words:
            self._event({"object": "text_completion", "choices": [{"index": 0, "text": f" {word}"}]})
        if usage:
            self._event({"object": "text_completion", "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, data: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()

    def _metrics(self) -> str:
        label = f'{{model_name="{self.server.served_model_name}"}}'
        return "".join(
            f"# TYPE {name} {kind}\n{name}{label} {value}\n"
            for name, kind, value in (
                ("vllm:num_requests_running", "gauge", 0.0),
                ("vllm:num_requests_waiting", "gauge", 0.0),
                ("vllm:kv_cache_usage_perc", "gauge", 0.0),
                ("vllm:generation_tokens_total", "counter", float(self.server.generated)),
            )
        )

    def _json(self, data: dict[str, Any], status: int = 200) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


StartDouble = Callable[..., Double]


def _refusal(
    load: bool, name: str, path: str | None, inplace: bool, adapters: dict[str, str]
) -> tuple[int, str, str] | None:
    """(status, error type, message) of vLLM's refusal, or None when it would do it."""
    if load and name in adapters and not inplace:
        message = (
            f"The lora adapter '{name}' has already been loaded. If you want to load the adapter in place, "
            "set 'load_inplace' to True."
        )
        return 400, "InvalidUserInput", message
    if load and not os.path.isfile(os.path.join(str(path), "adapter_config.json")):
        return 404, "NotFoundError", f"Loading lora {name} failed: No adapter found for {path}"
    if not load and name not in adapters:
        return 404, "NotFoundError", f"The lora adapter '{name}' cannot be found."
    return None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--served-model-name", required=True)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-metrics", action="store_true")
    parser.add_argument("--model", default="")
    args, _vllm_only = parser.parse_known_args(argv)
    if args.model.startswith("/") and not os.path.isfile(os.path.join(args.model, "config.json")):
        # vLLM refuses a local model directory without config.json; so does the double (the model download
        # into the pod is then what the pipeline tests prove).
        sys.exit(f"ValueError: no config.json in the model directory {args.model!r}")
    port = int(os.environ.get(f"GPUFLOW_EMULATOR_PORT_{args.port}", args.port))
    Double(("127.0.0.1", port), args.served_model_name, metrics=not args.no_metrics).serve_forever()


if __name__ == "__main__":
    main()
