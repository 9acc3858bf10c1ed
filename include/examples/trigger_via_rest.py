"""Trigger gpu_train_and_serve through Airflow's REST API and wait for the run: the README's Python example.

    python include/examples/trigger_via_rest.py http://localhost:8080 admin PASSWORD '{"accelerator": "L4"}'

The end-to-end tests call these functions against running Airflow, so the example stays true.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import requests

DAG_ID = "gpu_train_and_serve"


def get_token(base_url: str, username: str, password: str) -> str:
    """A JWT from ``POST /auth/token`` (201); a wrong password is a 401."""
    answer = requests.post(f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30)
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def trigger(base_url: str, token: str, conf: dict[str, Any], dag_id: str = DAG_ID) -> str:
    """Start a run with ``conf``; returns its run id. A conf the form rejects is a 400 whose detail names the field."""
    answer = requests.post(
        f"{base_url}/api/v2/dags/{dag_id}/dagRuns",
        headers={"Authorization": f"Bearer {token}"},
        json={"logical_date": None, "conf": conf},
        timeout=30,
    )
    if answer.status_code == 400:
        raise ValueError(answer.json()["detail"])
    answer.raise_for_status()
    run_id: str = answer.json()["dag_run_id"]
    return run_id


def wait(base_url: str, token: str, run_id: str, dag_id: str = DAG_ID, timeout_s: float = 3600) -> str:
    """Poll the run until it is ``success`` or ``failed``; returns that state."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = requests.get(
            f"{base_url}/api/v2/dags/{dag_id}/dagRuns/{run_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        answer.raise_for_status()
        state: str = answer.json()["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(5)
    raise TimeoutError(f"run {run_id} still running after {timeout_s:.0f}s")


if __name__ == "__main__":
    url, user, password, conf_json = sys.argv[1:5]
    token = get_token(url, user, password)
    run = trigger(url, token, json.loads(conf_json))
    print(f"triggered {run}", flush=True)
    print(wait(url, token, run))
