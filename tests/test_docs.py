"""The docs stay true: every command they show is run, here or by a named test; links resolve; the README is short.

A command is a logical line (backslash continuations joined, trailing comments dropped) of a fenced ``bash``,
``sh``, ``shell`` or ``console`` block (in a console block, only the lines after ``$ ``) in README.md or docs/*.md.
Each one is either

- RUNNABLE: cheap and side-effect free, so this test runs it (the planner's command line; ``make -n`` of a target),
- or MAPPED: an entry below names the files that run it (a test, the demo) and a marker string each must contain.

Blocks in other languages (``text``, ``yaml``, none) are output or data, not commands. No Airflow process starts here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_LIMIT_BYTES = 8192
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^\s*```\s*([\w+-]*)")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PLAIN_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=[^\s$`()|;&]*$")  # API=http://... sets a name, runs nothing
SUBSTITUTION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\$\((?P<inner>.*)\)$", re.DOTALL)
HOW_TO_FIX = (
    "Every command in the docs must be run, so the docs stay true. Either make it one this test runs (RUNNABLE in "
    "tests/test_docs.py: cheap, side-effect free), or add a Mapped entry to MAPPED naming the test (or "
    "scripts/demo.py) that runs the command or its exact equivalent, with a marker string from that file."
)


@dataclass(frozen=True)
class Command:
    doc: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def fenced_blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """``(language, line of the first content line, lines)`` of every fenced block."""
    blocks: list[tuple[str, int, list[str]]] = []
    language: str | None = None
    start, lines = 0, list[str]()
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if language is None and fence:
            language, start, lines = fence.group(1).lower(), number + 1, []
        elif language is not None and line.strip().startswith("```"):
            blocks.append((language, start, lines))
            language = None
        elif language is not None:
            lines.append(line)
    return blocks


def without_comment(line: str) -> str:
    """The line up to an unquoted ``#`` that starts a word (a shell comment)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def block_commands(language: str, start: int, lines: list[str], doc: str) -> list[Command]:
    found: list[Command] = []
    pending, pending_line = "", 0
    for offset, raw in enumerate(lines):
        line = raw.strip()
        if language == "console" and not pending:
            if not line.startswith("$ "):
                continue  # output
            line = line[2:]
        line = without_comment(line)
        if not pending:
            pending_line = start + offset
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        command = (pending + line).strip()
        pending = ""
        if command and not PLAIN_ASSIGNMENT.match(command):
            found.append(Command(doc, pending_line, command))
    return found


def commands_in(text: str, doc: str) -> list[Command]:
    found: list[Command] = []
    for language, start, lines in fenced_blocks(text):
        if language in SHELL_LANGUAGES:
            found += block_commands(language, start, lines, doc)
    return found


def doc_commands() -> list[Command]:
    return [c for path in DOCS for c in commands_in(path.read_text(), str(path.relative_to(ROOT)))]


# -- (a) commands this test runs ---------------------------------------------------------------------------------

VENV_PYTHON = re.compile(r"^(?:PYTHONPATH=plugins )?\.venv/bin/python ")
RUNNABLE = [
    re.compile(r"^(?:PYTHONPATH=plugins )?\.venv/bin/python -m gpuflow (?:plan|catalog)\b"),  # reads the catalog
    re.compile(r"^(?:PYTHONPATH=plugins )?\.venv/bin/python -c 'from gpuflow\.core\.[\w.]+ import"),  # reads config
    re.compile(r"^make [\w-]+(?: [\w-]+)*(?: [A-Z_]+=\S+)*$"),  # run as `make -n`: prints, runs nothing
]


def runnable(command: str) -> str | None:
    """The shell line to run for a documented command, or None; ``NAME=$(x)`` runs ``x``."""
    substituted = SUBSTITUTION.match(command)
    inner = substituted.group("inner") if substituted else command
    if any(pattern.match(inner) for pattern in RUNNABLE):
        return inner
    return None


def run_documented(command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "emulator"), env.get("PYTHONPATH", "")])
    if command.startswith("make "):
        argv = ["make", "-n", *shlex.split(command)[1:]]
    else:
        argv = ["bash", "-c", VENV_PYTHON.sub(f"{shlex.quote(sys.executable)} ", command)]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


