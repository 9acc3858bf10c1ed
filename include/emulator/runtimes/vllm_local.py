"""Run a ``vllm/vllm-openai:*`` container's arguments as real vLLM on this machine's CPU (the emulator's runtime).

The emulator maps the image to ``python include/emulator/runtimes/vllm_local.py`` and passes the container's
args unchanged (``--model DIR --port 8000 --host 0.0.0.0 ...``). This wrapper:

- binds the local port the emulator assigned (``GPUFLOW_EMULATOR_PORT_8000``) on 127.0.0.1 instead of the
  container's port and host, so probes and the service proxy reach it;
- sets ``HF_HUB_OFFLINE=1`` and ``VLLM_CPU_KVCACHE_SPACE`` (GiB) unless set, since nothing is downloaded and a
  tiny model needs a small KV cache; and ``VLLM_CACHE_ROOT`` to ``.emulator/vllm-cache`` in the checkout, because
  the emulator gives each pod a fresh HOME and vLLM's compile cache there would be rebuilt on every deploy; and
  ``VLLM_CPU_OMP_THREADS_BIND=nobind``: vLLM-cpu pins its worker to cores it picks, and two servers on one machine
  (a named endpoint's live and new revisions) both pick core 0 and starve each other;
- drops flags that only mean something on a GPU (``--gpu-memory-utilization``, ``--tensor-parallel-size``
  above 1 becomes 1: one CPU "device");
- execs ``.venv-ml``'s ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script of the
  vllm-cpu build does not start: its package metadata is under another name).

Without ``.venv-ml`` it exits 78 (EX_CONFIG) with a message saying to run ``make ml-env``. It uses only the
standard library, because it runs under the emulator's interpreter (the Airflow env), which has no vLLM.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

CONTAINER_PORT = 8000
PORT_VARIABLE = f"GPUFLOW_EMULATOR_PORT_{CONTAINER_PORT}"
ML_PYTHON_VARIABLE = "GPUFLOW_ML_PYTHON"  # overrides where the ML env's interpreter is
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_ML_PYTHON = REPO_ROOT / ".venv-ml" / "bin" / "python"
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
EX_CONFIG = 78
DEFAULT_ENV = {
    "HF_HUB_OFFLINE": "1",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CACHE_ROOT": str(REPO_ROOT / ".emulator" / "vllm-cache"),
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
}
# flag -> does it take a value; these are GPU-only and the CPU build would refuse or misread them.
DROPPED_FLAGS = {"--gpu-memory-utilization": True}


def local_args(args: Sequence[str], port: str) -> list[str]:
    """The container's args with host/port made local and GPU-only flags removed (``--flag=value`` too)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        flag, has_inline, _ = arg.partition("=")
        if flag in {"--port", "--host", *DROPPED_FLAGS}:
            takes_value = flag in {"--port", "--host"} or DROPPED_FLAGS[flag]
            i += 1 if has_inline or not takes_value else 2
            continue
        if flag == "--tensor-parallel-size":
            out += ["--tensor-parallel-size", "1"]
            i += 1 if has_inline else 2
            continue
        out.append(arg)
        i += 1
    return [*out, "--host", "127.0.0.1", "--port", port]


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ if env is None else env)
    python = Path(environ.get(ML_PYTHON_VARIABLE) or DEFAULT_ML_PYTHON)
    if not os.access(python, os.X_OK):
        print(
            f"vllm_local: the ML environment is missing ({python} not found). Local serving runs real vLLM on "
            "the CPU from its own environment; install it once with `make ml-env` (a few minutes, about 3.5 GB), "
            "then redeploy.",
            file=sys.stderr,
            flush=True,
        )
        return EX_CONFIG
    port = environ.get(PORT_VARIABLE)
    if not port:
        print(
            f"vllm_local: {PORT_VARIABLE} is not set; the emulator assigns it for containerPort "
            f"{CONTAINER_PORT} (is the port declared in the container spec?)",
            file=sys.stderr,
            flush=True,
        )
        return EX_CONFIG
    for key, value in DEFAULT_ENV.items():
        environ.setdefault(key, value)
    command = [str(python), "-m", SERVER_MODULE, *local_args(args, port)]
    print(f"vllm_local: exec {' '.join(command)}", flush=True)
    os.execve(str(python), command, environ)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
