"""The benchmark end to end against the test double, through the library and the ``bench`` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

from gpuflow_emulator.stores import StoresConfig
from openai_double import MODEL, StartDouble

from gpuflow.cli import main
from gpuflow.core.clusters import Cluster
from gpuflow.serving.benchmark import BenchmarkConfig, run_benchmark, write_report
from gpuflow.serving.client import OpenAIClient
from tests.support.emulated_clouds import bucket_keys


def test_benchmark_counts_tokens_from_usage_and_writes_json_and_png(client: OpenAIClient, tmp_path: Path) -> None:
    config = BenchmarkConfig(MODEL, num_prompts=6, request_rate=math.inf, input_len=8, output_len=5, seed=3)

    report = run_benchmark(client, config)
    json_path, png_path = map(Path, write_report(report, tmp_path))

    assert (report.completed, report.failed) == (6, 0)
    assert (report.total_input_tokens, report.total_output_tokens) == (48, 30)
    assert report.duration_s > 0
    saved = json.loads(json_path.read_text())
    assert saved["config"]["request_rate"] == "inf"
    assert saved["ttft"].keys() == {"mean_ms", "median_ms", "p99_ms"}
    assert png_path.read_bytes().startswith(b"\x89PNG")


def test_a_report_goes_to_an_s3_bucket_through_the_clusters_connection(
    client: OpenAIClient, store_clusters: dict[str, Cluster], object_stores: StoresConfig
) -> None:
    """The worker has no s3fs (it cannot be installed beside the amazon provider): the report still reaches S3."""
    config = BenchmarkConfig(MODEL, num_prompts=2, input_len=4, output_len=3)
    cluster = store_clusters["aws"]
    out = f"{cluster.artifacts}/gpu_train_and_serve/run/benchmark"

    assert write_report(run_benchmark(client, config), out, cluster) == (
        f"{out}/benchmark.json",
        f"{out}/benchmark.png",
    )

    keys = bucket_keys(object_stores, out)
    assert keys == [
        "gpu_train_and_serve/run/benchmark/benchmark.json",
        "gpu_train_and_serve/run/benchmark/benchmark.png",
    ]


def test_bench_command_runs_poisson_arrivals_and_reports(
    start_double: StartDouble, tmp_path: Path, capsys: object
) -> None:
    url = start_double().url
    argv = ["bench", "--url", url, "--model", MODEL, "--num-prompts", "4", "--rate", "200"]
    argv += ["--input-len", "4", "--output-len", "3", "--out", str(tmp_path), "--header", "Authorization: Bearer x"]

    assert main(argv) == 0

    report = json.loads((tmp_path / "benchmark.json").read_text())
    assert (report["completed"], report["total_output_tokens"]) == (4, 12)
    assert (tmp_path / "benchmark.png").exists()


def test_bench_command_fails_when_no_request_succeeds(tmp_path: Path) -> None:
    argv = ["bench", "--url", "http://127.0.0.1:9", "--model", MODEL, "--num-prompts", "2", "--out", str(tmp_path)]

    assert main(argv) == 5
    assert json.loads((tmp_path / "benchmark.json").read_text())["failed"] == 2


def test_bench_command_rejects_invalid_values(tmp_path: Path) -> None:
    argv = ["bench", "--url", "http://x", "--model", MODEL, "--num-prompts", "0", "--out", str(tmp_path)]

    assert main(argv) == 2
