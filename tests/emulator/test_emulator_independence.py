"""The emulator imports nothing from gpuflow: the referee shares no code with the player (DESIGN.md §3).

A fact both sides took from gpuflow (GPUs per machine type, a label) would be wrong on both sides at once and
no test could see it; facts both need live twice and test_emulator_facts_agree.py compares them. The check
reads every module's syntax tree, so an import inside a function (a lazy import) is found too.
"""

from __future__ import annotations

import ast
from pathlib import Path

EMULATOR = Path(__file__).parents[2] / "emulator"
PRODUCT = "gpuflow"
DYNAMIC_IMPORTS = ("import_module", "__import__")


def _is_product(module: str | None) -> bool:
    return module is not None and module.split(".")[0] == PRODUCT


def _product_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of each import of gpuflow: import statements and import_module/__import__ of a literal."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if _is_product(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_product(node.module):
            found.append((node.lineno, str(node.module)))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in DYNAMIC_IMPORTS and isinstance(node.args[0].value, str) and _is_product(node.args[0].value):
                found.append((node.lineno, node.args[0].value))
    return found


def test_no_emulator_module_imports_gpuflow() -> None:
    offenders = [
        f"{path.relative_to(EMULATOR)}:{line}: {module}"
        for path in sorted(EMULATOR.rglob("*.py"))
        for line, module in _product_imports(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert offenders == [], "the emulator imports gpuflow:\n" + "\n".join(offenders)


def test_the_check_sees_top_level_lazy_and_dynamic_imports() -> None:
    source = (
        "import gpuflow\n"
        "from gpuflow.core import accelerators\n"
        "def f():\n"
        "    import gpuflow.core.catalog\n"
        "    importlib.import_module('gpuflow.core')\n"
        "from gpuflow_emulator import machines\n"
        "from . import gpuflow\n"
    )
    assert [line for line, _ in _product_imports(ast.parse(source))] == [1, 2, 4, 5]
