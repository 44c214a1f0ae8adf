"""The pages in a real browser: Debian's Chromium driven by Playwright, against a ``ventureos serve`` the
module starts (and stops) over a lake built by the real pipeline (daily-ingest twice, gold-sync) from
real sample rows. `make test` installs Chromium when it is missing (see the Makefile's ``browser``);
without it these tests fail, naming the fix, rather than skip.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ventureos.layout import daily_prefix

from .conftest import BUNDLED_SAMPLES
from .test_faa import HEADER as FAA_HEADER
from .test_faa import ROWS as FAA_ROWS

# The tests always take their screenshots; they land in docs/ only when asked (``make screenshots``), so
# a test run leaves the checkout unchanged.
REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(
    os.environ.get("VENTUREOS_SCREENSHOTS") or Path(tempfile.gettempdir()) / "ventureos-screenshots"
)
DATASETS = ("osha/enforcement", "osha/severe_injury", "faa/enforcement", "epa/echo", "epa/icis_fec")
DAY1, DAY2 = "2024-03-05", "2024-03-06"
HOSTILE = "<img src=x onerror=alert(1)>"
VENTUREOS = str(Path(sys.executable).with_name("ventureos"))
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

browser_test = pytest.mark.slow
"""The tests that need the served lake and Chromium (the others are fast, in-process)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stage(lake: Path) -> None:
    """Day 1: the bundled OSHA severe-injury and EPA ECHO samples, the FAA report rows, and one report
    whose employer name is markup. Day 2: the FAA Mesa Airlines case again with a lower penalty."""
    reports = pl.read_csv(
        BUNDLED_SAMPLES / "osha_severe_injury" / "severeinjury_sample.csv", infer_schema=False
    )
    hostile = reports.head(1).with_columns(ID=pl.lit("2015999001"), Employer=pl.lit(HOSTILE))
    files = {
        daily_prefix("osha", "severe_injury", DAY1) + "/reports.csv": pl.concat(
            [reports, hostile]
        ).write_csv(),
        daily_prefix("epa", "echo", DAY1) + "/echo.csv": (
            BUNDLED_SAMPLES / "epa_echo" / "echo_exporter_sample.csv"
        ).read_text(),
        daily_prefix("faa", "enforcement", DAY1) + "/faa.csv": FAA_HEADER + FAA_ROWS,
        daily_prefix("faa", "enforcement", DAY2) + "/faa.csv": FAA_HEADER
        + FAA_ROWS.replace("ORD ASSESS CP HMT,55000.0", "ORD ASSESS CP HMT,40000.0"),
    }
    for key, text in files.items():
        path = lake / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


PIPELINE = f"""
from flows.daily_ingest import daily_ingest
from flows.gold_sync import gold_sync
from ventureos.lakehouse import current_lakehouse
from ventureos.serving import open_store
from ventureos.serving.projects import load_projects

for day in ("{DAY1}", "{DAY2}"):
    daily_ingest(day)
gold_sync()
load_projects(open_store(current_lakehouse().settings))
"""
"""The flows the deployments run, in one process (one Prefect start instead of one per command)."""


