"""What an HTTP status means when a cloud API gives no more specific code (Google and Azure REST APIs)."""

from __future__ import annotations

from gpuflow.core.errors import ErrorKind, Scope

HTTP_STATUS: dict[int, tuple[ErrorKind, Scope]] = {
    400: (ErrorKind.INVALID, Scope.OFFER),
    401: (ErrorKind.AUTH, Scope.CLOUD),
    403: (ErrorKind.AUTH, Scope.CLOUD),
    404: (ErrorKind.NOT_FOUND, Scope.OFFER),
    429: (ErrorKind.TRANSIENT, Scope.REGION),
}


def kind_for_status(status: int | None) -> tuple[ErrorKind, Scope]:
    """5xx and 429 are worth retrying; an unknown refusal blocks only the offer, as SkyPilot does."""
    if status is not None and status >= 500:
        return (ErrorKind.TRANSIENT, Scope.REGION)
    return HTTP_STATUS.get(status or 0, (ErrorKind.CAPACITY, Scope.OFFER))
