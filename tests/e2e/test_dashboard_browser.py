"""The dashboard in headless Chromium, on a local runtime started as `make local` starts it.

GIVEN a runtime serving the API and dashboard, WHEN a user uploads files through the page
(file picker and drag-and-drop), THEN their rows appear and turn final without a reload.
Chromium and chromedriver come from Debian (`make browser`). With DASHBOARD_SCREENSHOT=path
the final page is also saved there (`make screenshot` writes docs/dashboard.png).
"""

from __future__ import annotations

import base64
import gzip
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from localruntime.background import free_port
from logctl.generate import write_log_file
from tests.e2e.conftest import Runtime, running, wait_until

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900")
DROP_FILE = """
const [name, base64, target] = arguments;
const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], name));
target.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true,
                                            cancelable: true}));
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        message = ("Chromium or chromedriver is missing: install them with `make browser` "
                   "(apt-get install chromium chromium-driver)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI=true, so the browser test may not be skipped")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Runtime, str]]:
    port = free_port()
    with running(tmp_path, "--api-port", str(port)) as runtime:
        yield runtime, f"http://127.0.0.1:{port}/"


ROW = """
const row = document.querySelector(`tr[data-key="${arguments[0]}"]`);
return row ? {status: row.dataset.status,
              cells: Array.from(row.cells, (cell) => cell.textContent)} : null;
"""


def row(driver, key: str) -> dict | None:
    """The row of `key` as the page shows it now (read in one step: the table is redrawn
    every refresh, so element handles go stale)."""
    return driver.execute_script(ROW, key)


def row_status(driver, key: str) -> str | None:
    found = row(driver, key)
    return found["status"] if found else None


def test_files_uploaded_through_the_page_reach_their_final_status(
        served, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    runtime, url = served
    picked = tmp_path / "picked.ndjson"
    write_log_file(picked, lines=500, error_rate=0.1, malformed_rate=0.02, seed=3)
    broken = gzip.compress(picked.read_bytes())[:-40]

    browser.get(url)
    wait_until(lambda: browser.find_element(By.ID, "dlq").text != "-", 30, "the first refresh")
    browser.find_element(By.ID, "picker").send_keys(str(picked))
    wait_until(lambda: row_status(browser, "logs/picked.ndjson") == "completed", 90,
               f"picked.ndjson to turn completed in the page\n{runtime.log_tail()}", 0.5)

    browser.execute_script(DROP_FILE, "dropped.ndjson.gz", base64.b64encode(broken).decode(),
                           browser.find_element(By.ID, "drop"))
    wait_until(lambda: row_status(browser, "logs/dropped.ndjson.gz") == "failed", 90,
               "dropped.ndjson.gz to turn failed in the page", 0.5)

    notes = tmp_path / "notes.txt"
    notes.write_text("not a log\n")
    browser.find_element(By.ID, "picker").send_keys(str(notes))
    wait_until(lambda: "not a log file" in browser.find_element(By.ID, "message").text, 30,
               "the page to show why notes.txt is refused")

    cells = row(browser, "logs/picked.ndjson")["cells"]
    assert cells[1] == "logs/picked.ndjson" and cells[2] == "completed"
    assert cells[3] == "500"
    assert int(cells[4]) > 0
    wait_until(lambda: browser.find_element(By.ID, "completed").text == "1", 30,
               "the completed count")
    assert browser.find_element(By.ID, "failed").text == "1"
    browser.save_screenshot(str(tmp_path / "dashboard.png"))
    if os.environ.get("DASHBOARD_SCREENSHOT"):
        browser.save_screenshot(os.environ["DASHBOARD_SCREENSHOT"])
