"""Timestamps in the two formats the API uses: RFC 3339 seconds for objects, nanoseconds for log lines."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Object timestamps (`creationTimestamp`, `startedAt`) have whole seconds, like the real API."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    return iso(now())


def log_stamp(moment: datetime) -> str:
    """The RFC 3339 nano stamp kubelet puts before each log line when `timestamps=true`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
