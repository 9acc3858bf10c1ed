"""The trigger form of ``gpu_train_and_serve`` in a real headless Chromium (Debian's, driven by Playwright): log in
through the login page, see the form's sections and every field with its description, fill in a fast run through
the fields' own inputs, trigger it, and see the run succeed in the UI with nothing left on the emulator.

Screenshots of each step go to ``.artifacts/ui/`` (the path is printed); ``last-page.png`` there is the page as
the test left it, pass or fail.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

from gpuflow.core import naming
from gpuflow.params import COST, PROMOTION, SERVING, TRAINING, WHAT, WHERE
from tests.live.conftest import Live
from tests.support.emulated_clouds import FAST_CONF

DAG_ID = "gpu_train_and_serve"
SECTIONS = [WHAT, WHERE, COST, TRAINING, SERVING, PROMOTION]
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "ui"
# This machine reaches nothing but package registries: without the background-networking flags Chromium keeps
# dialling Google's hosts at every start (shared/notes/airflow-on-this-machine.md). A fresh profile per launch is
# Playwright's default.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous: on two busy cores the React UI takes seconds to render, and each Airflow task ~15 s to start.
UI_TIMEOUT_MS = 60_000
pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def page(live: Live, capsys: pytest.CaptureFixture[str]) -> Iterator[Page]:
    """A fresh headless Chromium page, tall enough that the whole trigger dialog fits in a screenshot."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: `make browser` (run by `make test`) installs Debian's chromium")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with capsys.disabled():
        print(f"\nUI screenshots: {ARTIFACTS}")
    expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 2000}, locale="en-US")
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = context.new_page()
        try:
            yield page
        finally:
            page.screenshot(path=ARTIFACTS / "last-page.png")
            browser.close()


def test_the_trigger_form_shows_its_sections_and_runs_a_fast_job_to_success(live: Live, page: Page) -> None:
    airflow = live.airflow
    airflow.wait_for_dag(DAG_ID)
    # Paused, as a new DAG is: the form then offers "Unpause on trigger" (another test may have unpaused it).
    airflow.pause(DAG_ID)
    params: dict[str, Any] = airflow.call("GET", f"/dags/{DAG_ID}/details")["params"]
    run_id = f"ui_form__{int(time.time())}"

    log_in(page, airflow.url, f"/dags/{DAG_ID}", "admin", airflow.passwords["admin"])
    dialog = open_trigger_form(page)
    sections = dialog.locator("[data-scope=accordion][data-part=item-trigger]").all_inner_texts()
    assert [text.strip() for text in sections] == [*SECTIONS, "Advanced Options"]
    expect(dialog.get_by_label(f"Unpause {DAG_ID} on trigger")).to_be_checked()
    for number, section in enumerate(SECTIONS, start=3):
        content = open_section(dialog, section)
        fields = {name: param for name, param in params.items() if param["schema"]["section"] == section}
        for name, param in fields.items():
            expect_field(content, param)
            if name in FAST_CONF:
                fill(content, name, param, FAST_CONF[name])
        dialog.screenshot(path=ARTIFACTS / f"{number:02d}-form-{slug(section)}.png")
    open_section(dialog, "Advanced Options").locator("[name=dagRunId]").fill(run_id)
    dialog.screenshot(path=ARTIFACTS / f"{len(SECTIONS) + 3:02d}-form-advanced-options.png")
    dialog.get_by_role("button", name="Trigger", exact=True).click()

    run_state = run_page_state(page, run_id)
    expect(run_state).to_be_visible()
    page.screenshot(path=ARTIFACTS / f"{len(SECTIONS) + 4:02d}-run-started.png")
    started = time.monotonic()
    state = airflow.follow(
        DAG_ID, run_id, on_change=lambda ti: print(f"{time.monotonic() - started:6.1f}s {ti['task_id']} {ti['state']}")
    )
    page.reload()
    expect(run_state).to_have_text(state.capitalize())
    page.screenshot(path=ARTIFACTS / f"{len(SECTIONS) + 5:02d}-run-ended.png")

    conf = airflow.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["conf"]
    assert {name: conf[name] for name in FAST_CONF} == FAST_CONF
    assert state == "success", {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG_ID, run_id)}
    assert live.emulator.labelled(naming.RUN_LABEL, naming.run_key(DAG_ID, run_id)) == []


def log_in(page: Page, url: str, path: str, user: str, password: str) -> None:
    """Through the login page the UI redirects to, as a person would."""
    page.goto(f"{url}{path}")
    expect(page.get_by_text("Sign into Airflow")).to_be_visible()
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.screenshot(path=ARTIFACTS / "01-login.png")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(path)))


def open_trigger_form(page: Page) -> Locator:
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(f"Trigger Dag - {DAG_ID}")).to_be_visible()
    dialog.screenshot(path=ARTIFACTS / "02-form.png")
    return dialog


def open_section(dialog: Locator, section: str) -> Locator:
    """Expand one section of the form (the others collapse) and return its content."""
    header = dialog.get_by_role("button", name=section, exact=True)
    header.click()
    content = dialog.locator(f'[id="{header.get_attribute("aria-controls")}"]')
    expect(content).to_be_visible()
    return content


def expect_field(content: Locator, param: Mapping[str, Any]) -> None:
    """The field's title (required ones marked ``*``) and, where it has one, its description are shown."""
    title = param["schema"]["title"]
    expect(content.locator("label", has_text=re.compile(rf"^{re.escape(title)}\s*\*?$"))).to_be_visible()
    if param.get("description"):
        expect(content.locator("[data-part=helper-text]", has_text=param["description"])).to_be_visible()


def fill(content: Locator, name: str, param: Mapping[str, Any], value: Any) -> None:
    """Type ``value`` into the field's own input: a choice list, a one-item-per-line box for lists, else text."""
    schema = param["schema"]
    if "enum" in schema:
        content.get_by_role("combobox", name=schema["title"]).click()
        content.page.get_by_role("option", name=value, exact=True).click()
    elif schema["type"] == "array":
        content.locator(f"[name=element_{name}]").fill("\n".join(value))
    else:
        content.locator(f"[name=element_{name}]").fill(str(value))


def run_page_state(page: Page, run_id: str) -> Locator:
    """The state badge beside the run's name on the run page, where the UI goes after a trigger."""
    page.wait_for_url(re.compile(rf"/dags/{DAG_ID}/runs/{re.escape(run_id)}"))
    header = page.get_by_role("heading", name=run_id, exact=True).locator("xpath=..")
    return header.get_by_test_id("state-badge")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
