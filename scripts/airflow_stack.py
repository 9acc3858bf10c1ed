"""Airflow's own components (api-server, scheduler, dag-processor, triggerer) as local processes, and a REST client.

Used by ``make demo`` and the end-to-end tests that need a running Airflow. Separate components rather than
``airflow standalone``: standalone starts 32 LocalExecutor workers on this machine and leaves children behind
on SIGTERM (shared/notes/airflow-on-this-machine.md). Each component runs in its own process group, so
stopping the stack stops every process it started and nothing else.

Users come from the simple auth manager: ``admin`` (may trigger) and ``viewer`` (read-only), with passwords
written to a file in the stack's home.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from gpuflow_emulator.lifetime import die_with_parent

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
USERS = ("admin", "viewer")
TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class StackError(RuntimeError):
    """A component did not start, or the REST API answered something unexpected."""


@dataclass
class AirflowStack:
    """A running set of Airflow components on ``url``, with a REST client for its users."""

    home: Path
    url: str
    passwords: dict[str, str]
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)
    peak_memory_bytes: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def start(
        cls,
        home: Path,
        *,
        port: int,
        env: Mapping[str, str] | None = None,
        database_url: str | None = None,
        parallelism: int = 4,
        healthy_within_s: float = 120,
    ) -> AirflowStack:
        """Migrate the DB, create the ``gpu`` pool (``include/config/pools.json``), start the four components and
        wait until all are healthy.

        The metadata DB is ``database_url`` (e.g. Postgres), else a SQLite file in ``home``.
        """
        home.mkdir(parents=True, exist_ok=True)
        passwords = {user: secrets.token_urlsafe(12) for user in USERS}
        (home / "passwords.json").write_text(json.dumps(passwords))
        url = f"http://127.0.0.1:{port}"
        stack_env = {
            **os.environ,
            **(env or {}),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url or f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            # A task re-parses its DAG file at start; on a busy two-core machine that took over the 30 s default.
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "180",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "PYTHONUNBUFFERED": "1",
        }
        stack = cls(home=home, url=url, passwords=passwords, env=stack_env)
        stack._airflow("db", "migrate")
        stack._run("-m", "gpuflow", "state-migrate")  # gpuflow's own tables, before any task can race to create them
        stack._airflow("pools", "import", str(ROOT / "include" / "config" / "pools.json"))
        try:
            for component in COMPONENTS:
                stack._spawn(component)
            stack.wait_healthy(healthy_within_s)
        except BaseException:
            stack.stop()
            raise
        return stack

    def __enter__(self) -> AirflowStack:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _airflow(self, *args: str) -> None:
        self._run("-m", "airflow", *args)

    def _run(self, *args: str) -> None:
        """``python ARGS`` in the stack's environment, with ``plugins/`` importable as the components have it."""
        path = os.pathsep.join(filter(None, [str(ROOT / "plugins"), self.env.get("PYTHONPATH")]))
        env = {**self.env, "PYTHONPATH": path}
        done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"python {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def _spawn(self, component: str) -> None:
        log = (self.home / f"{component}.log").open("ab")
        args = [component, "--port", self.env["AIRFLOW__API__PORT"]] if component == "api-server" else [component]
        self.processes[component] = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # gone with the harness, even one killed outright
        )

    def restart(self, component: str, within_s: float = 120) -> None:
        """Kill one component's process group outright (a crash, an OOM kill, a node lost under it), start it
        again and wait until the stack is healthy: what it held in memory is gone, what it persisted is not."""
        process = self.processes[component]
        _signal_group(process, signal.SIGKILL)
        process.wait()
        self._spawn(component)
        self.wait_healthy(within_s)

    def log_path(self, component: str) -> Path:
        return self.home / f"{component}.log"

    def wait_healthy(self, within_s: float) -> None:
        """Until the health endpoint reports the DB, scheduler, triggerer and DAG processor healthy."""
        deadline = time.monotonic() + within_s
        last: Any = None
        while time.monotonic() < deadline:
            for component, process in self.processes.items():
                if process.poll() is not None:
                    tail = self.log_path(component).read_text(errors="replace")[-3000:]
                    raise StackError(f"airflow {component} exited with {process.returncode}:\n{tail}")
            try:
                last = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                if all(last.get(part, {}).get("status") == "healthy" for part in _HEALTH_PARTS):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
        raise StackError(f"Airflow was not healthy within {within_s:.0f}s; last health answer: {last}")

    def stop(self, grace_s: float = 30) -> None:
        """SIGTERM every component's process group, then SIGKILL what is left after ``grace_s``."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(process, signal.SIGKILL)
            process.wait()
        self.processes.clear()

    # -- memory ------------------------------------------------------------------------------------------------

    def memory_bytes(self) -> int:
        """Resident memory (PSS where the kernel reports it) of every process the components run now."""
        total = 0
        for process in self.processes.values():
            try:
                root = psutil.Process(process.pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for member in tree:
                try:
                    info = member.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += getattr(info, "pss", info.rss)
        self.peak_memory_bytes = max(self.peak_memory_bytes, total)
        return total

    # -- REST API ----------------------------------------------------------------------------------------------

    def token(self, user: str = "admin", password: str | None = None) -> str:
        """A JWT for the user, from ``POST /auth/token``."""
        if password is None and user in self._tokens:
            return self._tokens[user]
        answer = httpx.post(
            f"{self.url}/auth/token",
            json={"username": user, "password": password or self.passwords[user]},
            timeout=30,
        )
        if answer.status_code != 201:
            raise StackError(f"POST /auth/token for {user}: {answer.status_code} {answer.text[:300]}")
        token: str = answer.json()["access_token"]
        if password is None:
            self._tokens[user] = token
        return token

    def api(self, method: str, path: str, *, user: str = "admin", **kwargs: Any) -> httpx.Response:
        """One call to the public REST API (``/api/v2`` + path) as ``user``."""
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self.token(user)}"}
        return httpx.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=60, **kwargs)

    def call(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        """Like :meth:`api`, but fails with the answer's body when the status is not ``expect``."""
        answer = self.api(method, path, **kwargs)
        if answer.status_code != expect:
            raise StackError(f"{method} {path}: {answer.status_code} {answer.text[:1000]}")
        return answer.json() if answer.content else None

    def wait_for_dag(self, dag_id: str, within_s: float = 120) -> None:
        """Until this stack's DAG processor has parsed the DAG (a DB kept from an earlier session knows it already,
        but a run can only be created once it is serialized again); a parse error fails at once."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            answer = self.api("GET", f"/dags/{dag_id}")
            if answer.status_code == 200 and _parsed_since(answer.json(), self.started_at):
                return
            errors = [
                error
                for error in self.call("GET", "/importErrors").get("import_errors", [])
                if datetime.fromisoformat(error["timestamp"]) >= self.started_at
            ]
            if errors:
                raise StackError(f"DAG import errors: {errors}")
            time.sleep(1)
        raise StackError(f"DAG {dag_id} did not appear within {within_s:.0f}s (see {self.log_path('dag-processor')})")

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": True})

    def trigger(self, dag_id: str, conf: Mapping[str, Any], *, user: str = "admin") -> httpx.Response:
        """``POST /dags/{dag_id}/dagRuns`` with a conf; returns the raw answer (a bad conf is a 400)."""
        return self.api("POST", f"/dags/{dag_id}/dagRuns", user=user, json={"logical_date": None, "conf": dict(conf)})

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")[
            "task_instances"
        ]
        return found

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """A task's XCom value, or None where it has none."""
        answer = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"deserialize": True},
        )
        return answer.json().get("value") if answer.status_code == 200 else None

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """A task attempt's log as plain text (the API serves structured lines: timestamp, level, event)."""
        answer = self.call(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": True},
        )
        lines = []
        for entry in answer.get("content", []):
            if isinstance(entry, dict):
                level = f" {entry['level'].upper()}" if entry.get("level") else ""
                lines.append(f"{entry.get('timestamp', '')}{level} {entry.get('event', '')}".strip())
            else:
                lines.append(str(entry))
        return "\n".join(lines)

    def follow(
        self,
        dag_id: str,
        run_id: str,
        *,
        on_change: Callable[[dict[str, Any]], None] | None = None,
        within_s: float = 1800,
        poll_s: float = 2,
    ) -> str:
        """Poll the run until it ends; ``on_change`` sees every task instance whose state changed. Returns the state."""
        deadline = time.monotonic() + within_s
        seen: dict[str, tuple[str | None, int]] = {}
        while time.monotonic() < deadline:
            self.memory_bytes()
            for ti in self.task_instances(dag_id, run_id):
                now = (ti.get("state"), ti.get("try_number", 0))
                if seen.get(ti["task_id"]) != now:
                    seen[ti["task_id"]] = now
                    if on_change is not None:
                        on_change(ti)
            state: str = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in TERMINAL_RUN_STATES:
                return state
            time.sleep(poll_s)
        raise StackError(f"run {run_id} of {dag_id} did not end within {within_s:.0f}s")


_HEALTH_PARTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def _parsed_since(dag: Mapping[str, Any], moment: datetime) -> bool:
    parsed = dag.get("last_parsed_time")
    return isinstance(parsed, str) and not dag.get("is_stale") and datetime.fromisoformat(parsed) >= moment


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
