"""Errors a user can cause. Each names the field, the value and what would be accepted instead."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class GpuflowError(Exception):
    """Base of every error gpuflow raises on purpose."""


class RequestError(GpuflowError, ValueError):
    """A request field holds a value gpuflow cannot accept."""

    def __init__(self, field: str, value: Any, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field}={value!r} is invalid: {expected}")


class CatalogError(GpuflowError):
    """The price catalog cannot be read at all (individual bad rows are reported, not raised)."""


class UnsatisfiableRequest(GpuflowError):
    """No catalog offer satisfies the request; the message says which constraint removed the last ones."""

    def __init__(self, message: str, rejected: Mapping[str, int]) -> None:
        self.rejected = dict(rejected)
        super().__init__(message)


class ErrorKind(StrEnum):
    """What a cloud's refusal means for what to do next (see ``gpuflow.core.failover``)."""

    CAPACITY = "CAPACITY"  # no machines of that type there now: try elsewhere
    QUOTA = "QUOTA"  # the account may not have more there: try another region or cloud
    TRANSIENT = "TRANSIENT"  # throttling, 5xx: the same call may succeed later
    AUTH = "AUTH"  # credentials or permissions: nothing on that cloud will work this run
    INVALID = "INVALID"  # the request itself is wrong: stop and show the cloud's message
    NOT_FOUND = "NOT_FOUND"  # the resource (or its cluster) does not exist


class Scope(StrEnum):
    """How far a failure reaches: the blocks it leads to cover this much."""

    OFFER = "offer"  # this instance type in this zone
    FAMILY = "family"  # what one quota counts, in this region and market (see ``CloudTraits.quota_family``)
    ZONE = "zone"
    REGION = "region"
    CLOUD = "cloud"


class CloudError(GpuflowError):
    """A cloud refused or failed an operation; carries its own code and our reading of it."""

    def __init__(
        self, *, cloud: str, code: str, kind: ErrorKind, scope: Scope, message: str, resource: str = ""
    ) -> None:
        self.cloud = cloud
        self.code = code
        self.kind = kind
        self.scope = scope
        self.message = message
        self.resource = resource
        where = f" ({resource})" if resource else ""
        super().__init__(f"{cloud} {code} [{kind.value}/{scope.value}]{where}: {message}")


def describe(exc: BaseException) -> str:
    """``Type: message``: how a failure we carry on past is reported (the type says which API failed)."""
    return f"{type(exc).__name__}: {exc}"
