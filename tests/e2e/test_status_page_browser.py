"""Issue 9: the status page in a real headless Chromium (Debian's `chromium` + `chromium-driver`,
installed by `make test` / `.ci/run` through `.ci/browser`), loaded while a sink ingests: its
numbers change as records arrive and end equal to the rows in the database; the chart draws; no
planted password reaches the page. A screenshot is kept under `artifacts/` (git-ignored).

Without the browser this test fails (never skips): the suite must not pass without looking."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import SinkRunner
from tests.e2e.test_metrics_and_status import SECRET, get, start_sink
from tests.support.db import drop_table, fetch_rows, table_exists
from tests.support.kafka import create_topic, produce, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).parents[2] / "artifacts"


def browser():  # type: ignore[no-untyped-def]
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `bash .ci/browser` (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1300"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def count(text: str) -> int | None:
    digits = text.replace(",", "")
    return int(digits) if digits.isdigit() else None


def test_the_status_page_follows_an_ingest_in_chromium(
    bootstrap_servers: str, pg_url: str, unique_name: str, tmp_path: Path, sink_runner: SinkRunner
) -> None:
    topic = unique_name
    drop_table(pg_url, topic)
    create_topic(bootstrap_servers, topic, partitions=2)
    chunks, per_chunk = 6, 250
    produce(bootstrap_servers, topic, [{"value": json.dumps({"id": i, "qty": i})} for i in range(per_chunk)])
    sink, port = start_sink(sink_runner, tmp_path, bootstrap_servers, pg_url, topic)
    wait_for(lambda: table_exists(pg_url, topic), 60, message="the sink wrote nothing")

    def more() -> None:  # the rest arrives while the page is open
        for chunk in range(1, chunks):
            time.sleep(1.0)
            ids = range(chunk * per_chunk, (chunk + 1) * per_chunk)
            produce(bootstrap_servers, topic, [{"value": json.dumps({"id": i, "qty": i})} for i in ids])

    producer = threading.Thread(target=more)
    driver = browser()
    try:
        driver.get(f"http://127.0.0.1:{port}/?interval=300")
        producer.start()
        seen: list[int] = []

        def shown(element: str) -> int | None:
            return count(driver.find_element("id", element).text)

        def followed() -> bool:
            value = shown("rows-written")
            if value is not None and (not seen or value != seen[-1]):
                seen.append(value)
            return value == chunks * per_chunk

        wait_for(followed, 90, interval=0.2, message=f"the page never showed every row: {seen} {sink.stderr[-2000:]}")
        producer.join(30)
        assert len(seen) >= 3 and seen == sorted(seen), f"the page did not follow the ingest: {seen}"
        in_table = len(fetch_rows(pg_url, topic))
        assert shown("rows-written") == in_table == chunks * per_chunk
        assert shown("records-in") == in_table and shown("dead-lettered") == 0
        wait_for(
            lambda: int(driver.find_element("id", "chart").get_attribute("data-points") or 0) >= 2,
            15,
            message="the throughput chart drew nothing",
        )
        assert driver.find_elements("css selector", "#chart path.read")
        held = driver.find_elements("css selector", "#partitions tbody tr")
        assert len(held) == 2, "one row per partition held"

        def committed_all() -> bool:  # read in one script: the page re-renders the rows as it polls
            cells = driver.execute_script(
                "return [...document.querySelectorAll('#partitions tbody tr')].map(r => r.cells[2].textContent)"
            )
            offsets = [count(cell) for cell in cells]
            return None not in offsets and sum(offsets) == in_table  # type: ignore[arg-type]

        wait_for(committed_all, 20, message="the committed offsets on the page never added up to the rows")
        assert "ready ✓" in driver.find_element("id", "ready").text
        page = driver.page_source + driver.find_element("tag name", "body").text
        assert SECRET not in page and SECRET not in get(port, "/status.json")[1]
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / ".gitignore").write_text("*\n")  # test output, never committed
        shot = ARTIFACTS / "status-page.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        print(f"status page screenshot: {shot}")
    finally:
        driver.quit()
        producer.join(30)
    drop_table(pg_url, topic)
