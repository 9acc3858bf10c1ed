"""Import each DAG file with the network blocked and report its own import time, as JSON on stdout.

Run in a fresh interpreter: ``python -m tests.support.dag_import_probe FILE...``. The modules a DAG file
imports at the top are imported first, as Airflow's DAG processor does (``parsing_pre_import_modules``:
it imports them once in its parent process before forking a parser per file), so their one-off cost is
not charged to the file; what remains is the file's own top-level work, paid on every parse.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any, NoReturn


class NetworkAtImportError(RuntimeError):
    """A DAG file tried to reach the network while being parsed."""


def _refuse(*args: Any, **kwargs: Any) -> NoReturn:
    raise NetworkAtImportError(f"network call at DAG import time: {args[:2]!r}")


def block_network() -> None:
    socket.socket.connect = _refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = _refuse  # type: ignore[method-assign]
    socket.create_connection = _refuse
    socket.getaddrinfo = _refuse


def import_seconds(path: str) -> dict[str, Any]:
    """The file's own import time: CPU seconds (its computing, not slowed by other processes on a busy machine)
    and wall seconds (which also count waiting: sleeps, I/O)."""
    spec = importlib.util.spec_from_file_location(f"probe_{abs(hash(path))}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    wall, cpu = time.perf_counter(), time.process_time()
    error = None
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # any error is the finding
        error = f"{type(exc).__name__}: {exc}"
    return {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu, "error": error}


def pre_import(path: str) -> None:
    """Import the modules the file imports at its top level, like the DAG processor's pre-import."""
    tree = ast.parse(Path(path).read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            importlib.import_module(node.module)


def main(paths: list[str]) -> None:
    for path in paths:
        pre_import(path)
    block_network()
    print(json.dumps({path: import_seconds(path) for path in paths}))


if __name__ == "__main__":
    main(sys.argv[1:])
