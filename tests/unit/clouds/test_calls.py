"""The one way a backend classifies a failed call and reads codes from a message's text."""

from __future__ import annotations

import pytest

from gpuflow.clouds.calls import classified, codes_in_text
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
