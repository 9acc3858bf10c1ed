"""Every resource name and ownership label gpuflow puts on a cloud, derived from the run alone.

Names are a pure function of (dag_id, run_id, offer), so a retried task recomputes the same name (create
becomes get-or-create) and the janitor can tell which run owns a resource. Each cloud's name rule is data,
in its ``CloudTraits`` (``gpuflow.core.clouds``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from gpuflow.core.clouds import traits

MANAGED_LABEL = "gpuflow.io/managed"
DAG_LABEL = "gpuflow.io/dag"
RUN_LABEL = "gpuflow.io/run"
EXPIRES_LABEL = "gpuflow.io/expires-at"
# A kept endpoint's pool: how many nodes it was kept with, so the watchdog can restore a pool its cloud shrank.
KEPT_NODES_LABEL = "gpuflow.io/kept-nodes"
# A named endpoint (``endpoint_name``): on the revision that serves it and on its front Service. Such resources
# outlive their run: the janitor keeps the live revision, and ``gpu_endpoint_delete`` is how one is deleted.
ENDPOINT_LABEL = "gpuflow.io/endpoint"
# Which revision of a named endpoint a pod belongs to: the front Service selects the live one by it.
REVISION_LABEL = "gpuflow.io/revision"
PREFIX = "gf"
_LABEL_VALUE_MAX = 63


def digest(*parts: str, length: int = 10) -> str:
    """A short, stable hexadecimal digest of the parts (hex keeps it lowercase alphanumeric)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


def slug(text: str) -> str:
    """Lowercase letters, digits and single hyphens, trimmed of hyphens."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def run_key(dag_id: str, run_id: str) -> str:
    """The run's identity on every cloud: a label value that is valid everywhere (run ids contain ':' and '+')."""
    return digest(dag_id, run_id, length=16)


def pool_name(cloud: str, dag_id: str, run_id: str, offer_key: str) -> str:
    """The node pool name for one attempt of one run: ``gf-<dag slug>-<digest>``, shortened to fit the cloud."""
    rule = traits(cloud).name_rule
    suffix = digest(dag_id, run_id, offer_key)
    if not rule.hyphens:
        return (PREFIX + suffix)[: rule.max_length]
    room = rule.max_length - len(PREFIX) - len(suffix) - 2
    middle = slug(dag_id)[:room].strip("-")
    return "-".join(part for part in (PREFIX, middle, suffix) if part)


def label_value(text: str) -> str:
    """A Kubernetes label value (63 characters of [a-z0-9._-], alphanumeric at both ends) naming ``text``."""
    value = slug(text)
    if len(value) > _LABEL_VALUE_MAX or value != text:
        value = f"{value[: _LABEL_VALUE_MAX - 11].strip('-')}-{digest(text)}".strip("-")
    return value or digest(text)


def expiry_label(until: datetime) -> dict[str, str]:
    """The label that keeps a resource until ``until`` (whole epoch seconds: a valid label value everywhere)."""
    return {EXPIRES_LABEL: str(int(until.timestamp()))}


def expires_at(labels: Mapping[str, str]) -> datetime | None:
    """When a resource's keep-time ends, or None when it has no (readable) expiry label."""
    value = labels.get(EXPIRES_LABEL, "")
    return datetime.fromtimestamp(int(value), UTC) if value.isdigit() else None


def kept_nodes(labels: Mapping[str, str]) -> int | None:
    """The node count a kept pool was stamped with, or None when it has no (readable) such label."""
    value = labels.get(KEPT_NODES_LABEL, "")
    return int(value) if value.isdigit() else None


def ownership_labels(dag_id: str, run_id: str, expires_at_epoch: int | None = None) -> dict[str, str]:
    """The labels that mark a resource as gpuflow's and say which run owns it and until when."""
    labels = {MANAGED_LABEL: "true", DAG_LABEL: label_value(dag_id), RUN_LABEL: run_key(dag_id, run_id)}
    if expires_at_epoch is not None:
        labels[EXPIRES_LABEL] = str(expires_at_epoch)
    return labels
