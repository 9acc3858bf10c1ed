"""The promotion gate: may a new model take a named endpoint's traffic from the live one?

Both are benchmarked on the same prompts at the same rate (``BenchmarkConfig`` with one seed), one after the other,
so the comparison is of models, not of workloads. The new one passes when none of its requests failed, its TTFT p99
is at most ``ttft_p99_ratio`` times the live one's, and its output tokens/s are at least ``throughput_ratio`` times
the live one's. With no live model (the endpoint's first revision) only the failures count.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpuflow.serving.benchmark import BenchmarkReport


@dataclass(frozen=True, slots=True)
class GateBounds:
    ttft_p99_ratio: float
    throughput_ratio: float


@dataclass(frozen=True, slots=True)
class GateVerdict:
    passed: bool
    reasons: tuple[str, ...]  # why it failed; empty when it passed
    figures: str  # the compared numbers, for the log and the failure message

    def to_dict(self) -> dict[str, object]:
        return {"passed": self.passed, "reasons": list(self.reasons), "figures": self.figures}


def judge(candidate: BenchmarkReport, live: BenchmarkReport | None, bounds: GateBounds) -> GateVerdict:
    """The verdict on ``candidate`` against ``live`` (None: nothing serves yet)."""
    reasons: list[str] = []
    if candidate.failed:
        reasons.append(f"{candidate.failed} of {candidate.failed + candidate.completed} requests failed")
    figures = _figures("new", candidate)
    if live is not None:
        figures += "; " + _figures("live", live)
        ttft_limit = live.ttft.p99_ms * bounds.ttft_p99_ratio
        if candidate.ttft.p99_ms > ttft_limit:
            reasons.append(
                f"TTFT p99 {candidate.ttft.p99_ms:.1f} ms > {ttft_limit:.1f} ms "
                f"({bounds.ttft_p99_ratio:g} x the live model's {live.ttft.p99_ms:.1f} ms; gate_ttft_p99_ratio)"
            )
        throughput_floor = live.output_throughput * bounds.throughput_ratio
        if candidate.output_throughput < throughput_floor:
            reasons.append(
                f"output {candidate.output_throughput:.1f} tokens/s < {throughput_floor:.1f} "
                f"({bounds.throughput_ratio:g} x the live model's {live.output_throughput:.1f}; gate_throughput_ratio)"
            )
    return GateVerdict(not reasons, tuple(reasons), figures)


def _figures(which: str, report: BenchmarkReport) -> str:
    return (
        f"{which}: {report.completed} ok, {report.failed} failed, TTFT p99 {report.ttft.p99_ms:.1f} ms, "
        f"{report.output_throughput:.1f} output tokens/s"
    )
