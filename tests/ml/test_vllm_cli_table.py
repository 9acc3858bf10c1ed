"""The checked-in table of what ``vllm serve`` accepts matches the vLLM of the ML environment (the image's pin)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_table_matches_the_pinned_vllm(ml_python: Path) -> None:
    result = subprocess.run(
        [str(ml_python), "scripts/vllm_cli_table.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
