"""The one event schema every gpuflow trigger emits, and its reading on the worker side.

``{"status": "success", "ref": {...}, ...}`` or
``{"status": "failed", "kind": "CAPACITY", "scope": "offer", "cloud": "aws", "cloud_code": "...",
"ref": {...}, "message": "..."}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpuflow.core.errors import CloudError, ErrorKind, Scope

SUCCESS = "success"
FAILED = "failed"


def success(ref: Mapping[str, Any], **details: Any) -> dict[str, Any]:
    return {"status": SUCCESS, "ref": dict(ref), **details}


def failed(error: CloudError, ref: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": FAILED,
        "kind": error.kind.value,
        "scope": error.scope.value,
        "cloud": error.cloud,
        "cloud_code": error.code,
        "ref": dict(ref),
        "message": error.message,
    }


def error_of(event: Mapping[str, Any]) -> CloudError:
    """The ``CloudError`` a failed event describes (the exception raised on the worker side)."""
    return CloudError(
        cloud=event["cloud"],
        code=event["cloud_code"],
        kind=ErrorKind(event["kind"]),
        scope=Scope(event["scope"]),
        message=event["message"],
        resource=event.get("ref", {}).get("name", ""),
    )


def validate(event: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Reject an event that is not one of ours (a framework timeout, a foreign trigger)."""
    if not event or event.get("status") not in (SUCCESS, FAILED):
        raise ValueError(f"unexpected trigger event: {event!r}")
    return event
