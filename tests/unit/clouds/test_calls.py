"""The one way a backend classifies a failed call and reads codes from a message's text."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gpuflow.clouds.calls import classified, codes_in_text, retrying
from gpuflow.core.errors import CloudError, ErrorKind, Scope


class Backend:
    def classify(self, exc: BaseException) -> CloudError:
        return CloudError(
            cloud="test", code=type(exc).__name__, kind=ErrorKind.TRANSIENT, scope=Scope.REGION, message=str(exc)
        )


def test_a_failed_call_leaves_as_the_backend_s_cloud_error_with_the_sdk_error_chained() -> None:
    with pytest.raises(CloudError) as raised, classified(Backend()):
        raise TimeoutError("slow")
    assert raised.value.code == "TimeoutError"
    assert isinstance(raised.value.__cause__, TimeoutError)


def test_an_absorbed_error_ends_the_block_quietly() -> None:
    reached: list[str] = []
    with classified(Backend(), absorb=lambda exc: isinstance(exc, KeyError)):
        raise KeyError("gone")
    reached.append("after")
    assert reached == ["after"]


def test_codes_are_found_as_whole_words_in_order_and_the_longest_wins() -> None:
    codes = ["QUOTA_EXCEEDED", "ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"]
    text = "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS then QUOTA_EXCEEDED, not GCE_QUOTA_EXCEEDED"
    assert codes_in_text(text, codes) == ["ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "QUOTA_EXCEEDED"]
    assert codes_in_text("nothing known", codes) == []


def failing(kinds: list[ErrorKind]) -> Callable[[], str]:
    """A call that fails with each of ``kinds`` in turn, then answers "done"."""
    left = list(kinds)

    def call() -> str:
        if left:
            kind = left.pop(0)
            raise CloudError(cloud="test", code=kind.value, kind=kind, scope=Scope.REGION, message="refused")
        return "done"

    return call


def test_retrying_rides_out_transient_refusals_with_a_growing_backoff() -> None:
    slept: list[float] = []
    call = failing([ErrorKind.TRANSIENT, ErrorKind.TRANSIENT])
    assert retrying(call, what="delete", sleep=slept.append, jitter=lambda: 0.0) == "done"
    assert slept == [1.0, 2.0]  # half of 2 s, then of 4 s, with no jitter


def test_retrying_gives_up_after_its_retries_and_raises_the_last_refusal() -> None:
    slept: list[float] = []
    with pytest.raises(CloudError) as raised:
        retrying(failing([ErrorKind.TRANSIENT] * 3), what="delete", retries=2, sleep=slept.append)
    assert raised.value.kind is ErrorKind.TRANSIENT
    assert len(slept) == 2


def test_retrying_raises_a_lasting_failure_at_once() -> None:
    slept: list[float] = []
    with pytest.raises(CloudError) as raised:
        retrying(failing([ErrorKind.INVALID]), what="delete", sleep=slept.append)
    assert raised.value.kind is ErrorKind.INVALID
    assert slept == []