def run_pipeline(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PIPELINE], env=env, capture_output=True, text=True, timeout=900, cwd=REPO
    )
    assert done.returncode == 0, f"the pipeline failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A served lake: bronze staged, two daily-ingests, gold-sync and the brands, then ``ventureos serve``."""
    home = tmp_path_factory.mktemp("web") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VENTUREOS_")}
    env |= {
        "VENTUREOS_HOME": str(home),
        "VENTUREOS_SUMMARY_RATE_BURST": "100",
        # As the CLI sets them: Prefect's in-process API may start slowly on a busy machine.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # The staged days hold some datasets only: none is expected in every daily folder.
        "VENTUREOS_DATASET_CADENCE_DAYS": ",".join(f"{d}=0" for d in DATASETS),
    }
    stage(home / "lake")
    run_pipeline(env)
    port = _free_port()
    server = subprocess.Popen(
        [VENTUREOS, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v2/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"ventureos serve did not start: {server.stderr.read()}") from None
                time.sleep(0.2)  # polling for the port to open, not racing a result
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def api(url: str, path: str) -> Any:
    with urllib.request.urlopen(url + path, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium")
    assert chromium, (
        "Chromium is missing: `make test` installs it, or run `apt-get install -y chromium chromium-driver`"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield browser
        browser.close()


class Page:
    """One browser page that records console errors, page errors and dialogs."""

    def __init__(self, browser: Any, viewport: dict[str, int] = DESKTOP) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.context.close()


def settled(page: Any) -> None:
    """Every fetch of the page answered and nothing left loading."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function(
        "!document.querySelector('main .loading') && ![...document.querySelectorAll('main p')].some(p => p.textContent === 'Loading…')"
    )


def top_company(url: str) -> dict[str, Any]:
    return api(url, "/api/v2/top?level=company&by=count&agency=all&limit=1")["entries"][0]


@browser_test
def test_search_leads_to_the_company_page_with_the_api_totals(site: str, browser: Any) -> None:
    best = top_company(site)
    answer = api(site, f"/api/v2/company/{best['key'].split('#')[1]}")
    word = best["name"].split()[0]
    with Page(browser) as p:
        page = p.page
        page.goto(site + "/")
        settled(page)
        page.get_by_label("Find a company, city or state").type(word[:4].lower(), delay=30)
        option = page.get_by_role("option").filter(has_text=best["name"]).first
        option.wait_for()
        # Keyboard only: arrow down to the company, Enter opens it.
        names = page.get_by_role("option").all_inner_texts()
        index = next(i for i, n in enumerate(names) if n.startswith(best["name"]))
        for _ in range(index + 1):
            page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/company/{best['key'].split('#')[1]}")
        settled(page)
        assert page.get_by_role("heading", level=1).inner_text() == answer["profile"]["name"]
        stats = page.locator("dl.stats dd").all_inner_texts()
        totals = answer["totals"]["all"]
        assert stats[0] == f"{totals['count']:,}"
        assert stats[1] == f"${Decimal(totals['penalties']):,.2f}"
        # One bar and one dot per year with data in the shown agency's series.
        shown = page.locator("[role=tablist][aria-label='Agency shown in the chart'] [aria-selected=true]")
        agency = shown.get_attribute("data-value") if shown.count() else "all"
        years = [y["year"] for y in answer["series"][agency]]
        bars = page.locator(".chart rect.bar")
        assert bars.count() == len(years) == page.locator(".chart circle.dot").count()
        assert [
            int(y) for y in [bars.nth(i).get_attribute("data-year") for i in range(bars.count())]
        ] == years
        assert p.errors == [] and p.dialogs == []
        page.screenshot(path=SCREENSHOTS / "company-desktop.png", full_page=True)


@browser_test
def test_history_table_pages_to_the_last_violation(site: str, browser: Any) -> None:
    slug = top_company(site)["key"].split("#")[1]
    rows, cursor = [], None
    while True:
        answer = api(site, f"/api/v2/company/{slug}/violations" + (f"?cursor={cursor}" if cursor else ""))
        rows += answer["violations"]
        cursor = answer.get("next_cursor")
        if not cursor:
            break
    with Page(browser) as p:
        page = p.page
        page.goto(f"{site}/company/{slug}")
        settled(page)
        next_button = page.locator("#history-next")
        while next_button.is_enabled():
            next_button.click()
            settled(page)
        last_link = page.locator("#history tbody tr a").last
        assert last_link.get_attribute("href") == f"/violation/{rows[-1]['violation_id']}"
        assert page.locator("#history-position").inner_text().endswith(f"of {len(rows)}")
        assert p.errors == []


@browser_test
def test_history_filters_and_sorts_by_penalty(site: str, browser: Any) -> None:
    rows = api(site, "/api/v2/company/american-eagle-airlines/violations")["violations"]
    assert len(rows) == 3 and [r["event_date"] for r in rows] == sorted(
        (r["event_date"] for r in rows), reverse=True
    )
    with Page(browser) as p:
        page = p.page
        page.goto(f"{site}/company/american-eagle-airlines")
        settled(page)
        penalties = page.locator("#history tbody tr td.num")
        assert penalties.count() == 3
        page.get_by_label("Sort", exact=True).select_option("penalty")
        settled(page)
        assert penalties.first.inner_text() == "$25,000.00"
        page.get_by_label("Year", exact=True).select_option("2011")
        settled(page)
        assert page.locator("#history-position").inner_text() == "Rows 1\u20133 of 3"
        page.get_by_label("Agency", exact=True).select_option("faa")
        settled(page)
        assert page.locator("#history-position").inner_text() == "Rows 1\u20133 of 3"
        assert penalties.first.inner_text() == "$25,000.00"
        assert p.errors == []


@browser_test
def test_violation_page_shows_the_penalty_change_and_a_summary_after_reload(site: str, browser: Any) -> None:
    violation_id = "faa:enforcement:2006WP700166:ord-assess-cp-hmt:dollars"
    with Page(browser) as p:
        page = p.page
        page.goto(f"{site}/violation/{violation_id}")
        settled(page)
        assert "$55,000.00 → $40,000.00" in page.locator("#penalty-change").inner_text()
        assert page.locator("#summary-pending").is_visible()
        assert page.locator("#raw-description").inner_text() == "ORD ASSESS CP HMT; HAZ MAT; DOLLARS"
        # The background task writes the summary after the 202: reload until it shows (bounded).
        for _ in range(50):
            page.reload()
            settled(page)
            if page.locator("#summary-text").count():
                break
        text = page.locator("#summary-text").inner_text()
        assert text.startswith("MESA AIRLINES INC was cited by the FAA")
        assert "not AI" in page.locator("#summary-label").inner_text()
        assert p.errors == []
        page.screenshot(path=SCREENSHOTS / "violation-desktop.png", full_page=True)


@browser_test
def test_transporttrail_brand_shows_its_title_and_faa_first(site: str, browser: Any) -> None:
    with Page(browser) as p:
        page = p.page
        page.goto(site + "/?brand=transporttrail")
        settled(page)
        assert page.title() == "Transport Trail"
        assert page.get_by_role("heading", level=1).inner_text() == "Transport Trail"
        first_tab = page.locator("#top-company [aria-label='Agency for top companies'] [role=tab]").first
        assert first_tab.inner_text() == "FAA" and first_tab.get_attribute("aria-selected") == "true"
        # Links keep the preview; an unknown brand is the default site, not an error.
        assert (
            page.locator("#top-company tbody a").first.get_attribute("href").endswith("?brand=transporttrail")
        )
        page.goto(site + "/?brand=nope")
        settled(page)
        assert page.title() == "VentureOS Violation Tracker"
        assert p.errors == []


@browser_test
def test_a_company_named_like_markup_is_shown_as_text(site: str, browser: Any) -> None:
    (hit,) = [r for r in api(site, "/api/v2/search?q=onerror")["results"] if r["type"] == "company"]
    with Page(browser) as p:
        page = p.page
        page.goto(site + "/")
        settled(page)
        page.get_by_label("Find a company, city or state").type("onerror", delay=20)
        option = page.get_by_role("option").first
        option.wait_for()
        assert option.inner_text().startswith(HOSTILE)
        option.click()
        page.wait_for_url("**/company/**")
        settled(page)
        assert page.get_by_role("heading", level=1).inner_text() == HOSTILE == hit["name"]
        assert page.locator("main img").count() == 0
        assert p.dialogs == [] and p.errors == []


@browser_test
def test_every_page_without_console_errors_and_no_phone_scroll(site: str, browser: Any) -> None:
    slug = top_company(site)["key"].split("#")[1]
    state = api(site, "/api/v2/top?level=state&by=count&agency=all&limit=1")["entries"][0]["key"].split("#")[
        1
    ]
    city = api(site, "/api/v2/top?level=city&by=count&agency=all&limit=1")["entries"][0]["key"].split("#")[1]
    violation = "faa:enforcement:2006WP700166:ord-assess-cp-hmt:dollars"
    pages = {
        "home": "/",
        "company": f"/company/{slug}",
        "state": f"/state/{state}",
        "city": f"/city/{city}",
        "violation": f"/violation/{violation}",
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for viewport, size in (("desktop", DESKTOP), ("phone", PHONE)):
        with Page(browser, size) as p:
            for name, path in pages.items():
                p.page.goto(site + path)
                settled(p.page)
                assert p.errors == [], (name, viewport, p.errors)
                width = p.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
                assert width[0] <= width[1], (name, viewport, width)
                if name in ("home", "company", "state", "violation"):
                    p.page.screenshot(path=SCREENSHOTS / f"{name}-{viewport}.png", full_page=True)
    with Page(browser) as p:
        p.page.goto(site + "/company/no-such-company")
        p.page.wait_for_load_state("networkidle")
        assert p.page.get_by_role("heading", level=1).inner_text() == "We have no record of this company"
        p.page.goto(site + "/state/zz")
        p.page.wait_for_load_state("networkidle")
        assert p.page.get_by_role("heading", level=1).inner_text() == "We have no record of this state"


def test_brand_by_host_name_preview_and_fallback(home: Path) -> None:
    from fastapi.testclient import TestClient

    from ventureos.api.app import create_app
    from ventureos.serving import open_store
    from ventureos.serving.projects import load_projects
    from ventureos.settings import load_settings

    # No serving tables yet (a fresh home): the brands come from the bundled Projects files.
    fresh = TestClient(create_app()).get("/", headers={"Host": "transporttrail.com"}).text
    assert "<title>Transport Trail</title>" in fresh
    store = open_store(load_settings())
    store.create_tables()
    load_projects(store)
    client = TestClient(create_app())

    def title(path: str, host: str = "127.0.0.1") -> str:
        response = client.get(path, headers={"Host": host})
        assert (
            response.status_code == 200 and "script-src 'self'" in response.headers["content-security-policy"]
        )
        return response.text.split("<title>")[1].split("</title>")[0]

    assert title("/", "transporttrail.com") == "Transport Trail"
    assert title("/", "www.oshatrail.com:443") == "OSHA Trail"
    assert title("/", "elsewhere.example") == "VentureOS Violation Tracker"
    assert title("/?brand=transporttrail", "oshatrail.com") == "Transport Trail"
    assert title("/?brand=%3Cb%3E", "oshatrail.com") == "VentureOS Violation Tracker"
    assert title("/company/walmart", "oshatrail.com") == "Company — OSHA Trail"
    page = client.get("/?brand=transporttrail").text
    config = json.loads(page.split('type="application/json">')[1].split("</script>")[0])
    assert config["agencies"] == ["faa", "osha", "epa"] and config["lead_agencies"] == ["faa"]
    assert config["primary"] == "#0B57D0" and config["query"] == "?brand=transporttrail"
    # A subject is data inside the page's JSON: it cannot close the script element.
    hostile = client.get("/company/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E").text
    assert "<img" not in hostile and '"subject": "\\u003cimg src=x onerror=alert(1)\\u003e"' in hostile
    # Brand colours are used only where the text on them stays readable (WCAG AA).
    from ventureos.web import contrast, page_config

    assert round(contrast("#ffffff", "#000000"), 1) == 21.0
    pale = page_config({"id": "pale", "theme": {"primary": "#FFFF00", "accent": "#202020"}})
    assert (pale["primary"], pale["accent"]) == ("#1F3A5F", "#C9D6E8")
    assert (
        page_config({"id": "x", "theme": {"primary": "#B3261E", "accent": "#F2B8B5"}})["primary"] == "#B3261E"
    )
    assert client.get("/static/app.js").headers["content-type"] == "text/javascript; charset=utf-8"
    assert client.get("/static/page.html").status_code == 404
    assert client.get("/static/..%2F__init__.py").status_code == 404
