"""Errors a user can cause. Each names the field, the value and what would be accepted instead."""

from __future__ import annotations

from collections.abc import Mapping
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
