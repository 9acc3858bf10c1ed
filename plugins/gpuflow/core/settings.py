"""Where the operator's configuration comes from, when it is not given explicitly."""

from __future__ import annotations

import os

CATALOG_ENV = "GPUFLOW_CATALOG"


def catalog_source() -> str | None:
    """The catalog path or URI set by the operator (``GPUFLOW_CATALOG``), or None for the shipped one."""
    return os.environ.get(CATALOG_ENV) or None


CLUSTERS_ENV = "GPUFLOW_CLUSTERS"


def clusters_source() -> str | None:
    """The clusters file set by the operator (``GPUFLOW_CLUSTERS``), or None for the shipped one."""
    return os.environ.get(CLUSTERS_ENV) or None


POLL_INTERVAL_ENV = "GPUFLOW_POLL_INTERVAL_S"
DEFAULT_POLL_INTERVAL_S = 10.0


def poll_interval_s() -> float:
    """Seconds between polls of clouds and clusters (``GPUFLOW_POLL_INTERVAL_S``; tests and demos shorten it)."""
    return float(os.environ.get(POLL_INTERVAL_ENV) or DEFAULT_POLL_INTERVAL_S)


RETRAINING_ENV = "GPUFLOW_RETRAINING_CONFIG"


def retraining_source() -> str | None:
    """The retraining config file set by the operator (``GPUFLOW_RETRAINING_CONFIG``), or None for the shipped one."""
    return os.environ.get(RETRAINING_ENV) or None


JANITOR_GRACE_ENV = "GPUFLOW_JANITOR_GRACE_HOURS"
DEFAULT_JANITOR_GRACE_HOURS = 6.0


def janitor_grace_hours() -> float:
    """How long the janitor spares resources of a run Airflow does not know (``GPUFLOW_JANITOR_GRACE_HOURS``)."""
    return float(os.environ.get(JANITOR_GRACE_ENV) or DEFAULT_JANITOR_GRACE_HOURS)