# -- (b) commands a test or the demo runs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapped:
    """Documented commands matching ``pattern`` are run by ``runners``: (file, marker it must contain) pairs."""

    pattern: str
    runners: tuple[tuple[str, str], ...]


MAPPED = [
    # The README's REST tour: the token, the trigger and the run's state, done by include/examples/trigger_via_rest.py
    # (the same calls in Python), which tests/live/test_rest_api.py runs against running Airflow.
    Mapped(
        r"^TOKEN=\$\(curl -s -X POST http://localhost:8080/auth/token .*access_token",
        (
            ("include/examples/trigger_via_rest.py", '/auth/token", json={"username": username, "password": password}'),
            ("tests/live/test_rest_api.py", "example.get_token("),
        ),
    ),
    Mapped(
        r"^curl -s -X POST http://localhost:8080/api/v2/dags/gpu_train_and_serve/dagRuns .*\"logical_date\": null",
        (
            ("include/examples/trigger_via_rest.py", '/api/v2/dags/{dag_id}/dagRuns",'),
            ("include/examples/trigger_via_rest.py", 'json={"logical_date": None, "conf": conf}'),
            ("tests/live/test_rest_api.py", "example.trigger("),
        ),
    ),
    Mapped(
        r"^curl -s -H \"Authorization: Bearer \$TOKEN\" http://localhost:8080/api/v2/dags/gpu_train_and_serve/"
        r"dagRuns/RUN_ID$",
        (
            ("include/examples/trigger_via_rest.py", '/api/v2/dags/{dag_id}/dagRuns/{run_id}",'),
            ("tests/live/test_rest_api.py", "example.wait("),
        ),
    ),
    # A task's XCom through the REST API: AirflowStack.xcom, which make demo uses for plan and cost_report and the
    # live tests for smoke_test.
    Mapped(
        r"^curl -s -H \"Authorization: Bearer \$TOKEN\" \"http://localhost:8080/api/v2/dags/gpu_train_and_serve/"
        r"dagRuns/RUN_ID/taskInstances/(?:plan|cost_report)/xcomEntries/return_value\?deserialize=true\"$",
        (
            ("scripts/airflow_stack.py", "/taskInstances/{task_id}/xcomEntries/{key}"),
            ("scripts/airflow_stack.py", 'params={"deserialize": True}'),
            ("scripts/demo.py", '"cost_report": ("cost", cost_line)'),
            ("scripts/demo.py", "airflow.xcom(DAG_ID, run_id, task_id)"),
            ("tests/live/test_rest_api.py", "airflow.xcom(DAG_ID, run_id,"),
        ),
    ),
    # docs/retraining.md: an asset event through the REST API, as tests/live/test_asset_retraining.py posts it
    # (its token from AirflowStack.token, the same POST /auth/token).
    Mapped(
        r"^TOKEN=\$\(curl -s -X POST \$API/auth/token .*jq -r \.access_token\)$",
        (
            ("scripts/airflow_stack.py", 'f"{self.url}/auth/token"'),
            ("tests/live/test_asset_retraining.py", 'airflow.call("POST", "/assets/events"'),
        ),
    ),
    Mapped(
        r"^ASSET_ID=\$\(curl -s -H \"Authorization: Bearer \$TOKEN\" \"\$API/api/v2/assets\?uri_pattern=\$URI\"",
        (("tests/live/test_asset_retraining.py", 'airflow.call("GET", "/assets", params={"uri_pattern": uri})'),),
    ),
    Mapped(
        r"^curl -s -X POST \$API/api/v2/assets/events .*\\\"asset_id\\\": \$ASSET_ID",
        (("tests/live/test_asset_retraining.py", 'json={"asset_id": asset["id"], "extra":'),),
    ),
    # docs/operations.md: gpuflow's state tables, made once by the stack start (make demo, the live tests) and run
    # as a command by the schema tests.
    Mapped(
        r"^\.venv/bin/python -m gpuflow state-migrate$",
        (
            ("scripts/airflow_stack.py", 'stack._run("-m", "gpuflow", "state-migrate")'),
            ("tests/integration/test_state_schema.py", '_cli("state-migrate", "--url", url)'),
        ),
    ),
    # docs/operations.md: the `gpu` pool, imported by the test harness and by every running-Airflow stack.
    Mapped(
        r"^airflow pools import include/config/pools\.json$",
        (
            ("tests/conftest.py", 'POOLS = ROOT / "include" / "config" / "pools.json"'),
            ("tests/conftest.py", 'airflow_cli("pools", "import", str(POOLS))'),
            ("scripts/airflow_stack.py", '"pools", "import", str(ROOT / "include" / "config" / "pools.json")'),
        ),
    ),
]


