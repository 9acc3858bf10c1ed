"""Where the operator's configuration comes from, when it is not given explicitly: ``GPUFLOW_*`` variables.

Each is read when it is needed (never at import), so a component picks up the environment it runs in. A value
that cannot be used is an error naming the variable, the value and what would be accepted, not a bare
``ValueError`` from deep inside a task.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from gpuflow.core.admission import LIMITS_ENV, GpuLimits
from gpuflow.core.errors import GpuflowError

CATALOG_ENV = "GPUFLOW_CATALOG"
CLUSTERS_ENV = "GPUFLOW_CLUSTERS"
RETRAINING_ENV = "GPUFLOW_RETRAINING_CONFIG"
POLL_INTERVAL_ENV = "GPUFLOW_POLL_INTERVAL_S"
DEFAULT_POLL_INTERVAL_S = 10.0
JANITOR_GRACE_ENV = "GPUFLOW_JANITOR_GRACE_HOURS"
DEFAULT_JANITOR_GRACE_HOURS = 6.0
STATE_URL_ENV = "GPUFLOW_STATE_URL"
REPLACEMENT_WAIT_ENV = "GPUFLOW_REPLACEMENT_WAIT_S"
DEFAULT_REPLACEMENT_WAIT_S = 300.0
ARTIFACTS_ENV = "GPUFLOW_ARTIFACTS_URI"
SWAP_DRAIN_ENV = "GPUFLOW_SWAP_DRAIN_S"
# After a named endpoint's front Service selects the new revision, the old one serves on this long before it is
# deleted: kube-proxy on every node must learn the new endpoints (seconds) and requests in flight must finish.
DEFAULT_SWAP_DRAIN_S = 30.0
PRELOAD_ENV = "GPUFLOW_PRELOAD"
SWITCH_VALUES = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}


class SettingsError(GpuflowError, ValueError):
    """A ``GPUFLOW_*`` environment variable holds a value gpuflow cannot use."""


def catalog_source() -> str | None:
    """The catalog path or URI set by the operator (``GPUFLOW_CATALOG``), or None for the shipped one."""
    return _source(CATALOG_ENV)


def clusters_source() -> str | None:
    """The clusters file set by the operator (``GPUFLOW_CLUSTERS``), or None for the shipped one."""
    return _source(CLUSTERS_ENV)


def retraining_source() -> str | None:
    """The retraining config file set by the operator (``GPUFLOW_RETRAINING_CONFIG``), or None for the shipped one."""
    return _source(RETRAINING_ENV)


def airflow_home() -> Path:
    """``AIRFLOW_HOME``, else Airflow's own default ``~/airflow``: where gpuflow's local files go by default."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def state_url() -> str:
    """The SQLAlchemy URL of gpuflow's state (``GPUFLOW_STATE_URL``), else a SQLite file in ``AIRFLOW_HOME``."""
    return _source(STATE_URL_ENV) or f"sqlite:///{airflow_home() / 'gpuflow-state.db'}"


def artifacts_base() -> str | None:
    """Where runs' outputs go when a request names none (``GPUFLOW_ARTIFACTS_URI``), else None: each cluster's
    own bucket (``artifacts`` in clusters.yaml). Never the worker's disk: a cloud pod cannot see it."""
    return _source(ARTIFACTS_ENV)


def poll_interval_s() -> float:
    """Seconds between polls of clouds and clusters (``GPUFLOW_POLL_INTERVAL_S``; tests and demos shorten it)."""
    return _positive_number(POLL_INTERVAL_ENV, DEFAULT_POLL_INTERVAL_S, unit="seconds")


def janitor_grace_hours() -> float:
    """How long the janitor spares resources of a run Airflow does not know (``GPUFLOW_JANITOR_GRACE_HOURS``)."""
    return _positive_number(JANITOR_GRACE_ENV, DEFAULT_JANITOR_GRACE_HOURS, unit="hours")


def replacement_wait_s() -> float:
    """How long a recovering run waits for the cloud to replace a preempted node in its pool before it moves on
    to the next offer (``GPUFLOW_REPLACEMENT_WAIT_S``; a stockout that outlasts it rarely ends soon)."""
    return _positive_number(REPLACEMENT_WAIT_ENV, DEFAULT_REPLACEMENT_WAIT_S, unit="seconds")


def swap_drain_s() -> float:
    """Seconds the old revision of a named endpoint keeps serving after the switch (``GPUFLOW_SWAP_DRAIN_S``)."""
    return _positive_number(SWAP_DRAIN_ENV, DEFAULT_SWAP_DRAIN_S, unit="seconds")


def gpu_limits() -> GpuLimits:
    """How many GPUs runs may hold at once (``GPUFLOW_GPU_LIMITS``, e.g. ``total=16,aws=8``); unset: no limit."""
    return GpuLimits.parse(os.environ.get(LIMITS_ENV, ""))


def preload() -> bool:
    """Whether the Airflow processes that fork import the DAG files' libraries once, before they first fork
    (``GPUFLOW_PRELOAD``, on unless set off; ``gpuflow.preload`` says why)."""
    return _switch(PRELOAD_ENV, default=True)


def _switch(name: str, *, default: bool) -> bool:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() not in SWITCH_VALUES:
        raise SettingsError(
            f"{name}={raw!r} is invalid: one of {', '.join(SWITCH_VALUES)}; unset it for the default "
            f"({'on' if default else 'off'})"
        )
    return SWITCH_VALUES[raw.lower()]


def _source(name: str) -> str | None:
    """An operator-set path or URI; unset and empty both mean the shipped default."""
    return os.environ.get(name) or None


def _positive_number(name: str, default: float, *, unit: str) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise SettingsError(
            f"{name}={raw!r} is invalid: a positive number of {unit}, e.g. {default:g}; unset it for the default"
        )
    return value
