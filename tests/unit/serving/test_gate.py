"""The promotion gate: a new model takes a named endpoint over only without failures and within the bounds."""

from __future__ import annotations

from gpuflow.serving.benchmark import BenchmarkReport, Stat
from gpuflow.serving.gate import GateBounds, judge

BOUNDS = GateBounds(ttft_p99_ratio=1.5, throughput_ratio=0.67)


def report(ttft_p99_ms: float = 100.0, tokens_per_s: float = 200.0, failed: int = 0) -> BenchmarkReport:
    stat = Stat(50.0, 50.0, ttft_p99_ms)
    return BenchmarkReport(16 - failed, failed, 1.0, 512, 256, 16.0, tokens_per_s, 768.0, stat, stat, stat, stat)


def test_a_model_as_fast_as_the_live_one_passes() -> None:
    verdict = judge(report(110.0, 190.0), report(), BOUNDS)
    assert verdict.passed
    assert verdict.reasons == ()
    assert "new: 16 ok, 0 failed, TTFT p99 110.0 ms, 190.0 output tokens/s" in verdict.figures
    assert "live: 16 ok, 0 failed, TTFT p99 100.0 ms, 200.0 output tokens/s" in verdict.figures


def test_each_bound_is_named_with_the_figures_that_broke_it() -> None:
    verdict = judge(report(ttft_p99_ms=151.0, tokens_per_s=133.0), report(), BOUNDS)
    assert not verdict.passed
    assert verdict.reasons == (
        "TTFT p99 151.0 ms > 150.0 ms (1.5 x the live model's 100.0 ms; gate_ttft_p99_ratio)",
        "output 133.0 tokens/s < 134.0 (0.67 x the live model's 200.0; gate_throughput_ratio)",
    )


def test_any_failed_request_fails_the_gate_even_for_the_first_revision() -> None:
    verdict = judge(report(failed=1), None, BOUNDS)
    assert not verdict.passed
    assert verdict.reasons == ("1 of 16 requests failed",)
    assert "live" not in verdict.figures


def test_the_first_revision_of_an_endpoint_has_nothing_to_be_compared_with() -> None:
    assert judge(report(ttft_p99_ms=10_000.0, tokens_per_s=1.0), None, BOUNDS).passed
