"""kube/ and serving/ never import Airflow: operators call them, not the other way round."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PLUGINS = Path(__file__).parents[3] / "plugins"


def test_kube_and_serving_import_with_airflow_blocked() -> None:
    modules = sorted(
        f"gpuflow.{p.parent.name}.{p.stem}"
        for pkg in ("kube", "serving")
        for p in (PLUGINS / "gpuflow" / pkg).glob("*.py")
    )
    script = textwrap.dedent(
        f"""
        import importlib, sys
        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "airflow":
                    raise ImportError("must not import " + name)
        sys.meta_path.insert(0, Blocker())
        for module in {modules!r}:
            importlib.import_module(module.removesuffix(".__init__"))
        print(len({modules!r}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 9
