"""``python -m gpuflow plan``: the acceptance command, its JSON contract and its exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gpuflow.cli import EXIT_INVALID, EXIT_UNSATISFIABLE, main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gpuflow", *args], capture_output=True, text=True, check=False)


def test_plan_json_returns_the_cheapest_valid_spot_h100x8() -> None:
    result = run("plan", "--accelerator", "H100", "--count", "8", "--capacity", "spot", "--output", "json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert {"chosen", "fallbacks", "estimated_total_usd", "rejected", "catalog"} <= set(out)
    chosen = out["chosen"]
    assert (chosen["accelerator"], chosen["accelerator_count"], chosen["capacity_type"]) == ("H100", 8, "spot")
    assert chosen["hourly_usd"] == pytest.approx(9.37674, abs=1e-4)
    for fallback in out["fallbacks"]:
        assert {"cloud", "instance_type", "region", "availability_zone", "hourly_usd"} <= set(fallback)
        assert fallback["hourly_usd"] >= chosen["hourly_usd"]
    assert out["catalog"]["sha256"]


def test_plan_table_explains_the_choice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--accelerator", "L4", "--regions", "europe-*", "--max-fallbacks", "2"]) == 0
    out = capsys.readouterr().out
    assert "cheapest option" in out
    assert "next cheapest region" in out
    assert "rejected:" in out


def test_invalid_request_exits_non_zero_with_the_field_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--accelerator", "H100", "--count", "0"]) == EXIT_INVALID
    assert "count=0 is invalid" in capsys.readouterr().err


def test_unsatisfiable_request_exits_non_zero_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--accelerator", "H100", "--count", "8", "--max-hourly-usd", "40"]) == EXIT_UNSATISFIABLE
    assert "cheapest is 43.07" in capsys.readouterr().err


def test_catalog_command_reports_repairs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog"]) == 0
    report = json.loads(capsys.readouterr().out)["report"]
    assert report["rejected: fractional accelerator (a GPU slice; Kubernetes schedules whole devices)"] > 0


def test_a_deadline_shorter_than_the_work_is_an_invalid_request(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--accelerator", "L4", "--estimated-hours", "10", "--deadline-hours", "9"]
    assert main(argv) == EXIT_INVALID
    assert "deadline_hours=9.0 is invalid: more than estimated_hours=10" in capsys.readouterr().err
