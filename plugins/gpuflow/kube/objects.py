"""Pieces every gpuflow manifest shares: name checks, metadata, env entries and the shared-memory volume."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpuflow.core.errors import RequestError

# RFC 1123 label (namespaces, services, containers) and subdomain (pods, deployments, secrets), per Kubernetes.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
SHM_VOLUME = "dshm"


def dns1123_label(field: str, value: str) -> str:
    """``value`` if it is a DNS-1123 label (at most 63 of [a-z0-9-], alphanumeric at both ends)."""
    if not isinstance(value, str) or len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise RequestError(
            field,
            value,
            "a DNS-1123 label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        )
    return value


def dns1035_label(field: str, value: str) -> str:
    """``value`` if it is a DNS-1035 label, as Service names must be: a DNS-1123 label starting with a letter."""
    if not isinstance(value, str) or len(value) > 63 or not _DNS1035_LABEL.match(value):
        raise RequestError(
            field,
            value,
            "a DNS-1035 label: at most 63 lowercase letters, digits or '-', "
            "starting with a letter and ending with a letter or digit",
        )
    return value


def dns1123_subdomain(field: str, value: str) -> str:
    """``value`` if it is a DNS-1123 subdomain (at most 253 characters of dot-separated labels)."""
    parts = value.split(".") if isinstance(value, str) else [value]
    if not isinstance(value, str) or len(value) > 253 or not all(_DNS1123_LABEL.match(p) for p in parts):
        raise RequestError(
            field,
            value,
            "a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', "
            "at most 253 characters, each part starting and ending with a letter or digit",
        )
    return value


def metadata(name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


@dataclass(frozen=True, slots=True)
class SecretKeyRef:
    """An environment variable taken from a Secret by reference, so its value never enters a manifest or log."""

    secret: str
    key: str


def env_list(plain: Mapping[str, str], secrets: Mapping[str, SecretKeyRef]) -> list[dict[str, Any]]:
    """Container ``env`` entries: plain values first, then Secret references, each name checked."""
    entries: list[dict[str, Any]] = []
    for name, value in plain.items():
        entries.append({"name": _env_name(name), "value": str(value)})
    for name, ref in secrets.items():
        secret = dns1123_subdomain(f"env.{name}.secret", ref.secret)
        entries.append({"name": _env_name(name), "valueFrom": {"secretKeyRef": {"name": secret, "key": ref.key}}})
    return entries


def _env_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise RequestError("env", name, "an environment variable name: letters, digits, '_', '-' or '.'")
    return name


def shm_volume() -> tuple[dict[str, Any], dict[str, str]]:
    """(volume, mount) for a memory-backed /dev/shm: NCCL and PyTorch workers exchange tensors through it,
    and the container runtime's default 64 MiB makes multi-GPU jobs crash or crawl."""
    return {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}}, {"name": SHM_VOLUME, "mountPath": "/dev/shm"}