def mapping_for(command: str) -> Mapped | None:
    return next((m for m in MAPPED if re.search(m.pattern, command)), None)


COMMANDS = doc_commands()


def test_the_docs_show_commands_at_all() -> None:
    assert len(COMMANDS) >= 10, [str(c) for c in COMMANDS]
    assert any(c.text == "make demo" for c in COMMANDS)
    assert any(c.text == "make test" for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"{c.doc}:{c.line}")
def test_every_documented_command_is_run_here_or_by_a_named_test(command: Command) -> None:
    to_run = runnable(command.text)
    if to_run is not None:
        done = run_documented(to_run)
        assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        return
    mapped = mapping_for(command.text)
    assert mapped is not None, f"{command}\nis neither run by tests/test_docs.py nor mapped to a test. {HOW_TO_FIX}"
    for path, marker in mapped.runners:
        runner = ROOT / path
        assert runner.is_file(), f"{command}\nis mapped to {path}, which does not exist"
        assert marker in runner.read_text(), f"{command}\nis mapped to {path}, which no longer contains {marker!r}"


def test_every_mapping_is_still_used_by_the_docs() -> None:
    unused = [m.pattern for m in MAPPED if not any(re.search(m.pattern, c.text) for c in COMMANDS)]
    assert unused == [], "MAPPED entries no command in the docs matches any more; remove them"


def test_demo_args_shown_in_the_docs_are_flags_of_the_demo() -> None:
    demo = (ROOT / "scripts" / "demo.py").read_text()
    shown = [
        (c, arg.split("=")[0])
        for c in COMMANDS
        for word in c.text.split()
        if word.startswith("DEMO_ARGS=")
        for arg in word.removeprefix("DEMO_ARGS=").split()
    ]
    assert shown, "the docs show no DEMO_ARGS example"
    for command, flag in shown:
        assert f'"{flag}"' in demo, f"{command}: scripts/demo.py has no {flag} flag"


def test_command_extraction() -> None:
    text = "\n".join(
        [
            "```bash",
            "make demo   # a comment",
            "API=http://localhost:8080",
            "curl -s -X POST $API/x \\",
            '  -d \'{"a": "#not a comment"}\'',
            "```",
            "```console",
            "$ make test",
            "521 passed",
            "```",
            "```text",
            "make nothing",
            "```",
        ]
    )
    found = [c.text for c in commands_in(text, "x")]
    assert found == ["make demo", 'curl -s -X POST $API/x -d \'{"a": "#not a comment"}\'', "make test"]
    assert runnable("URI=$(.venv/bin/python -c 'from gpuflow.core.retraining import x')") is not None
    assert runnable("curl -s localhost") is None
    assert runnable("make demo; rm -rf /") is None


# -- links and size ----------------------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def prose(path: Path) -> str:
    """The file without its fenced blocks (a link inside code is not a link)."""
    kept, fenced = [], False
    for line in path.read_text().splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return "\n".join(kept)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_internal_links_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(prose(doc)):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        path_part, _, anchor = target.partition("#")
        resolved = (doc.parent / path_part).resolve() if path_part else doc
        if ROOT not in resolved.parents and resolved != ROOT:
            broken.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no heading #{anchor} in {resolved.relative_to(ROOT)})")
    assert broken == [], f"{doc.relative_to(ROOT)}: broken links"


def test_readme_links_every_docs_page() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(prose(README))}
    missing = [str(p.relative_to(ROOT)) for p in DOCS[1:] if p.resolve() not in linked]
    assert missing == [], "docs pages the README does not point to"


def test_readme_is_the_front_door_under_8_kib() -> None:
    size = README.stat().st_size
    assert size < README_LIMIT_BYTES, f"README.md is {size} bytes; move detail to docs/ (limit {README_LIMIT_BYTES})"
