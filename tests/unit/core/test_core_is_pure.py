"""gpuflow.core imports neither Airflow nor a cloud SDK, so it stays fast to import and test anywhere."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

FORBIDDEN = ("airflow", "boto3", "botocore", "google", "azure", "kubernetes", "kubernetes_asyncio")


def test_core_imports_with_airflow_and_cloud_sdks_blocked() -> None:
    modules = sorted(p.stem for p in (Path(__file__).parents[3] / "plugins/gpuflow/core").glob("*.py"))
    script = textwrap.dedent(
        f"""
        import importlib, sys
        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {FORBIDDEN!r}:
                    raise ImportError("core must not import " + name)
        sys.meta_path.insert(0, Blocker())
        for module in {modules!r}:
            importlib.import_module("gpuflow.core." + module if module != "__init__" else "gpuflow.core")
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
