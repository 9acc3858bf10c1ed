"""Benchmark statistics on synthetic timings, checked against values worked out by hand (no clock involved)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from gpuflow.core.errors import RequestError
from gpuflow.serving.benchmark import (
    BenchmarkConfig,
    RequestRecord,
    Stat,
    arrival_offsets,
    format_report,
    make_prompts,
    record_stream,
    summarize,
)
from gpuflow.serving.client import ServerError, TokenChunk, Usage

RECORDS = [
    # TPOT (0.2 - 0.1) / 3 = 1/30 s
    RequestRecord(True, prompt_tokens=10, output_tokens=4, ttft=0.1, itl=(0.02, 0.03, 0.05), latency=0.2),
    # one token: no TPOT, no ITL
    RequestRecord(True, prompt_tokens=10, output_tokens=1, ttft=0.3, latency=0.3),
    # TPOT (0.4 - 0.2) / 2 = 0.1 s
    RequestRecord(True, prompt_tokens=20, output_tokens=3, ttft=0.2, itl=(0.1, 0.1), latency=0.4),
    RequestRecord(False, error="HTTP 500"),
]


def _approx(stat: Stat) -> object:
    return pytest.approx((stat.mean_ms, stat.median_ms, stat.p99_ms))


def test_counts_and_throughputs_use_successful_requests_over_the_whole_duration() -> None:
    report = summarize(RECORDS, duration_s=2.0)

    assert (report.completed, report.failed, report.errors) == (3, 1, ("HTTP 500",))
    assert (report.total_input_tokens, report.total_output_tokens) == (40, 8)
    assert report.request_throughput == pytest.approx(1.5)
    assert report.output_throughput == pytest.approx(4.0)
    assert report.total_token_throughput == pytest.approx(24.0)


def test_latency_statistics_match_hand_computed_values() -> None:
    report = summarize(RECORDS, duration_s=2.0)

    # TTFT [100, 300, 200] ms: p99 interpolates 98% of the way from 200 to 300.
    assert (report.ttft.mean_ms, report.ttft.median_ms, report.ttft.p99_ms) == _approx(Stat(200, 200, 298))
    # TPOT [33.33, 100] ms, the one-token request excluded.
    assert (report.tpot.mean_ms, report.tpot.median_ms, report.tpot.p99_ms) == _approx(
        Stat(200 / 3, 200 / 3, 100 / 3 + 0.99 * 200 / 3)
    )
    # ITL pooled over requests: [20, 30, 50, 100, 100] ms.
    assert (report.itl.mean_ms, report.itl.median_ms, report.itl.p99_ms) == _approx(Stat(60, 50, 100))
    assert (report.e2el.mean_ms, report.e2el.median_ms, report.e2el.p99_ms) == _approx(Stat(300, 300, 398))


def test_no_successful_request_reports_zeros_not_nan() -> None:
    report = summarize([RequestRecord(False, error="refused")], duration_s=1.0)

    assert (report.completed, report.failed, report.output_throughput) == (0, 1, 0.0)
    assert report.ttft == Stat(0.0, 0.0, 0.0)
    assert "Failed requests:" in format_report(report)


def test_stream_timings_follow_vllm_definitions() -> None:
    events: list[TokenChunk | Usage] = [TokenChunk("a", 10.5), TokenChunk("b", 10.75), TokenChunk("c", 11.0)]
    events.append(Usage(7, 3))

    record = record_stream(10.0, events, input_len=5)

    assert record == RequestRecord(True, prompt_tokens=7, output_tokens=3, ttft=0.5, itl=(0.25, 0.25), latency=1.0)


def test_stream_without_usage_counts_chunks_and_the_nominal_prompt() -> None:
    record = record_stream(0.0, [TokenChunk("a", 1.0), TokenChunk("b", 2.0)], input_len=5)

    assert (record.prompt_tokens, record.output_tokens) == (5, 2)


def test_stream_without_chunks_or_with_an_error_is_a_failure() -> None:
    def broken() -> Iterator[TokenChunk | Usage]:
        yield TokenChunk("a", 1.0)
        raise ServerError("connection reset")

    assert record_stream(0.0, [Usage(1, 0)], 5).error == "Never received a valid chunk to calculate TTFT."
    assert record_stream(0.0, broken(), 5) == RequestRecord(False, error="connection reset")


def test_infinite_rate_sends_everything_at_once() -> None:
    assert arrival_offsets(4, math.inf, seed=0) == [0.0, 0.0, 0.0, 0.0]


def test_poisson_arrivals_are_reproducible_and_average_the_rate() -> None:
    offsets = arrival_offsets(2000, 4.0, seed=1)

    assert offsets == arrival_offsets(2000, 4.0, seed=1)
    assert offsets[0] == 0.0
    assert offsets == sorted(offsets)
    assert offsets[-1] / (len(offsets) - 1) == pytest.approx(0.25, rel=0.1)


def test_prompts_are_reproducible_and_of_the_asked_length() -> None:
    prompts = make_prompts(3, 16, seed=7)

    assert prompts == make_prompts(3, 16, seed=7)
    assert prompts != make_prompts(3, 16, seed=8)
    assert [len(p.split()) for p in prompts] == [16, 16, 16]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"num_prompts": 0}, "num_prompts"), ({"input_len": -1}, "input_len"), ({"request_rate": 0.0}, "request_rate")],
)
def test_invalid_config_names_the_field(change: dict[str, float], field: str) -> None:
    with pytest.raises(RequestError) as error:
        BenchmarkConfig(**({"model": "m", "num_prompts": 1} | change))  # type: ignore[arg-type]

    assert error.value.field == field


def test_format_report_lists_each_latency_row() -> None:
    table = format_report(summarize(RECORDS, 2.0))

    assert [line.split()[0] for line in table.splitlines()[-4:]] == ["TTFT", "TPOT", "ITL", "E2EL"]
    assert "Request throughput (req/s):" in table
