"""Serving benchmark with the definitions of ``vllm bench serve``, so our numbers compare with vLLM's own.

Per request (``vllm/benchmarks/lib/endpoint_request_func.py``): TTFT is the time from sending to the first
chunk with choices; ITL the gaps between consecutive such chunks; e2e latency the time from sending to the
last such chunk; TPOT = (e2e - TTFT) / (output tokens - 1), only for requests with more than one token.
Across requests (``calculate_metrics`` in ``vllm/benchmarks/serve.py``): means, medians and percentiles
(numpy, linear interpolation) over successful requests, ITLs pooled; throughputs divide by the wall time of
the whole run; a request that never sent a chunk is a failure and adds nothing but the count.

Prompts are ``input_len`` words drawn from a fixed vocabulary with a seed: no tokenizer is needed and the
same seed gives the same prompts; the server's usage record gives the real token counts.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import httpx
import numpy as np

from gpuflow.core.clusters import Cluster
from gpuflow.core.errors import RequestError
from gpuflow.serving.client import OpenAIClient, ServerError, TokenChunk, Usage
from gpuflow.storage_io import write_bytes

TAIL_PERCENTILE = 99.0
_VOCABULARY = (
    "time year people way day man thing woman life child world school state family student group country "
    "problem hand part place case week company system program question work government number night point "
    "home water room mother area money story fact month lot right study book eye job word business issue"
)
_WORDS = _VOCABULARY.split()


@dataclass(frozen=True, slots=True)
class BenchmarkConfig:
    model: str
    num_prompts: int
    request_rate: float = math.inf  # requests per second; inf sends them all at once
    input_len: int = 128
    output_len: int = 128
    seed: int = 0
    ignore_eos: bool = True  # generate exactly output_len tokens, so runs compare

    def __post_init__(self) -> None:
        for name in ("num_prompts", "input_len", "output_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RequestError(name, value, "a whole number, at least 1")
        if not self.request_rate > 0:
            raise RequestError("request_rate", self.request_rate, "requests per second > 0, or inf for all at once")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What one request measured, in seconds from when it was sent."""

    success: bool
    prompt_tokens: int = 0
    output_tokens: int = 0
    ttft: float = 0.0
    itl: tuple[float, ...] = ()
    latency: float = 0.0
    error: str = ""


@dataclass(frozen=True, slots=True)
class Stat:
    """mean, median (p50) and p99 in milliseconds."""

    mean_ms: float
    median_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class BenchmarkReport:
    completed: int
    failed: int
    duration_s: float
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    ttft: Stat
    tpot: Stat
    itl: Stat
    e2el: Stat
    config: dict[str, object] = field(default_factory=dict)
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        report = asdict(self)
        report["config"] = {
            k: (str(v) if isinstance(v, float) and math.isinf(v) else v) for k, v in self.config.items()
        }
        return report


def _stat(values: Sequence[float]) -> Stat:
    """vLLM's ``np.mean(x or 0)`` convention: no values report zeros rather than NaN."""
    data = np.asarray(values if len(values) else [0.0], dtype=float) * 1000
    return Stat(float(np.mean(data)), float(np.median(data)), float(np.percentile(data, TAIL_PERCENTILE)))


def summarize(records: Sequence[RequestRecord], duration_s: float) -> BenchmarkReport:
    """The report over recorded requests; pure, so it is checked against hand-computed values."""
    done = [r for r in records if r.success]
    tpots = [(r.latency - r.ttft) / (r.output_tokens - 1) for r in done if r.output_tokens > 1]
    total_in = sum(r.prompt_tokens for r in done)
    total_out = sum(r.output_tokens for r in done)
    return BenchmarkReport(
        completed=len(done),
        failed=len(records) - len(done),
        duration_s=duration_s,
        total_input_tokens=total_in,
        total_output_tokens=total_out,
        request_throughput=len(done) / duration_s,
        output_throughput=total_out / duration_s,
        total_token_throughput=(total_in + total_out) / duration_s,
        ttft=_stat([r.ttft for r in done]),
        tpot=_stat(tpots),
        itl=_stat([gap for r in done for gap in r.itl]),
        e2el=_stat([r.latency for r in done]),
        errors=tuple(r.error for r in records if not r.success),
    )


def make_prompts(num_prompts: int, input_len: int, seed: int) -> list[str]:
    """``num_prompts`` prompts of ``input_len`` words each (about one token per word), reproducible by seed."""
    rng = np.random.default_rng(seed)
    return [" ".join(_WORDS[i] for i in rng.integers(0, len(_WORDS), input_len)) for _ in range(num_prompts)]


def arrival_offsets(num_prompts: int, rate: float, seed: int) -> list[float]:
    """Send times in seconds from the start: a Poisson process (exponential gaps of mean 1/rate), the first
    request at 0; all zero when rate is infinite."""
    if math.isinf(rate):
        return [0.0] * num_prompts
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, num_prompts - 1)
    return [0.0, *np.cumsum(gaps).tolist()]


def record_request(client: OpenAIClient, config: BenchmarkConfig, prompt: str) -> RequestRecord:
    """Send one streamed completion and time it as ``vllm bench serve`` does."""
    sent = time.perf_counter()
    events = client.stream_complete(config.model, prompt, config.output_len, ignore_eos=config.ignore_eos)
    return record_stream(sent, events, config.input_len)


def record_stream(sent: float, events: Iterable[TokenChunk | Usage], input_len: int) -> RequestRecord:
    """The timings of one stream that was sent at ``sent`` (same clock as the chunks' arrival times).

    Token counts come from the usage record; without one, each chunk counts as a token and the prompt as
    ``input_len``.
    """
    arrivals: list[float] = []
    usage = Usage(None, None)
    try:
        for event in events:
            if isinstance(event, TokenChunk):
                arrivals.append(event.arrived)
            else:
                usage = event
    except (ServerError, httpx.HTTPError) as exc:
        return RequestRecord(success=False, error=str(exc) or type(exc).__name__)
    if not arrivals:
        return RequestRecord(success=False, error="Never received a valid chunk to calculate TTFT.")
    return RequestRecord(
        success=True,
        prompt_tokens=usage.prompt_tokens or input_len,
        output_tokens=usage.completion_tokens or len(arrivals),
        ttft=arrivals[0] - sent,
        itl=tuple(b - a for a, b in itertools.pairwise(arrivals)),
        latency=arrivals[-1] - sent,
    )


def run_benchmark(client: OpenAIClient, config: BenchmarkConfig) -> BenchmarkReport:
    """Send the prompts at their arrival times, each on its own thread so a slow request never delays the next."""
    prompts = make_prompts(config.num_prompts, config.input_len, config.seed)
    offsets = arrival_offsets(config.num_prompts, config.request_rate, config.seed)
    with ThreadPoolExecutor(max_workers=min(config.num_prompts, 256)) as pool:
        start = time.perf_counter()
        futures = []
        for prompt, offset in zip(prompts, offsets, strict=True):
            time.sleep(max(0.0, start + offset - time.perf_counter()))
            futures.append(pool.submit(record_request, client, config, prompt))
        records = [f.result() for f in futures]
        duration = time.perf_counter() - start
    return replace(summarize(records, duration), config=asdict(config))


def format_report(report: BenchmarkReport) -> str:
    """A short table for task logs, worded like ``vllm bench serve``."""
    lines = [
        f"{'Successful requests:':<34}{report.completed:>12}",
        f"{'Failed requests:':<34}{report.failed:>12}",
        f"{'Benchmark duration (s):':<34}{report.duration_s:>12.2f}",
        f"{'Total input tokens:':<34}{report.total_input_tokens:>12}",
        f"{'Total generated tokens:':<34}{report.total_output_tokens:>12}",
        f"{'Request throughput (req/s):':<34}{report.request_throughput:>12.2f}",
        f"{'Output token throughput (tok/s):':<34}{report.output_throughput:>12.2f}",
        f"{'Total token throughput (tok/s):':<34}{report.total_token_throughput:>12.2f}",
        f"{'(ms)':<10}{'mean':>12}{'median':>12}{'p99':>12}",
    ]
    for name in ("ttft", "tpot", "itl", "e2el"):
        stat: Stat = getattr(report, name)
        lines.append(f"{name.upper():<10}{stat.mean_ms:>12.2f}{stat.median_ms:>12.2f}{stat.p99_ms:>12.2f}")
    return "\n".join(lines)


def write_report(report: BenchmarkReport, out: str | Path, cluster: Cluster | None = None) -> tuple[str, str]:
    """``benchmark.json`` and ``benchmark.png`` (latency mean/median/p99 bars) under ``out``: a folder, or a URI in
    ``cluster``'s bucket (``gpuflow.storage_io``), where a run's reports go beside its model."""
    base = str(out).rstrip("/")
    json_uri, png_uri = f"{base}/benchmark.json", f"{base}/benchmark.png"
    write_bytes(json_uri, (json.dumps(report.to_dict(), indent=2) + "\n").encode(), cluster)
    write_bytes(png_uri, _chart(report), cluster)
    return json_uri, png_uri


def _chart(report: BenchmarkReport) -> bytes:
    """The latency bars as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    from matplotlib import pyplot as plt

    names = ("ttft", "tpot", "itl", "e2el")
    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5))
    for axis, name in zip(axes, names, strict=True):
        stat: Stat = getattr(report, name)
        axis.bar(["mean", "median", "p99"], [stat.mean_ms, stat.median_ms, stat.p99_ms], color="#4878a8")
        axis.set_title(f"{name.upper()} (ms)")
    figure.suptitle(
        f"{report.completed} ok / {report.failed} failed, {report.request_throughput:.2f} req/s, "
        f"{report.output_throughput:.1f} output tok/s"
    )
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    plt.close(figure)
    return png.getvalue()
